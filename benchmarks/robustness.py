"""Robustness study: does the T-Loss beat nnU-Net's own loss (Dice+CE) and other baselines under label noise?

For every noise setting (clean; alpha in {0.3, 0.5, 0.7} x beta in {0.5, 0.7}, the paper's protocol), loss arm
(tloss, dice_ce = nnU-Net's stock trainer, ce, dice, gce) and seed, nnU-Net's stock commands train the arm's
trainer on the configuration's schedule and measure Dice on the CLEAN test labels (mean of per-case Dice, and the
paper's pooled Dice), with the stock-command engine (``studykit/commands.py``).

The committed grid (``results/robustness.*``) is the memorisation regime's: the loss arms of the memorisation
study's in-process runs, written by ``python -m benchmarks.memorisation --summarize --grid-out ...``; this
script's ``--summarize`` re-makes any grid's table and plot, that one included.

Configurations: ``smoke`` (the ``_tiny`` trainers on a tiny family: minutes on a CPU) and ``gpu`` (the
``_50epochs`` trainers at 256 x 256 with ISIC 2017's case counts; a GPU machine).

Usage (from the repository root)::

    python -m benchmarks.robustness --config gpu --device cuda --release /data/ISIC2017 \\
        --out benchmarks/results/robustness_gpu.json --resume
    python -m benchmarks.robustness --summarize                      # results/robustness.json
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import grid_view, robustness_report
from benchmarks.memorisation import CONFIGS as MEMORISATION_CONFIGS
from benchmarks.studykit import cli, commands
from benchmarks.studykit.arms import LOSS_ARMS
from benchmarks.studykit.config import StudyConfig, get_config
from benchmarks.studykit.driver import Job
from benchmarks.studykit.grid import SETTINGS
from benchmarks.studykit.store import ResultStore
from tloss_nnunet.nnunet.schedules import NNUNET_ITERATIONS_PER_EPOCH, TINY_EPOCHS, TINY_ITERATIONS

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "robustness.json"
TITLE = "Robustness study"
COMMAND = "python -m benchmarks.robustness --summarize"

#: Stock-command configurations: nnU-Net plans the network and batch (``features=()``, ``batch_size=0``).
CONFIGS: dict[str, StudyConfig] = {
    "smoke": StudyConfig(name="smoke", n_train=8, n_val=2, n_test=4, image_size=32, release_min_size=40,
                         release_max_size=56, iterations=TINY_EPOCHS * TINY_ITERATIONS,
                         iterations_per_epoch=TINY_ITERATIONS, batch_size=0, log_every=0, features=(),
                         schedule="tiny", seeds=(0,), notes="plumbing check only: the numbers mean nothing"),
    "gpu": StudyConfig(name="gpu", n_train=2000, n_val=150, n_test=600, image_size=256, release_min_size=300,
                       release_max_size=700, iterations=50 * NNUNET_ITERATIONS_PER_EPOCH,
                       iterations_per_epoch=NNUNET_ITERATIONS_PER_EPOCH, batch_size=0, log_every=0, features=(),
                       schedule="50epochs", seeds=(0, 1, 2),
                       notes="nnU-Net 2D, 50 epochs x 250 iterations, ISIC-2017 case counts at 256 x 256"),
}


def describe(engine: str, name: str) -> str:
    """The configuration sentence of a stock-command grid's Markdown."""
    config = CONFIGS.get(name)
    if config is None:
        return "Configuration: not one of this version's configurations."
    return (f"Configuration: synthetic ISIC-like data, {config.n_train} training / {config.n_test} test cases at "
            f"{config.image_size} x {config.image_size}; nnU-Net 2D, trainers of schedule '{config.schedule}'. "
            f"{config.notes}.")


def summarize(out: Path) -> list[Path]:
    runs = cli.records(out, robustness_report.FIELDS)
    if grid_view.is_grid(runs):
        return grid_view.write_summary(runs, out, MEMORISATION_CONFIGS)
    return robustness_report.write_summary(runs, out, TITLE, COMMAND, grid_view.LEGEND, describe)


def parse_args(argv: list[str] | None = None):
    parser = cli.parser(__doc__, CONFIGS, DEFAULT_OUT, default_config="smoke")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help=f"from {SETTINGS}")
    parser.add_argument("--losses", nargs="+", default=list(LOSS_ARMS), help=f"from {LOSS_ARMS}")
    parser.add_argument("--release", type=Path, default=None,
                        help="an ISIC 2017 release to convert instead of the synthetic one")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    parser.add_argument("--verify-datasets", action="store_true",
                        help="run nnU-Net's integrity check on every converted dataset (slow on small machines)")
    args = parser.parse_args(argv)
    args.settings, args.losses = cli.unique(args.settings), cli.unique(args.losses)
    return args


def run(args) -> int:
    if args.summarize:
        return cli.wrote(summarize(args.out))
    cli.check_choices("setting", args.settings, SETTINGS)
    cli.check_choices("loss", args.losses, LOSS_ARMS)
    config = get_config(CONFIGS, args.config)
    work_dir = cli.work_folder(args, "robustness", config)
    store = ResultStore.open(args.out, robustness_report.FIELDS, args.resume)
    seeds = cli.unique(args.seeds if args.seeds is not None else config.seeds)
    # Loss by loss in LOSS_ARMS order: an interrupted grid has the headline comparison on every setting first.
    todo = [(commands.ENGINE, config.name, setting, loss, seed) for loss in LOSS_ARMS if loss in args.losses
            for seed in seeds for setting in args.settings]

    def jobs(keys: list[tuple]) -> list[Job]:
        from benchmarks.studykit.data import prepare_family

        family = prepare_family(work_dir, config, args.release, verify=args.verify_datasets)
        engine = commands.CommandEngine(family, config, work_dir / "nnunet", device=args.device)
        return [Job(key, engine.run, key[2:5]) for key in keys]

    # One run at a time: nnU-Net's commands use the machine's cores themselves.
    return cli.execute(store, todo, jobs, 1, f"robustness {config.name}", lambda: summarize(args.out))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("robustness", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
