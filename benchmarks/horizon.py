"""The long-horizon study: does the T-Loss still beat Dice+CE once every arm has finished memorising?

Frozen protocol: ``benchmarks/horizon-protocol.md`` (version 1). Five independent datasets (synthetic release
seed 100 + k, noise seed 200 + k, named ``"<release seed>-<noise seed>"``), each split as nnU-Net's fold 0 into
16 training and 4 validation cases whose labels stay noisy; nnU-Net's trainers trained in-process
(``studykit/inprocess.py``) for 3000 iterations, logged once per epoch; checkpoints kept by the rules of
``studykit/selection.py`` (``last``, nnU-Net's ``best``, ``elr``) and reported by ``horizon_report.py``.

Runs go in the protocol's order (a0.7b0.7 {dice_ce, tloss} on every dataset, then a0.5b0.7, clean, the GCE arms,
a0.3b0.7 last), so that a study cut short answers the main question first. All families live in one work folder
(one nnU-Net environment): dataset k takes dataset ids 900 + 10 k .. 900 + 10 k + 9.

Usage (from the repository root)::

    python -m benchmarks.horizon --resume --workers 2        # what is missing, in the protocol's order
    python -m benchmarks.horizon --summarize                 # horizon.json / .md / horizon_<setting>.png
    python -m benchmarks.horizon --config smoke --out /tmp/h_runs.json --workers 1
    python -m benchmarks.horizon --resume --variants --arms tloss_freeze   # a recipe added after version 1
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import horizon_report
from benchmarks.studykit import cli, inprocess
from benchmarks.studykit.config import SMOKE_FINGERPRINT_SAMPLES, StudyConfig
from benchmarks.studykit.driver import Job
from benchmarks.studykit.store import ResultStore
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "horizon_runs.json"

#: A run is identified by its dataset too.
KEY_FIELDS: tuple[str, ...] = ("engine", "config", "dataset", "setting", "loss", "seed")
FIELDS: tuple[str, ...] = ("alpha", "beta", "trainer", "test_dice_final", "dice_pooled", "dice_mean",
                           "memorisation_final", "curve", "log", "iterations", "wall_s", "machine",
                           "release_seed", "noise_seed")

#: Dataset name -> (release seed, noise seed, dataset id of its clean member).
DATASETS: dict[str, tuple[int, int, int]] = {f"{100 + k}-{200 + k}": (100 + k, 200 + k, 900 + 10 * k)
                                             for k in range(1, 6)}

HEADLINE: tuple[str, ...] = ("a0.7b0.7", "a0.5b0.7")
BASE_ARMS: tuple[str, ...] = ("dice_ce", "tloss")
GCE_ARMS: tuple[str, ...] = ("gce_q04", "gce")

#: The protocol's order of (setting, arms) groups; within a group dataset-major, so that every finished dataset
#: has all the group's arms (the analysis pairs by dataset).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a0.7b0.7", BASE_ARMS), ("a0.5b0.7", BASE_ARMS), ("clean", BASE_ARMS),
    ("a0.7b0.7", GCE_ARMS), ("a0.5b0.7", GCE_ARMS), ("a0.3b0.7", BASE_ARMS),
)
#: T-Loss recipes added after version 1 (issue 20 step 4): a new group, after version 1's plan and only with
#: ``--variants``, so version 1's plan and its report's list of missing runs stay as frozen.
VARIANT_ARMS: tuple[str, ...] = horizon_report.VERSION_2_ARMS
VARIANT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a0.7b0.7", VARIANT_ARMS), ("a0.5b0.7", VARIANT_ARMS), ("clean", VARIANT_ARMS),
)
SETTINGS: tuple[str, ...] = tuple(dict.fromkeys(setting for setting, _ in GROUPS))
ARMS: tuple[str, ...] = (*BASE_ARMS, *GCE_ARMS)

CONFIGS: dict[str, StudyConfig] = {
    "horizon": StudyConfig(name="horizon", n_train=20, n_val=4, n_test=48, image_size=64, iterations=3000,
                           iterations_per_epoch=50, batch_size=8, log_every=50, features=(8, 16, 32, 64, 128),
                           seeds=(0,), notes="protocol version 1: 16 training + 4 noisy validation cases, "
                                             "60 epochs of 50 iterations, logged every epoch"),
    "smoke": StudyConfig(name="smoke", n_train=10, n_val=2, n_test=4, image_size=32, iterations=24,
                         iterations_per_epoch=4, batch_size=4, log_every=4, features=(4, 8, 16), seeds=(0,),
                         release_min_size=40, release_max_size=56, fingerprint_samples=SMOKE_FINGERPRINT_SAMPLES,
                         notes="plumbing check; the numbers mean nothing"),
}

#: The datasets a configuration runs by default (smoke: one, a plumbing check that keeps the test suite short).
CONFIG_DATASETS: dict[str, tuple[str, ...]] = {"horizon": tuple(DATASETS), "smoke": tuple(DATASETS)[:1]}


def plan(datasets: list[str], settings: list[str] | None = None, arms: list[str] | None = None,
         seeds: tuple[int, ...] = (0,), variants: bool = False) -> list[tuple[str, str, str, int]]:
    """(dataset, setting, arm, seed) of the protocol's runs in its order, restricted to the given choices; with
    ``variants`` the :data:`VARIANT_GROUPS` follow."""
    groups = GROUPS + (VARIANT_GROUPS if variants else ())
    return [(dataset, setting, arm, seed) for setting, group in groups for dataset in datasets
            for arm in group for seed in seeds
            if (settings is None or setting in settings) and (arms is None or arm in arms)]


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT, default_config="horizon")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"from {tuple(DATASETS)} (default: the configuration's)")
    parser.add_argument("--settings", nargs="+", default=None, help=f"from {SETTINGS} (default all)")
    parser.add_argument("--arms", nargs="+", default=None,
                        help=f"from {ARMS}, with --variants also {VARIANT_ARMS} (default all)")
    parser.add_argument("--variants", action="store_true",
                        help=f"also plan the recipes added after version 1, {VARIANT_ARMS} (run only when asked)")
    args = parser.parse_args(argv)
    for name in ("datasets", "settings", "arms"):
        if getattr(args, name) is not None:
            setattr(args, name, cli.unique(getattr(args, name)))
    return args


def summary_path(out: Path) -> Path:
    """Where the summary of results file ``out`` goes: ``horizon_runs.json`` -> ``horizon.json`` (the .md and
    the plots beside it); any other name gets ``_summary``."""
    out = Path(out)
    stem = out.stem[:-len("_runs")] if out.stem.endswith("_runs") else f"{out.stem}_summary"
    return out.with_name(f"{stem}.json")


def summarize(out: Path, config_name: str) -> list[Path]:
    """Re-make horizon.json, its Markdown and plots from the records of configuration ``config_name``."""
    runs = [r for r in cli.records(out, FIELDS) if r["config"] == config_name]
    if not runs:
        raise InputError(f"{out} holds no runs of config {config_name!r} (pass --config)")
    config = CONFIGS[config_name]
    # Once a version-2 recipe has a run, its planned runs count as expected (missing ones are listed).
    variants = any(r["loss"] in VARIANT_ARMS for r in runs)
    expected = plan(list(CONFIG_DATASETS[config_name]), seeds=config.seeds, variants=variants)
    return horizon_report.write_summary(runs, summary_path(out), config, expected)


def _jobs(config: StudyConfig, work_dir: Path, todo: list[tuple]) -> list[Job]:
    folders: dict[str, dict[str, Path]] = {}
    jobs = []
    for key in todo:
        dataset, setting, arm, seed = key[2:6]
        release_seed, noise_seed, first_id = DATASETS[dataset]
        if dataset not in folders:  # each family planned and preprocessed once, on its clean member
            folders[dataset] = inprocess.prepare(work_dir, config, release_seed=release_seed, noise_seed=noise_seed,
                                                 first_id=first_id)
        extra = {"dataset": dataset, "release_seed": release_seed, "noise_seed": noise_seed}
        jobs.append(Job(key, inprocess.run_job, (arm, setting, seed, str(folders[dataset][setting]),
                                                 str(folders[dataset]["clean"]), config, "cpu", True, extra)))
    return jobs


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out, args.config))
    cli.check_choices("arm", args.arms or [], ARMS + (VARIANT_ARMS if args.variants else ()),
                      "" if args.variants else f" (the variants {', '.join(VARIANT_ARMS)} need --variants)")
    config, datasets, seeds = cli.scope(args, CONFIGS, CONFIG_DATASETS, DATASETS, SETTINGS)
    runs = plan(datasets, args.settings, args.arms, seeds, args.variants)
    if not runs:
        raise InputError("the protocol has no run for these --datasets/--settings/--arms "
                         f"(GCE arms train on {', '.join(HEADLINE)} only)")
    work_dir = cli.work_folder(args, "horizon", config)
    inprocess.activate(work_dir)  # nnU-Net reads its folders when first imported
    store = ResultStore.open(args.out, FIELDS, args.resume, key_fields=KEY_FIELDS)
    todo = [(inprocess.ENGINE, config.name, dataset, setting, arm, seed) for dataset, setting, arm, seed in runs]
    return cli.execute(store, todo, lambda keys: _jobs(config, work_dir, keys), args.workers, "horizon",
                       lambda: summarize(args.out, config.name))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("horizon", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
