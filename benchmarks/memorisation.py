"""Memorisation study: does nnU-Net fit the corrupted masks of noisy training labels, and does the T-Loss stop it?

Each run trains one arm (an nnU-Net trainer: stock Dice+CE or a T-Loss recipe) on one noise setting of a small
synthetic ISIC-like dataset for hundreds of iterations with the in-process engine (``studykit/inprocess.py``),
and logs every ``log_every`` iterations the memorisation index M(t) = Dice(prediction, noisy mask) -
Dice(prediction, clean mask) over the corrupted training cases, the clean-test Dice, nu, MSE and per-image
weights. Runs of the same seed share the network initialisation and the batch sequence: arms compare paired.

``--engine nnunet`` checks the outcome inside nnU-Net itself with the stock-command engine
(``studykit/commands.py``): plan, ``nnUNetv2_train``, predict, evaluate, stock ``nnUNetTrainer`` against the
default ``nnUNetTrainerTLoss`` on the same schedule and network width (the kit's ``_study`` trainers).

Usage (from the repository root)::

    python -m benchmarks.memorisation --settings a0.7b0.7 clean --arms dice_ce tloss_absolute --resume
    python -m benchmarks.memorisation --summarize
    python -m benchmarks.memorisation --summarize --grid-out benchmarks/results/robustness.json   # the loss grid
    python -m benchmarks.memorisation --engine nnunet --settings clean a0.7b0.7 --seeds 0 1 2 --resume
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import grid_view, memorisation_report
from benchmarks.studykit import cli, commands, inprocess
from benchmarks.studykit.arms import ARMS, SCHEDULES
from benchmarks.studykit.config import SMOKE_FINGERPRINT_SAMPLES, StudyConfig, get_config
from benchmarks.studykit.driver import Job
from benchmarks.studykit.grid import SETTINGS
from benchmarks.studykit.store import ResultStore
from tloss_nnunet.errors import InputError

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = {"inprocess": RESULTS / "memorisation.json", "nnunet": RESULTS / "memorisation_nnunet.json"}
ENGINES = {"inprocess": inprocess.ENGINE, "nnunet": commands.ENGINE}

#: The record fields of each engine (besides the run key).
FIELDS: dict[str, tuple[str, ...]] = {
    "inprocess": ("alpha", "beta", "trainer", "test_dice_final", "dice_pooled", "dice_mean", "memorisation_final",
                  "onset", "nu_final", "curve", "log", "iterations", "wall_s", "machine"),
    "nnunet": ("alpha", "beta", "trainer", "dice_mean", "dice_pooled", "nu_final", "iterations", "wall_s", "machine"),
}

CONFIGS: dict[str, StudyConfig] = {
    "smoke": StudyConfig(name="smoke", n_train=6, n_val=2, n_test=4, image_size=32, iterations=8,
                         iterations_per_epoch=4, batch_size=4, log_every=4, features=(4, 8, 16), seeds=(0,),
                         release_min_size=40, release_max_size=56, fingerprint_samples=SMOKE_FINGERPRINT_SAMPLES,
                         notes="plumbing check; the numbers mean nothing"),
    "cpu": StudyConfig(name="cpu", n_train=16, n_val=4, n_test=48, image_size=64, iterations=800,
                       iterations_per_epoch=50, batch_size=8, log_every=50, features=(8, 16, 32, 64, 128),
                       notes="few training cases, light augmentation, many passes: the regime where a network "
                             "can fit every training mask"),
}


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT["inprocess"])
    parser.set_defaults(out=None)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="inprocess",
                        help="inprocess: trainer objects fed in-process (the study); nnunet: the stock commands")
    parser.add_argument("--settings", nargs="+", default=["a0.7b0.7"], help=f"from {SETTINGS}")
    parser.add_argument("--arms", nargs="+", default=None,
                        help=f"inprocess: from {tuple(ARMS)} (default all); nnunet: {tuple(SCHEDULES['study'])}")
    parser.add_argument("--grid-out", type=Path, default=None,
                        help="inprocess: also write the grid of the loss arms in the robustness study's format to "
                             "this JSON, with its .md and .png")
    args = parser.parse_args(argv)
    args.out = args.out or DEFAULT_OUT[args.engine]
    args.arms = cli.unique(args.arms or (ARMS if args.engine == "inprocess" else SCHEDULES["study"]))
    args.settings = cli.unique(args.settings)
    return args


def summarize(out: Path, grid_out: Path | None = None) -> list[Path]:
    """Re-make the Markdown and plots of ``out`` (and the robustness-format grid at ``grid_out``)."""
    runs = cli.records(out, ())
    if all(r.get("engine") == commands.ENGINE for r in runs):
        if grid_out is not None:
            raise InputError("--grid-out needs the in-process study's results, not the nnU-Net check's")
        return memorisation_report.write_check_summary(runs, out)
    written = memorisation_report.write_summary(runs, out, CONFIGS)
    if grid_out is not None:
        written += grid_view.write_grid(runs, grid_out, CONFIGS)
    return written


def _jobs(args, config: StudyConfig, work_dir: Path, todo: list[tuple]) -> list[Job]:
    if args.engine == "nnunet":
        from benchmarks.studykit.data import prepare_family

        engine = commands.CommandEngine(prepare_family(work_dir, config, verify=False), config, work_dir / "nnunet")
        return [Job(key, engine.run, key[2:5]) for key in todo]
    datasets = inprocess.prepare(work_dir, config)
    clean = str(datasets["clean"])
    return [Job(key, inprocess.run_job, (arm, setting, seed, str(datasets[setting]), clean, config))
            for key in todo for setting, arm, seed in [key[2:5]]]


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out, args.grid_out))
    cli.check_choices("setting", args.settings, SETTINGS)
    cli.check_choices("arm", args.arms, ARMS if args.engine == "inprocess" else SCHEDULES["study"],
                      f" for engine {args.engine}")
    cli.check_workers(args)
    config = get_config(CONFIGS, args.config)
    work_dir = cli.work_folder(args, "memorisation", config)
    inprocess.activate(work_dir)  # nnU-Net reads its folders when first imported
    store = ResultStore.open(args.out, FIELDS[args.engine], args.resume)
    seeds = args.seeds if args.seeds is not None else list(config.seeds)
    # Seed-major: an interrupted study has every arm of the first seeds, which the paired analysis needs.
    todo = [(ENGINES[args.engine], config.name, setting, arm, seed)
            for seed in seeds for setting in args.settings for arm in args.arms]
    workers = args.workers if args.engine == "inprocess" else 1  # nnU-Net's commands use the cores themselves
    return cli.execute(store, todo, lambda keys: _jobs(args, config, work_dir, keys), workers, "memorisation",
                       lambda: summarize(args.out, args.grid_out))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("memorisation", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
