"""Memorisation study: does nnU-Net fit the corrupted masks of noisy training labels, and does the T-Loss stop it?

Each run trains one arm (an nnU-Net trainer class: stock Dice+CE or a T-Loss recipe) on one noise setting of a
small synthetic ISIC-like dataset for thousands of iterations, and logs every ``log_every`` iterations the
memorisation index M(t) = Dice(prediction, noisy mask) - Dice(prediction, clean mask) over the corrupted
training cases, the clean-test Dice, nu, MSE and per-image weights (see ``memorisation_lib/engine.py``).
Runs of the same seed share the network initialisation and the batch sequence, so arms compare paired.
Each finished run is appended to the results JSON at once; ``--resume`` continues, ``--summarize`` re-makes
the table and plots without training.

``--engine nnunet`` checks the outcome inside nnU-Net itself: the stock commands (plan, ``nnUNetv2_train``,
predict, evaluate) with nnU-Net's own data loading and augmentation, stock ``nnUNetTrainer`` against the default
``nnUNetTrainerTLoss`` on the same schedule and network width (``memorisation_lib/nnunet_check.py``).

Usage::

    python benchmarks/memorisation.py --settings a0.7b0.7 clean --arms dice_ce tloss_absolute --resume
    python benchmarks/memorisation.py --summarize
    python benchmarks/memorisation.py --summarize --grid-out benchmarks/results/robustness.json   # the loss grid
    python benchmarks/memorisation.py --engine nnunet --settings clean a0.7b0.7 --seeds 0 1 2 --resume
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from memorisation_lib.config import ARMS, CONFIGS, SETTINGS, get_config
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = {"inprocess": RESULTS / "memorisation.json", "nnunet": RESULTS / "memorisation_nnunet.json"}
ENGINE_TAG = {"inprocess": "nnunet-inprocess", "nnunet": "nnunet-commands"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--engine", choices=sorted(DEFAULT_OUT), default="inprocess",
                        help="inprocess: trainer objects fed in-process (the study); nnunet: the stock commands")
    parser.add_argument("--settings", nargs="+", default=["a0.7b0.7"], help=f"from {SETTINGS}")
    parser.add_argument("--arms", nargs="+", default=None,
                        help=f"inprocess: from {tuple(ARMS)} (default all); nnunet: dice_ce and tloss")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the configuration's seeds")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON; the table (.md) and plots (.png) are written beside it")
    parser.add_argument("--resume", action="store_true", help="continue an existing results file, skip done runs")
    parser.add_argument("--summarize", action="store_true", help="only re-make the table and plots from --out")
    parser.add_argument("--grid-out", type=Path, default=None,
                        help="inprocess: also write the grid of the loss arms (tloss, dice_ce, ce, dice, gce) in the "
                             "robustness study's format to this JSON, with its .md and .png")
    parser.add_argument("--work-dir", type=Path, default=None, help="data and nnU-Net folders "
                        "(default: a folder per configuration under the temp dir)")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel, one CPU thread each")
    args = parser.parse_args(argv)
    args.out = args.out or DEFAULT_OUT[args.engine]
    args.arms = args.arms or list(ARMS if args.engine == "inprocess" else ("dice_ce", "tloss"))
    args.settings, args.arms = list(dict.fromkeys(args.settings)), list(dict.fromkeys(args.arms))
    return args


def check_args(args: argparse.Namespace) -> None:
    bad = [s for s in args.settings if s not in SETTINGS]
    if bad:
        raise InputError(f"unknown setting(s) {bad}; choose from {', '.join(SETTINGS)}")
    from memorisation_lib.nnunet_check import NNUNET_ARMS

    known = ARMS if args.engine == "inprocess" else NNUNET_ARMS
    bad = [a for a in args.arms if a not in known]
    if bad:
        raise InputError(f"unknown arm(s) {bad} for engine {args.engine}; choose from {', '.join(known)}")
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


_DATA_CACHE: dict = {}


def _run(arm: str, setting: str, seed: int, dataset_dir: str, clean_dir: str, config_name: str) -> dict:
    from memorisation_lib.engine import SettingData, run
    from robustness_lib.store import machine_description

    key = (dataset_dir, clean_dir)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = SettingData.load(Path(dataset_dir), Path(clean_dir))
    record = run(arm, setting, seed, _DATA_CACHE[key], get_config(config_name), Path(clean_dir).name)
    record["machine"] = machine_description("cpu")
    return record


def summarize(out: Path, grid_out: Path | None = None) -> list[Path]:
    """Re-make the Markdown and plots of ``out`` (and the robustness-format grid at ``grid_out``)."""
    from memorisation_lib.summary import write_check_summary, write_summary
    from robustness_lib.store import load_runs

    runs = load_runs(out)
    if not runs:
        raise InputError(f"{out} holds no runs yet")
    if all(r.get("engine") == ENGINE_TAG["nnunet"] for r in runs):
        if grid_out is not None:
            raise InputError("--grid-out needs the in-process study's results, not the nnU-Net check's")
        return write_check_summary(runs, out)
    written = write_summary(runs, out)
    if grid_out is not None:
        from memorisation_lib.grid_view import write_grid

        written += write_grid(runs, grid_out)
    return written


def run_inprocess(todo: list[tuple[str, str, int]], datasets: dict[str, Path], config, workers: int, store) -> None:
    clean = str(datasets["clean"])
    jobs = [(arm, setting, seed, str(datasets[setting]), clean, config.name) for arm, setting, seed in todo]
    if workers == 1:  # in this process, one thread (as each pool worker), the caller's thread count restored
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for job in tqdm(jobs, desc="memorisation", unit="run"):
                store.add(_run(*job))
        finally:
            torch.set_num_threads(threads)
        return
    failures = []
    with tqdm(total=len(jobs), desc="memorisation", unit="run") as bar, \
            ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        for future in as_completed([pool.submit(_run, *job) for job in jobs]):
            try:
                store.add(future.result())
            except Exception as err:  # noqa: BLE001 - a failed run must not discard the finished ones
                failures.append(err)
                print(f"run failed: {err!r}", file=sys.stderr)
            bar.update()
    if failures:
        raise failures[0]


def run_nnunet(todo: list[tuple[str, str, int]], work_dir: Path, config, store) -> None:
    from memorisation_lib.nnunet_check import MemorisationNnUNetCheck
    from robustness_lib.data import prepare_family
    from robustness_lib.store import machine_description

    check = MemorisationNnUNetCheck(prepare_family(work_dir, config, verify=False), config, work_dir / "nnunet")
    for arm, setting, seed in tqdm(todo, desc="memorisation (nnU-Net)", unit="run"):
        record = check.run(setting, arm, seed)
        record["machine"] = machine_description("cpu")
        store.add(record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.summarize:
            for path in summarize(args.out, args.grid_out):
                print(f"wrote {path}")
            return 0
        check_args(args)
        config = get_config(args.config)
        work_dir = args.work_dir or Path(tempfile.gettempdir()) / "tloss-nnunet-memorisation" / config.name
        from memorisation_lib.engine import nnunet_environment

        os.environ.update(nnunet_environment(work_dir))  # nnU-Net reads its folders from here at each use
        from memorisation_lib.engine import prepare
        from robustness_lib.store import ResultStore

        store = ResultStore.open(args.out, args.resume)
        done = store.done()
        seeds = args.seeds if args.seeds is not None else list(config.seeds)
        # Seed-major: an interrupted study has every arm of the first seeds, which the paired analysis needs.
        todo = [(arm, setting, seed) for seed in seeds for setting in args.settings for arm in args.arms
                if (ENGINE_TAG[args.engine], config.name, setting, arm, seed) not in done]
        print(f"{len(todo)} run(s) to do ({len(done)} already in {args.out}); config {config.name}")
        if todo and args.engine == "nnunet":
            run_nnunet(todo, work_dir, config, store)
        elif todo:
            run_inprocess(todo, prepare(work_dir, config), config, args.workers, store)
        for path in summarize(args.out, args.grid_out):
            print(f"wrote {path}")
        return 0
    except InputError as err:
        print(f"memorisation.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
