"""``python -m tloss_nnunet.repro.demo``: the whole noisy-label pipeline in one command (``scripts/demo.sh``).

Steps, each skipped when a previous run finished it (same options):

1. write a synthetic ISIC 2017 release (dermoscopy look-alikes, official layout);
2. convert it to nnU-Net raw datasets with the paper's noise protocol (default alpha = beta = 0.7):
   noisy training masks, clean validation and test masks;
3. ``nnUNetv2_plan_and_preprocess`` the noisy dataset;
4. ``nnUNetv2_train`` the T-Loss trainer and nnU-Net's stock trainer with the same schedule;
5. ``nnUNetv2_predict`` the clean test set with both and ``nnUNetv2_evaluate_folder`` them;
6. write the report folder (``report.md``/``report.html``, ``curves.png``, ``cases.png``, ``results.json``).

Work files go to ``--work`` (one sub-folder per data configuration, one results folder per schedule);
each nnU-Net command's output goes to a log file there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tloss_nnunet.errors import InputError, exit_code_of
from tloss_nnunet.repro.demo_schedules import SCHEDULES, TrainerPair
from tloss_nnunet.workers import default_workers

__all__ = ["SCHEDULES", "TrainerPair", "build_parser", "main", "run_demo"]


def _checkout() -> Path:
    """The source checkout holding this package (editable install), else the current folder."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "setup.cfg").is_file() and (root / "scripts").is_dir() else Path.cwd()


def build_parser() -> argparse.ArgumentParser:
    checkout = _checkout()
    p = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Synthetic ISIC 2017 -> noisy training masks (alpha, beta) -> nnU-Net trained with the T-Loss "
        "and with its stock loss on the same schedule -> Dice on the clean test set -> a report folder. "
        "Re-running with the same options reuses every finished step.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--work", type=Path, default=checkout / "demo_work", help="work folder (datasets, models, logs)")
    p.add_argument("--report", type=Path, default=checkout / "reports" / "demo", help="report folder")
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default="demo",
                   help="training schedule: " + "; ".join(f"{s.name}: {s.epochs} epochs x {s.iterations} "
                                                           f"iterations, {s.description}" for s in SCHEDULES.values()))
    p.add_argument("--epochs", type=int, help="custom epochs for the demo schedule")
    p.add_argument("--iterations", type=int, help="custom training iterations per epoch for the demo schedule")
    p.add_argument("--train-cases", type=int, default=60, help="training cases (their masks get the noise)")
    p.add_argument("--val-cases", type=int, default=10, help="clean validation cases (nnU-Net's fold-0 validation)")
    p.add_argument("--test-cases", type=int, default=20, help="clean test cases")
    p.add_argument("--size", type=int, default=48,
                   help="image side after conversion, px (nnU-Net's patch is the whole image: keep it small on CPU)")
    p.add_argument("--alpha", type=float, default=0.7, help="fraction of training masks corrupted")
    p.add_argument("--beta", type=float, default=0.7, help="strength of each corruption")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when available")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images and of the noise")
    p.add_argument("--grid-cases", type=int, default=4, help="test cases shown in cases.png")
    p.add_argument("--dataset-id", type=int, default=500,
                   help="nnU-Net id of the clean dataset (the noisy one is id + 1), inside the work folder")
    return p


def _validate(args: argparse.Namespace) -> TrainerPair:
    """Check the options (every problem at once) and return the schedule to run."""
    problems = []
    for name, minimum in (("train_cases", 4), ("val_cases", 1), ("test_cases", 1), ("grid_cases", 1)):
        if getattr(args, name) < minimum:
            problems.append(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(args, name)}")
    if args.size < 16:
        problems.append(f"--size must be at least 16 px, got {args.size}")
    for name in ("alpha", "beta"):
        if not 0 <= getattr(args, name) <= 1:
            problems.append(f"--{name} must be in [0, 1], got {getattr(args, name)}")
    custom = args.epochs is not None or args.iterations is not None
    if custom and args.schedule != "demo":
        problems.append(f"--epochs/--iterations customise the demo schedule, not --schedule {args.schedule}")
    for name in ("epochs", "iterations"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            problems.append(f"--{name} must be positive, got {getattr(args, name)}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append("--device cuda: torch sees no CUDA device (use --device cpu or auto)")
    if problems:
        raise InputError("\n".join(problems))
    schedule = SCHEDULES[args.schedule]
    if custom:
        schedule = TrainerPair("demo", schedule.tloss_trainer, schedule.stock_trainer, args.epochs or schedule.epochs,
                            args.iterations or schedule.iterations, "custom demo schedule")
    return schedule


def _resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_demo(args: argparse.Namespace) -> Path:
    """Run every step for the parsed options and return the report folder."""
    schedule = _validate(args)
    device = _resolve_device(args.device)

    from tloss_nnunet.repro import pipeline
    from tloss_nnunet.repro.demo_steps import ModelContext, demo_report, noisy_family, train_and_test
    from tloss_nnunet.repro.demo_trainers import EPOCHS_VARIABLE, ITERATIONS_VARIABLE
    from tloss_nnunet.repro.report import write_report
    from tloss_nnunet.repro.steps import StepRunner

    data_key = (f"isic2017_{args.train_cases}-{args.val_cases}-{args.test_cases}_{args.size}px_"
                f"a{args.alpha:g}b{args.beta:g}_seed{args.seed}")
    run_dir = args.work.resolve() / data_key
    # One nnUNet_results per schedule: the demo trainers' numbers come from the environment, so two custom
    # schedules share class names and must not share model folders.
    env = pipeline.nnunet_env(run_dir, device=device, results=run_dir / "nnUNet_results" / schedule.key)
    env[EPOCHS_VARIABLE], env[ITERATIONS_VARIABLE] = str(schedule.epochs), str(schedule.iterations)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    steps = StepRunner(total=10, times_file=run_dir / "nnUNet_results" / schedule.key / "step_seconds.json")
    print(f"tloss-nnunet demo: schedule {schedule.key} ({schedule.epochs} epochs x {schedule.iterations} iterations), "
          f"device {device}, work folder {run_dir}", flush=True)

    conversion = noisy_family(steps, args, run_dir, Path(env["nnUNet_raw"]), workers=max(1, min(4, default_workers())))
    clean_ds, noisy_ds = conversion.datasets[0], conversion.datasets[1]
    steps.run(f"nnUNetv2_plan_and_preprocess {noisy_ds.name}",
              lambda: pipeline.plan_and_preprocess(noisy_ds.dataset_id, env, log_file=logs / "plan_and_preprocess.log"),
              lambda: pipeline.preprocessing_done(noisy_ds.dataset_id, env), logs / "plan_and_preprocess.log")

    ctx = ModelContext(steps, env, noisy_ds.dataset_id, noisy_ds.path, run_dir, logs, schedule, device)
    results = [train_and_test(ctx, "T-Loss", schedule.tloss_trainer),
               train_and_test(ctx, "stock Dice+CE", schedule.stock_trainer)]
    report = demo_report(args, ctx, clean_ds.path, noisy_ds.noise_kinds, results)
    paths = steps.run("report", lambda: write_report(report, args.report.resolve()))
    print(f"report: {paths.markdown}\n        {paths.html}", flush=True)
    return paths.folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:  # run_demo returns the report folder, not an exit code
        run_demo(args)

    return exit_code_of(run, "demo", failures=(RuntimeError,),
                        interrupted="interrupted; run the same command again to continue")


if __name__ == "__main__":
    raise SystemExit(main())
