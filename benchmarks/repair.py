"""The label-repair study: does our audit find the corrupted cases as well as cleanlab, and how much of the
accuracy lost to label noise does repairing the labels give back at nnU-Net's long horizon?

Frozen protocol: ``benchmarks/repair-protocol.md`` (version 1). The long-horizon study's 5 datasets and its noisy
and clean-label runs are shared (``horizon.py``, ``results/horizon_runs.json``). Stage 1 (``repair_audit.py``):
per (dataset, setting) 4-fold cross-fitted T-Loss models, length by nnU-Net's checkpoint_best rule on the noisy
validation cases, our scores and cleanlab's on the same held-out probabilities. Stage 2 (``repair_retrain.py``):
labels repaired (ignore / replace / drop, fraction rules) and retrained for 3000 iterations with Dice+CE and the
T-Loss. Report: ``repair_report.py`` (and ``repair_audit_report.py`` for stage 1). A study resumed in a new work
folder first re-creates the audit files its pending repair runs need (``repair_audit_rebuild.py``).

Usage (from the repository root)::

    python -m benchmarks.repair --resume --workers 1 --work-dir DIR   # what is missing, in the protocol's order
    python -m benchmarks.repair --summarize                           # repair.json / .md, repair_audit.md, plots
    python -m benchmarks.repair --config smoke --out /tmp/r_runs.json --horizon-runs /tmp/h_runs.json
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks import horizon, repair_report
from benchmarks.repair_audit import AUDIT_ARM, audit_run
from benchmarks.repair_audit_rebuild import finish_superseding, missing_audits, rebuild_audit
from benchmarks.repair_retrain import HEADLINE, KEY_FIELDS, RULES, repair_run
from benchmarks.studykit import cli, inprocess
from benchmarks.studykit.config import StudyConfig
from benchmarks.studykit.driver import Job, run_tasks
from benchmarks.studykit.store import ResultStore, load_runs
from tloss_nnunet.audit.repair_rules import REPAIR_MODES
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "repair_runs.json"
ENGINE = "repair-inprocess"
FIELDS: tuple[str, ...] = ("stage", "iterations", "data_digest", "wall_s", "machine")

#: Settings of the audit stage in the protocol's order; the repair stage follows the same order.
SETTINGS: tuple[str, ...] = ("a0.7b0.7", "a0.5b0.7", "clean", "a0.3b0.7")
LOSSES: tuple[str, ...] = ("dice_ce", "tloss")
#: Length of an audit fold (its checkpoint_best rule picks the kept epoch within it).
AUDIT_ITERATIONS: dict[str, int] = {"horizon": 800, "smoke": 8}
CONFIGS: dict[str, StudyConfig] = {name: horizon.CONFIGS[name] for name in AUDIT_ITERATIONS}


def audit_config(config: StudyConfig) -> StudyConfig:
    """The audit folds' schedule: the study's with :data:`AUDIT_ITERATIONS` iterations."""
    return replace(config, iterations=AUDIT_ITERATIONS[config.name])


def plan(datasets: list[str], settings: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(dataset, setting, arm) in the protocol's order: every audit, then the headline repairs with every
    candidate rule, then clean and a0.3b0.7 with the chosen rules."""
    chosen = [s for s in SETTINGS if settings is None or s in settings]
    jobs = [(d, s, f"audit_{AUDIT_ARM}") for s in chosen for d in datasets]
    for setting in chosen:
        rules = list(RULES) if setting in HEADLINE else ["chosen"]
        jobs += [(d, setting, f"{mode}_{rule}_{loss}") for d in datasets for mode in REPAIR_MODES
                 for rule in rules for loss in LOSSES]
    return jobs


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT, default_config="horizon")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"from {tuple(horizon.DATASETS)} (default: the configuration's)")
    parser.add_argument("--settings", nargs="+", default=None, help=f"from {SETTINGS} (default all)")
    parser.add_argument("--horizon-runs", type=Path, default=horizon.DEFAULT_OUT,
                        help="the long-horizon study's records (the shared noisy and clean-oracle runs)")
    parser.add_argument("--supersede-unreproducible-audits", action="store_true",
                        help="an audit re-run on a new machine that does not reproduce its record (another kind of "
                             "CPU rounds differently) and that no repair run has used becomes the record; the old "
                             "one is kept in <out>_superseded_audits.json")
    args = parser.parse_args(argv)
    for name in ("datasets", "settings"):
        if getattr(args, name) is not None:
            setattr(args, name, cli.unique(getattr(args, name)))
    return args


def summarize(out: Path, horizon_runs: Path, config_name: str) -> list[Path]:
    """Re-make repair.json, repair.md, repair_audit.md and the plots from the records of ``config_name``."""
    runs = [r for r in load_runs(out, FIELDS, KEY_FIELDS) if r["config"] == config_name]
    if not runs:
        raise InputError(f"{out} holds no runs of config {config_name!r} (pass --config)")
    shared = [r for r in cli.records(horizon_runs, ()) if r["config"] == config_name]
    return repair_report.write_summary(runs, shared, horizon.summary_path(out),
                                       len(horizon.CONFIG_DATASETS[config_name]))


def _folders(config: StudyConfig, work_dir: Path, dataset: str) -> dict[str, Path]:
    """The horizon study's prepared raw datasets of ``dataset`` (identical data in any work folder)."""
    release_seed, noise_seed, first_id = horizon.DATASETS[dataset]
    return inprocess.prepare(work_dir, config, release_seed=release_seed, noise_seed=noise_seed, first_id=first_id)


def _jobs(config: StudyConfig, work_dir: Path, out: Path, cells: tuple[tuple[str, str], ...],
          todo: list[tuple]) -> list[Job]:
    folders: dict[str, dict[str, Path]] = {}
    jobs = []
    for key in todo:
        dataset, setting, arm, seed = key[2:6]
        release_seed, noise_seed, _ = horizon.DATASETS[dataset]
        if dataset not in folders:
            folders[dataset] = _folders(config, work_dir, dataset)
        extra = {"engine": ENGINE, "config": config.name, "release_seed": release_seed, "noise_seed": noise_seed}
        paths = (str(folders[dataset][setting]), str(folders[dataset]["clean"]))
        if arm.startswith("audit_"):
            jobs.append(Job(key, audit_run, (dataset, setting, seed, *paths, audit_config(config), str(work_dir),
                                             "cpu", extra)))
        else:
            mode, rule, loss = arm.split("_", 2)
            jobs.append(Job(key, repair_run, (dataset, setting, mode, rule, loss, seed, *paths, config, str(work_dir),
                                              str(out), cells, "cpu", extra)))
    return jobs


def set_aside_path(out: Path) -> Path:
    """Where audit records superseded by a re-run on another kind of CPU are kept (beside the records)."""
    return out.with_name(f"{out.stem}_superseded_audits.json")


def _rebuild_audits(config: StudyConfig, work_dir: Path, store: ResultStore, todo: list[tuple], workers: int,
                    supersede: bool) -> None:
    """Re-create the audit files that the pending repair runs need and this work folder lacks (a study resumed
    on another machine), each checked against its record (:mod:`benchmarks.repair_audit_rebuild`). With
    ``supersede``, an audit no repair run has used yet and that does not reproduce becomes its record; the old
    record moves to :func:`set_aside_path`."""
    done = store.done()
    records = [r for r in store.runs if r["config"] == config.name]
    missing = missing_audits(records, [key for key in todo if key not in done], work_dir)
    if not missing:
        return
    used = {(r["dataset"], r["setting"]) for r in records if r.get("stage") == "repair"}
    tasks = []
    for record in missing:
        folders = _folders(config, work_dir, record["dataset"])
        replaceable = (record["dataset"], record["setting"]) not in used
        hint = ("; no repair run has used it yet: --supersede-unreproducible-audits keeps the re-run audit as "
                "its record" if replaceable else "; repair runs have used it, so it cannot be replaced")
        tasks.append((rebuild_audit, (record, str(folders[record["setting"]]), str(folders["clean"]),
                                      audit_config(config), str(work_dir), "cpu", supersede and replaceable, hint)))
    kept = ResultStore.open(set_aside_path(store.path), (), resume=True, key_fields=KEY_FIELDS)
    for record, (line, rebuilt) in zip(missing, run_tasks(tasks, min(workers, len(tasks)),
                                                          desc="re-creating audit files")):
        print(line)
        if rebuilt is not None:  # the old record is kept first, so a kill in between loses neither
            if record not in kept.runs:  # a study killed before replacing it sets it aside again
                kept.add(record)
            store.replace(record, rebuilt)
            finish_superseding(work_dir, record["dataset"], record["setting"])


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out, args.horizon_runs, args.config))
    config, datasets, seeds = cli.scope(args, CONFIGS, horizon.CONFIG_DATASETS, horizon.DATASETS, SETTINGS)
    work_dir = cli.work_folder(args, "repair", config)
    inprocess.activate(work_dir)  # nnU-Net reads its folders when first imported
    store = ResultStore.open(args.out, FIELDS, args.resume, key_fields=KEY_FIELDS)
    todo = [(ENGINE, config.name, dataset, setting, arm, seed) for dataset, setting, arm in
            plan(datasets, args.settings) for seed in seeds]
    cells = tuple((d, s) for s in HEADLINE if args.settings is None or s in args.settings for d in datasets)
    _rebuild_audits(config, work_dir, store, todo, args.workers, args.supersede_unreproducible_audits)
    return cli.execute(store, todo, lambda keys: _jobs(config, work_dir, Path(args.out), cells, keys), args.workers,
                       "repair", lambda: summarize(args.out, args.horizon_runs, config.name))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("repair", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
