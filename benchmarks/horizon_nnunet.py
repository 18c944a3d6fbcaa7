"""The long-horizon check inside nnU-Net: the T-Loss trainers vs nnU-Net's stock trainer, stock commands.

Protocol: ``benchmarks/horizon-protocol.md``, addenda 1.1 and 1.2 (each frozen before its runs). The long-horizon
study's datasets (``benchmarks/horizon.py``, the same converted folders), each trained with ``nnUNetv2_train`` on
nnU-Net's fold-0 split of its 20 training cases (16 train, 4 validation cases whose labels stay noisy: the split
the in-process study uses, installed as ``splits_final.json``), for the study's 3000 iterations with nnU-Net's full
pipeline (augmentation, poly learning rate, deep supervision, validation and checkpointing), at the study's network
widths (the ``_study`` trainers). Each run predicts the clean test cases with ``checkpoint_final.pth`` and with
nnU-Net's own ``checkpoint_best.pth`` (its moving average of the pseudo Dice on the noisy validation cases) and
scores both with ``nnUNetv2_evaluate_folder``. nnU-Net does not seed its training: one run per dataset and arm,
compared paired by dataset.

Usage (from the repository root)::

    python -m benchmarks.horizon_nnunet --resume --workers 1 --work-dir /work/horizon_work
    python -m benchmarks.horizon_nnunet --resume --arms tloss_freeze --workers 1 --work-dir /work/horizon_work
    python -m benchmarks.horizon_nnunet --summarize
    python -m benchmarks.horizon_nnunet --config smoke --out /tmp/hn_runs.json --work-dir /tmp/hn
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import horizon_nnunet_report
from benchmarks.horizon import CONFIGS as HORIZON_CONFIGS
from benchmarks.horizon import DATASETS, summary_path
from benchmarks.studykit import cli, commands
from benchmarks.studykit.config import StudyConfig
from benchmarks.studykit.data import Family, prepare_family, training_case_ids, validation_split
from benchmarks.studykit.driver import Job
from benchmarks.studykit.store import ResultStore
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "horizon_nnunet_runs.json"

KEY_FIELDS: tuple[str, ...] = ("engine", "config", "dataset", "setting", "loss", "seed")
FIELDS: tuple[str, ...] = ("alpha", "beta", "trainer", "dice_mean", "dice_pooled", "checkpoints", "nnunet_log",
                           "nu_final", "iterations", "wall_s", "seeded", "model_reused", "machine", "release_seed",
                           "noise_seed")

SETTINGS: tuple[str, ...] = ("a0.7b0.7", "clean")
#: dice_ce and tloss: addendum 1.1; tloss_freeze (version 2's trainer): addendum 1.2.
ARMS: tuple[str, ...] = ("dice_ce", "tloss", "tloss_freeze")
BEST_CHECKPOINT = "checkpoint_best.pth"

CONFIGS: dict[str, StudyConfig] = {
    "horizon": HORIZON_CONFIGS["horizon"],
    "smoke": HORIZON_CONFIGS["smoke"],
}
#: The datasets a configuration runs by default (the first three of the long-horizon study's five).
CONFIG_DATASETS: dict[str, tuple[str, ...]] = {"horizon": tuple(DATASETS)[:3], "smoke": tuple(DATASETS)[:1]}


def noisy_validation_split(dataset_dir: Path) -> list[dict]:
    """``splits_final.json`` content: fold 0 = nnU-Net's fold 0 of the converter's training cases (16 train, 4
    validation), so that nnU-Net's validation, and with it ``checkpoint_best.pth``, sees noisy labels only."""
    train, val = validation_split(training_case_ids(dataset_dir))
    return [{"train": train, "val": val}]


def plan(datasets: list[str], settings: list[str] | None = None, arms: list[str] | None = None,
         seeds: tuple[int, ...] = (0,)) -> list[tuple[str, str, str, int]]:
    """(dataset, setting, arm, seed) in the protocol's order: a0.7b0.7 on every dataset, then clean."""
    return [(dataset, setting, arm, seed) for setting in SETTINGS for dataset in datasets for arm in ARMS
            for seed in seeds if (settings is None or setting in settings) and (arms is None or arm in arms)]


def run_job(family: Family, dataset: str, setting: str, arm: str, seed: int, config: StudyConfig,
            work_dir: str, device: str) -> dict:
    """Train, predict (final and best checkpoint) and evaluate one run with the stock commands."""
    engine = commands.CommandEngine(family, config, Path(work_dir), device=device, splits=noisy_validation_split)
    record = engine.run(setting, arm, seed, extra_checkpoints=(BEST_CHECKPOINT,))
    release_seed, noise_seed, _ = DATASETS[dataset]
    return {**record, "dataset": dataset, "release_seed": release_seed, "noise_seed": noise_seed}


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT, default_config="horizon")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"from {tuple(DATASETS)} (default: the configuration's)")
    parser.add_argument("--settings", nargs="+", default=None, help=f"from {SETTINGS} (default all)")
    parser.add_argument("--arms", nargs="+", default=None, help=f"from {ARMS} (default all)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="nnU-Net's -device")
    args = parser.parse_args(argv)
    for name in ("datasets", "settings", "arms"):
        if getattr(args, name) is not None:
            setattr(args, name, cli.unique(getattr(args, name)))
    return args


def summarize(out: Path, config_name: str) -> list[Path]:
    runs = [r for r in cli.records(out, FIELDS) if r["config"] == config_name]
    if not runs:
        raise InputError(f"{out} holds no runs of config {config_name!r} (pass --config)")
    expected = plan(list(CONFIG_DATASETS[config_name]), seeds=CONFIGS[config_name].seeds)
    return horizon_nnunet_report.write_summary(runs, summary_path(out), CONFIGS[config_name], expected)


def _jobs(config: StudyConfig, work_dir: Path, device: str, todo: list[tuple]) -> list[Job]:
    families: dict[str, Family] = {}
    jobs = []
    for key in todo:
        dataset, setting, arm, seed = key[2:6]
        if dataset not in families:  # the long-horizon study's converted folders, reused when present
            release_seed, noise_seed, first_id = DATASETS[dataset]
            families[dataset] = prepare_family(work_dir, config, verify=False, release_seed=release_seed,
                                               noise_seed=noise_seed, first_id=first_id)
        jobs.append(Job(key, run_job, (families[dataset], dataset, setting, arm, seed, config,
                                       str(work_dir / "nnunet"), device)))
    return jobs


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out, args.config))
    cli.check_choices("arm", args.arms or [], ARMS)
    config, datasets, seeds = cli.scope(args, CONFIGS, CONFIG_DATASETS, DATASETS, SETTINGS)
    runs = plan(datasets, args.settings, args.arms, seeds)
    if not runs:
        raise InputError("no run matches these --datasets/--settings/--arms")
    work_dir = cli.work_folder(args, "horizon", config).resolve()
    store = ResultStore.open(args.out, FIELDS, args.resume, key_fields=KEY_FIELDS)
    todo = [(commands.ENGINE, config.name, dataset, setting, arm, seed) for dataset, setting, arm, seed in runs]
    return cli.execute(store, todo, lambda keys: _jobs(config, work_dir, args.device, keys), args.workers,
                       "horizon-nnunet", lambda: summarize(args.out, config.name))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("horizon_nnunet", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
