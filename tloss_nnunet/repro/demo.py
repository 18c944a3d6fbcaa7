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
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from tloss_nnunet.atomic import write_json
from tloss_nnunet.errors import InputError, exit_code_of
from tloss_nnunet.nnunet.schedules import (
    FIFTY_EPOCHS,
    FIVE_EPOCHS,
    NNUNET_ITERATIONS_PER_EPOCH,
    TINY_EPOCHS,
    TINY_ITERATIONS,
)
from tloss_nnunet.workers import default_workers

__all__ = ["SCHEDULES", "Schedule", "build_parser", "main", "run_demo"]

T = TypeVar("T")

@dataclass(frozen=True)
class Schedule:
    """A training schedule as a pair of trainer classes that differ only in the loss."""

    name: str
    tloss_trainer: str
    stock_trainer: str
    epochs: int
    iterations: int
    description: str

    @property
    def key(self) -> str:
        """Folder name of this schedule's results (custom demo schedules get their own)."""
        return f"{self.name}_e{self.epochs}_i{self.iterations}" if self.name == "demo" else self.name


def _schedules() -> dict[str, Schedule]:
    from tloss_nnunet.repro.demo_trainers import DEMO_EPOCHS, DEMO_ITERATIONS

    return {
        "tiny": Schedule("tiny", "nnUNetTrainerTLoss_tiny", "nnUNetTrainerDiceCE_tiny", TINY_EPOCHS, TINY_ITERATIONS,
                         "smoke test (tests)"),
        "demo": Schedule("demo", "nnUNetTrainerTLoss_demo", "nnUNetTrainer_demo", DEMO_EPOCHS, DEMO_ITERATIONS,
                         "the default: both trainings fit the 15-minute CPU budget"),
        "5epochs": Schedule("5epochs", "nnUNetTrainerTLoss_5epochs", "nnUNetTrainer_5epochs", FIVE_EPOCHS.epochs,
                            NNUNET_ITERATIONS_PER_EPOCH, "nnU-Net's 5-epoch variant (GPU: minutes; CPU: an hour+)"),
        "50epochs": Schedule("50epochs", "nnUNetTrainerTLoss_50epochs", "nnUNetTrainer_50epochs", FIFTY_EPOCHS.epochs,
                             NNUNET_ITERATIONS_PER_EPOCH, "nnU-Net's 50-epoch variant (GPU)"),
    }


SCHEDULES = _schedules()


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


def _validate(args: argparse.Namespace) -> Schedule:
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
        schedule = Schedule("demo", schedule.tloss_trainer, schedule.stock_trainer, args.epochs or schedule.epochs,
                            args.iterations or schedule.iterations, "custom demo schedule")
    return schedule


def _resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _Steps:
    """Console progress lines and wall times; times of steps done by an earlier run are kept in a JSON file."""

    def __init__(self, total: int, times_file: Path) -> None:
        self.total, self.done, self.times_file = total, 0, times_file
        self.seconds: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}

    def run(self, name: str, action: Callable[[], T], finished: Callable[[], bool] = lambda: False,
            log: Path | None = None) -> T:
        self.done += 1
        prefix = f"[{self.done}/{self.total}] {name}"
        if finished():
            print(f"{prefix}: done in an earlier run", flush=True)
            return action()  # cheap: the step sees its outputs and returns them
        print(f"{prefix} ..." + (f" (log: {log})" if log else ""), flush=True)
        started = time.perf_counter()
        result = action()
        self.seconds[name] = time.perf_counter() - started
        self.times_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.times_file, self.seconds)
        print(f"{prefix}: {self.seconds[name]:.0f} s", flush=True)
        return result


@dataclass
class _ModelContext:
    """What the per-model steps share: the step printer, nnU-Net's environment and the run's folders."""

    steps: _Steps
    env: dict[str, str]
    dataset_id: int
    dataset: Path
    run_dir: Path
    logs: Path
    schedule: Schedule
    device: str


def _train_and_test(ctx: _ModelContext, label: str, trainer: str):
    """Train ``trainer`` on the noisy dataset, predict and evaluate the clean test set; a TrainerResult."""
    from tqdm import tqdm

    from tloss_nnunet.repro import pipeline
    from tloss_nnunet.repro.report import TrainerResult, load_training_log

    key = ctx.schedule.key
    fold_dir = pipeline.model_folder(ctx.dataset_id, trainer, ctx.env) / "fold_0"
    trained = lambda: (fold_dir / pipeline.FINAL_CHECKPOINT).is_file()  # noqa: E731
    train_log = ctx.logs / f"train_{key}_{trainer}.log"

    def train() -> Path:
        if trained():
            return pipeline.train(ctx.dataset_id, trainer, ctx.env, device=ctx.device)  # returns the folder
        with tqdm(total=ctx.schedule.epochs, desc=f"  {trainer}", unit="epoch", leave=False) as bar:
            # nnU-Net logs "Epoch n" when epoch n starts: n epochs are complete by then.
            model = pipeline.train(ctx.dataset_id, trainer, ctx.env, device=ctx.device, log_file=train_log,
                                   on_epoch=lambda n: bar.update(max(0, n - bar.n)))
            bar.update(bar.total - bar.n)
            return model

    model = ctx.steps.run(f"nnUNetv2_train {trainer}", train, trained, train_log)
    images, predictions = ctx.dataset / "imagesTs", ctx.run_dir / "predictions" / key / trainer
    predict_log = ctx.logs / f"predict_{key}_{trainer}.log"
    ctx.steps.run(f"nnUNetv2_predict {trainer}",
                  lambda: pipeline.predict(images, predictions, ctx.dataset_id, trainer, ctx.env, device=ctx.device,
                                           log_file=predict_log),
                  lambda: pipeline.predictions_done(images, predictions, ctx.dataset_id, ctx.env), predict_log)
    evaluate_log = ctx.logs / f"evaluate_{key}_{trainer}.log"
    evaluation = ctx.steps.run(f"nnUNetv2_evaluate_folder {trainer}",
                               lambda: pipeline.evaluate(ctx.dataset / "labelsTs", predictions, ctx.dataset_id,
                                                         trainer, ctx.env, log_file=evaluate_log),
                               lambda: pipeline.evaluation_current(predictions), evaluate_log)
    print(f"      {label}: test Dice mean {evaluation.dice_mean:.4f}, pooled {evaluation.dice_pooled:.4f}", flush=True)
    return TrainerResult(label, trainer, model, predictions, evaluation, load_training_log(model / "fold_0"))


def run_demo(args: argparse.Namespace) -> Path:
    """Run every step for the parsed options and return the report folder."""
    schedule = _validate(args)
    device = _resolve_device(args.device)

    from tloss_nnunet.converters import convert_isic2017, write_synthetic_isic2017
    from tloss_nnunet.repro import pipeline
    from tloss_nnunet.repro.demo_trainers import EPOCHS_VARIABLE, ITERATIONS_VARIABLE
    from tloss_nnunet.repro.report import DemoData, DemoReport, write_report

    work = args.work.resolve()
    data_key = (f"isic2017_{args.train_cases}-{args.val_cases}-{args.test_cases}_{args.size}px_"
                f"a{args.alpha:g}b{args.beta:g}_seed{args.seed}")
    run_dir = work / data_key
    env = pipeline.nnunet_env(run_dir, device=device)
    # One nnUNet_results per schedule: the demo trainers' numbers come from the environment, so two custom
    # schedules share class names and must not share model folders.
    env["nnUNet_results"] = str(run_dir / "nnUNet_results" / schedule.key)
    env[EPOCHS_VARIABLE], env[ITERATIONS_VARIABLE] = str(schedule.epochs), str(schedule.iterations)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(4, default_workers()))
    steps = _Steps(total=10, times_file=run_dir / "nnUNet_results" / schedule.key / "step_seconds.json")
    print(f"tloss-nnunet demo: schedule {schedule.key} ({schedule.epochs} epochs x {schedule.iterations} iterations), "
          f"device {device}, work folder {run_dir}", flush=True)

    release = run_dir / "synthetic_isic2017"
    release_done = release / ".complete"

    def write_release() -> Path:
        if not release_done.is_file():
            write_synthetic_isic2017(release, args.train_cases, args.val_cases, args.test_cases, seed=args.seed,
                                     min_size=3 * args.size, max_size=5 * args.size, workers=workers)
            release_done.write_text("complete\n")
        return release

    steps.run("synthetic ISIC 2017 release", write_release, release_done.is_file)

    raw = Path(env["nnUNet_raw"])

    def convert():
        # verify=False: nnUNetv2_plan_and_preprocess runs nnU-Net's integrity check on the dataset we train on.
        return convert_isic2017(release, raw, first_id=args.dataset_id, alphas=[args.alpha], betas=[args.beta],
                                size=args.size, seed=args.seed, workers=workers, verify=False, progress=True)

    def converted() -> bool:
        folders = [next(raw.glob(f"Dataset{args.dataset_id + i:03d}_*"), None) for i in (0, 1)]
        return all(f is not None and (f / "dataset.json").is_file() for f in folders)

    conversion = steps.run("convert with the noise protocol", convert, converted)
    clean_ds, noisy_ds = conversion.datasets[0], conversion.datasets[1]
    noisy_id = noisy_ds.dataset_id

    steps.run(f"nnUNetv2_plan_and_preprocess {noisy_ds.name}",
              lambda: pipeline.plan_and_preprocess(noisy_id, env, log_file=logs / "plan_and_preprocess.log"),
              lambda: pipeline.preprocessing_done(noisy_id, env), logs / "plan_and_preprocess.log")

    ctx = _ModelContext(steps, env, noisy_id, noisy_ds.path, run_dir, logs, schedule, device)
    results = [_train_and_test(ctx, "T-Loss", schedule.tloss_trainer),
               _train_and_test(ctx, "stock Dice+CE", schedule.stock_trainer)]

    meta = json.loads((noisy_ds.path / "dataset.json").read_text())
    data = DemoData(
        noisy_dataset=noisy_ds.path, clean_dataset=clean_ds.path, alpha=args.alpha, beta=args.beta,
        n_train=args.train_cases, n_val=args.val_cases, n_test=meta.get("numTest", args.test_cases),
        noise_kinds=dict(noisy_ds.noise_kinds), size=args.size, seed=args.seed,
        source="synthetic ISIC 2017 look-alike release (tloss_nnunet.converters.write_synthetic_isic2017), "
               "converted by tloss_nnunet.converters.convert_isic2017",
    )
    report = DemoReport(
        data=data,
        schedule=f"{schedule.name}: {schedule.epochs} epochs x {schedule.iterations} iterations "
                 f"(trainers {schedule.tloss_trainer}, {schedule.stock_trainer})",
        device=device,
        results=results,
        seconds=dict(steps.seconds),
        notes=[f"nnU-Net fold 0: {args.train_cases} noisy training cases, {args.val_cases} clean validation cases",
               "wall times: measured when the step ran (possibly in an earlier run of the same options)"],
        grid_cases=args.grid_cases,
    )
    paths = steps.run("report", lambda: write_report(report, args.report.resolve()))
    print(f"report: {paths.markdown}\n        {paths.html}", flush=True)
    return paths.folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_code_of(lambda: run_demo(args) and 0, "demo", failures=(RuntimeError,),
                        interrupted="interrupted; run the same command again to continue")


if __name__ == "__main__":
    raise SystemExit(main())
