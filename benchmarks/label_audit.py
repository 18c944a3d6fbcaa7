"""Label-audit evaluation: do the audit's scores find the training cases whose labels the noise corrupted?

On a synthetic ISIC-like release converted with the paper's noise (the corrupted cases and their noise kind
known from the converter's noise log), each run cross-fits real nnU-Net trainers in-process (the T-Loss default
or stock Dice+CE): every training case is scored by a model that did not train on it, with the library's audit
API (``tloss_nnunet.audit.score_cases``). The report gives AUROC and precision@k per score, per noise kind,
with 95 % intervals over seeds (``label_audit_lib/``). Each finished run is appended to the results JSON;
``--resume`` continues, ``--summarize`` re-makes the table and plot.

Usage::

    python benchmarks/label_audit.py --settings a0.3b0.5 a0.5b0.7 a0.7b0.7 --workers 2 --resume
    python benchmarks/label_audit.py --summarize
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from label_audit_lib.crossfit import CONFIGS
from memorisation_lib.config import SETTINGS
from tloss_nnunet.errors import InputError

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "label_audit.json"
ARMS = ("tloss", "dice_ce")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--settings", nargs="+", default=["a0.3b0.5", "a0.5b0.7", "a0.7b0.7"],
                        help=f"from {SETTINGS[1:]}")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help=f"from {ARMS}")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the configuration's seeds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON; .md and .png beside it")
    parser.add_argument("--resume", action="store_true", help="continue an existing results file")
    parser.add_argument("--summarize", action="store_true", help="only re-make the table and plot from --out")
    parser.add_argument("--work-dir", type=Path, default=None, help="data and nnU-Net folders "
                        "(default: a folder per configuration under the temp dir)")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel, one CPU thread each")
    args = parser.parse_args(argv)
    args.settings, args.arms = list(dict.fromkeys(args.settings)), list(dict.fromkeys(args.arms))
    bad = [s for s in args.settings if s not in SETTINGS[1:]] + [a for a in args.arms if a not in ARMS]
    if bad and not args.summarize:
        parser.error(f"unknown setting(s) or arm(s) {bad}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    return args


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run(arm: str, setting: str, seed: int, dataset_dir: str, clean_dir: str, config_name: str) -> dict:
    from label_audit_lib.crossfit import crossfit_run
    from robustness_lib.store import machine_description

    record = crossfit_run(arm, setting, seed, Path(dataset_dir), Path(clean_dir), CONFIGS[config_name],
                          Path(clean_dir).name)
    record["machine"] = machine_description("cpu")
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from label_audit_lib.summary import write_summary
        from robustness_lib.store import ResultStore, load_runs, run_key

        if args.summarize:
            for path in write_summary(load_runs(args.out), args.out):
                print(f"wrote {path}")
            return 0
        config = CONFIGS[args.config]
        work_dir = args.work_dir or Path(tempfile.gettempdir()) / "tloss-nnunet-label-audit" / config.name
        from memorisation_lib.engine import nnunet_environment, prepare

        os.environ.update(nnunet_environment(work_dir))
        store = ResultStore.open(args.out, args.resume)
        done = {run_key(r) for r in store.runs}
        seeds = args.seeds if args.seeds is not None else list(config.seeds)
        todo = [(arm, setting, seed) for seed in seeds for setting in args.settings for arm in args.arms
                if ("audit-crossfit", config.name, setting, arm, seed) not in done]
        print(f"{len(todo)} run(s) to do ({len(done)} already in {args.out}); config {config.name}")
        if todo:
            datasets = prepare(work_dir, config)
            jobs = [(arm, s, seed, str(datasets[s]), str(datasets["clean"]), args.config) for arm, s, seed in todo]
            with tqdm(total=len(jobs), desc="label audit", unit="run") as bar, \
                    ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
                for future in as_completed([pool.submit(_run, *job) for job in jobs]):
                    store.add(future.result())
                    bar.update()
        for path in write_summary(store.runs, args.out):
            print(f"wrote {path}")
        return 0
    except InputError as err:
        print(f"label_audit.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
