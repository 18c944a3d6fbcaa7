"""The repair study's confirmation inside nnU-Net: audit -> repair -> retrain with the commands a user runs.

Protocol: ``benchmarks/repair-protocol.md``, addendum 1.2 (frozen before its runs). Per dataset (the first three
of the long-horizon study's five, at a0.7b0.7, the horizon study's converted folders):

1. the user's training set: the 16 training cases of nnU-Net's fold 0 (the cases the shared stock runs of
   ``horizon_nnunet.py`` trained on), hard-linked into a raw dataset of their own with the clean test cases
   (``imagesTs`` / ``labelsTs``), ``dataset.json`` from nnU-Net's generator;
2. ``nnUNetv2_plan_and_preprocess``, a 4-fold ``splits_final.json`` from nnU-Net's own
   ``generate_crossval_split`` (seed 12345), and ``nnUNetv2_train`` of the 4 folds with the T-Loss trainer at
   the audit length of the in-process study (:data:`benchmarks.repair.AUDIT_ITERATIONS`);
3. ``tloss-nnunet suspects`` on the 4 folds with nnU-Net's ``checkpoint_best.pth`` (its moving average of the
   pseudo Dice on the fold's held-out cases, whose labels are noisy: the length chosen on validation);
4. ``tloss-nnunet repair`` with the combination to confirm (default: the in-process study's winner, read from
   its complete headline records; ``--combination MODE:RULE:LOSS`` names one);
5. ``nnUNetv2_plan_and_preprocess`` of the repaired dataset, ``nnUNetv2_train ... all`` with the loss's trainer
   at the study's 3000 iterations (the same cases as the shared noisy runs, repaired), ``nnUNetv2_predict`` of
   the clean test cases and ``nnUNetv2_evaluate_folder``.

The noisy and clean-label runs it is compared with are the long-horizon check's (``horizon_nnunet_runs.json``,
last checkpoint). ``--work-dir`` is the long-horizon study's work folder (its converted datasets are reused); the
confirmation's own nnU-Net folders are ``<work-dir>/repair_nnunet``. nnU-Net does not seed its training: one run
per dataset, paired with the shared runs by dataset. The steps: ``repair_nnunet_loop.py``; the report:
``repair_nnunet_report.py``.

Usage (from the repository root)::

    python -m benchmarks.repair_nnunet --resume --audits-only --work-dir /work/horizon_work   # before a winner
    python -m benchmarks.repair_nnunet --resume --work-dir /work/horizon_work
    python -m benchmarks.repair_nnunet --summarize
    python -m benchmarks.repair_nnunet --config smoke --combination ignore:f0.25:tloss --out /tmp/rn_runs.json \\
        --work-dir /tmp/rn
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import horizon, repair_nnunet_report
from benchmarks.horizon_nnunet import CONFIG_DATASETS
from benchmarks.repair_nnunet_loop import SETTING, Combination, Confirmation
from benchmarks.repair_report import choices, incomplete_candidates, winner
from benchmarks.repair_retrain import HEADLINE
from benchmarks.studykit import cli, commands
from benchmarks.studykit.config import StudyConfig
from benchmarks.studykit.data import Family, prepare_family
from benchmarks.studykit.driver import Job
from benchmarks.studykit.store import ResultStore, load_runs
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "repair_nnunet_runs.json"
STUDY_RESULTS = RESULTS / "repair_runs.json"
SHARED_RUNS = RESULTS / "horizon_nnunet_runs.json"

KEY_FIELDS: tuple[str, ...] = ("engine", "config", "dataset", "setting", "arm", "seed")
#: What every record has: audits (arm "audit") and repaired runs share the file.
FIELDS: tuple[str, ...] = ("stage", "wall_s", "audit_reused", "audit_iterations", "machine")
AUDIT = "audit"

CONFIGS: dict[str, StudyConfig] = {"horizon": horizon.CONFIGS["horizon"], "smoke": horizon.CONFIGS["smoke"]}


def study_winner(results: Path, config_name: str, datasets: int) -> Combination:
    """The in-process study's winner by its frozen rule (:func:`benchmarks.repair_report.choices`), once every
    candidate has run on all ``datasets`` x the headline settings; InputError before."""
    runs = [r for r in load_runs(results, key_fields=KEY_FIELDS) if r["config"] == config_name]
    if incomplete := incomplete_candidates(runs, datasets):
        raise InputError(f"the in-process study's headline ({results}) is not complete ({len(incomplete)} "
                         f"candidates without {datasets * len(HEADLINE)} runs, e.g. {incomplete[0]}): its winner "
                         "is not known yet; pass --combination")
    mode, rule, loss, _ = winner(choices(runs))
    return Combination(mode, rule, loss)


def run_job(family: Family, clean_dir: Path, dataset: str, combination: Combination | None, seed: int,
            config: StudyConfig, work_dir: str, device: str) -> dict:
    """One dataset's audit (``combination`` None) or whole loop; the record."""
    confirmation = Confirmation(family, clean_dir, config, Path(work_dir), device)
    record = confirmation.audit() if combination is None else confirmation.run(combination, seed)
    release_seed, noise_seed, _ = horizon.DATASETS[dataset]
    return {**record, "dataset": dataset, "release_seed": release_seed, "noise_seed": noise_seed}


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT, default_config="horizon")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"from {tuple(horizon.DATASETS)} (default: the configuration's)")
    parser.add_argument("--combination", default=None, metavar="MODE:RULE:LOSS",
                        help="what to confirm (default: the in-process study's winner, from --study-results)")
    parser.add_argument("--study-results", type=Path, default=STUDY_RESULTS,
                        help="the in-process repair study's records (its winner)")
    parser.add_argument("--shared-runs", type=Path, default=SHARED_RUNS,
                        help="the long-horizon check's stock runs (the noisy and clean-label arms)")
    parser.add_argument("--audits-only", action="store_true",
                        help="only the audits (steps 1-3, which do not depend on the combination): their records")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="nnU-Net's -device")
    args = parser.parse_args(argv)
    if args.datasets is not None:
        args.datasets = cli.unique(args.datasets)
    return args


def summarize(out: Path, shared: Path, config_name: str) -> list[Path]:
    runs = [r for r in cli.records(out, FIELDS, KEY_FIELDS) if r["config"] == config_name]
    if not runs:
        raise InputError(f"{out} holds no runs of config {config_name!r} (pass --config)")
    shared_runs = [r for r in load_runs(shared) if r["config"] == config_name] if shared.is_file() else []
    return repair_nnunet_report.write_summary(runs, shared_runs, out, list(CONFIG_DATASETS[config_name]))


def _jobs(config: StudyConfig, work_dir: Path, device: str, combination: Combination | None,
          todo: list[tuple]) -> list[Job]:
    jobs = []
    for key in todo:
        dataset, arm, seed = key[2], key[4], key[5]
        release_seed, noise_seed, first_id = horizon.DATASETS[dataset]
        family = prepare_family(work_dir, config, verify=False, release_seed=release_seed, noise_seed=noise_seed,
                                first_id=first_id)  # the long-horizon study's folders, reused when present
        jobs.append(Job(key, run_job, (family, family.dataset("clean")[1], dataset,
                                       None if arm == AUDIT else combination, seed, config,
                                       str(work_dir / "repair_nnunet"), device)))
    return jobs


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out, args.shared_runs, args.config))
    args.settings = None
    config, datasets, seeds = cli.scope(args, CONFIGS, CONFIG_DATASETS, horizon.DATASETS, (SETTING,))
    combination = None
    if args.audits_only and args.combination is not None:
        raise InputError("--audits-only runs no combination: drop --combination (or --audits-only)")
    if not args.audits_only:
        combination = (Combination.parse(args.combination) if args.combination is not None else
                       study_winner(args.study_results, config.name, len(horizon.CONFIG_DATASETS[config.name])))
        print(f"confirming {combination.mode}, {combination.rule}, {combination.loss} with the stock commands")
    work_dir = cli.work_folder(args, "horizon", config).resolve()
    store = ResultStore.open(args.out, FIELDS, args.resume, key_fields=KEY_FIELDS)
    audits = [(commands.ENGINE, config.name, dataset, SETTING, AUDIT, 0) for dataset in datasets]
    loops = [] if combination is None else [(commands.ENGINE, config.name, dataset, SETTING, combination.arm, seed)
                                            for dataset in datasets for seed in seeds]
    code = 0
    for todo in (audits, loops):  # every audit (and its record) first: a loop then only reuses it
        if todo:
            code = max(code, cli.execute(store, todo, lambda keys: _jobs(config, work_dir, args.device, combination,
                                                                        keys),
                                         args.workers, "repair-nnunet",
                                         lambda: summarize(args.out, args.shared_runs, config.name)))
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("repair_nnunet", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
