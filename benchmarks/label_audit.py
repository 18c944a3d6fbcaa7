"""Label-audit evaluation: do the audit's scores find the training cases whose labels the noise corrupted?

On a synthetic ISIC-like release converted with the paper's noise (the corrupted cases and their noise kind
known from the converter's noise log), each run cross-fits real nnU-Net trainers in-process (the T-Loss default
or stock Dice+CE): every training case is scored by a model that did not train on it, with the library's audit
API (``tloss_nnunet.audit.score_cases``). The report gives AUROC and precision@k per score, per noise kind,
with 95 % intervals over seeds (``label_audit_crossfit.py``, ``label_audit_report.py``).

Usage (from the repository root)::

    python -m benchmarks.label_audit --settings a0.3b0.5 a0.5b0.7 a0.7b0.7 --workers 2 --resume
    python -m benchmarks.label_audit --summarize
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import label_audit_report
from benchmarks.label_audit_crossfit import CONFIGS, ENGINE, crossfit_run
from benchmarks.studykit import cli, inprocess
from benchmarks.studykit.config import get_config
from benchmarks.studykit.driver import Job
from benchmarks.studykit.grid import GRID
from benchmarks.studykit.store import ResultStore

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "label_audit.json"
ARMS = ("tloss", "dice_ce")
#: The record fields (besides the run key).
FIELDS = ("alpha", "beta", "folds", "cases", "nu_final", "n_train", "n_corrupted", "iterations", "wall_s", "machine")


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT)
    parser.add_argument("--settings", nargs="+", default=["a0.3b0.5", "a0.5b0.7", "a0.7b0.7"],
                        help=f"from {tuple(GRID)}")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help=f"from {ARMS}")
    args = parser.parse_args(argv)
    args.settings, args.arms = cli.unique(args.settings), cli.unique(args.arms)
    return args


def summarize(out: Path) -> list[Path]:
    return label_audit_report.write_summary(cli.records(out, FIELDS), out)


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out))
    cli.check_choices("setting", args.settings, GRID)
    cli.check_choices("arm", args.arms, ARMS)
    cli.check_workers(args)
    config = get_config(CONFIGS, args.config)
    work_dir = cli.work_folder(args, "label-audit", config)
    inprocess.activate(work_dir)  # nnU-Net reads its folders when first imported
    store = ResultStore.open(args.out, FIELDS, args.resume)
    seeds = args.seeds if args.seeds is not None else list(config.seeds)
    todo = [(ENGINE, config.name, setting, arm, seed)
            for seed in seeds for setting in args.settings for arm in args.arms]

    def jobs(keys: list[tuple]) -> list[Job]:
        datasets = inprocess.prepare(work_dir, config)
        clean = str(datasets["clean"])
        return [Job(key, crossfit_run, (arm, setting, seed, str(datasets[setting]), clean, config))
                for key in keys for setting, arm, seed in [key[2:5]]]

    return cli.execute(store, todo, jobs, args.workers, "label audit", lambda: summarize(args.out))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("label_audit", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
