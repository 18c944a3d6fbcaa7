"""The steps of one demo run: the data (synthetic release, noisy conversion), each model's train / predict /
evaluate, and the report's content. :func:`tloss_nnunet.repro.demo.run_demo` calls them in order.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.repro import pipeline
from tloss_nnunet.repro.demo_schedules import TrainerPair
from tloss_nnunet.repro.report import DemoData, DemoReport, TrainerResult, load_training_log
from tloss_nnunet.repro.steps import StepRunner

__all__ = ["ModelContext", "demo_report", "noisy_family", "train_and_test"]


def noisy_family(steps: StepRunner, args: argparse.Namespace, run_dir: Path, raw: Path, workers: int):
    """Steps 1-2: the synthetic ISIC 2017 release and its conversion (clean + one noisy dataset); the
    converter's :class:`~tloss_nnunet.converters.family.ConversionReport`."""
    from tloss_nnunet.converters import convert_isic2017, write_synthetic_isic2017

    release = run_dir / "synthetic_isic2017"
    release_done = release / ".complete"

    def write_release() -> Path:
        if not release_done.is_file():
            write_synthetic_isic2017(release, args.train_cases, args.val_cases, args.test_cases, seed=args.seed,
                                     min_size=3 * args.size, max_size=5 * args.size, workers=workers)
            release_done.write_text("complete\n")
        return release

    steps.run("synthetic ISIC 2017 release", write_release, release_done.is_file)

    def convert():
        # verify=False: nnUNetv2_plan_and_preprocess runs nnU-Net's integrity check on the dataset we train on.
        return convert_isic2017(release, raw, first_id=args.dataset_id, alphas=[args.alpha], betas=[args.beta],
                                size=args.size, seed=args.seed, workers=workers, verify=False, progress=True)

    def converted() -> bool:
        folders = [next(raw.glob(f"Dataset{args.dataset_id + i:03d}_*"), None) for i in (0, 1)]
        return all(f is not None and (f / "dataset.json").is_file() for f in folders)

    return steps.run("convert with the noise protocol", convert, converted)


@dataclass
class ModelContext:
    """What the per-model steps share: the step printer, nnU-Net's environment and the run's folders."""

    steps: StepRunner
    env: dict[str, str]
    dataset_id: int
    dataset: Path
    run_dir: Path
    logs: Path
    schedule: TrainerPair
    device: str


def train_and_test(ctx: ModelContext, label: str, trainer: str) -> TrainerResult:
    """Train ``trainer`` on the noisy dataset, predict and evaluate the clean test set; a TrainerResult."""
    from tqdm import tqdm

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


def demo_report(args: argparse.Namespace, ctx: ModelContext, clean_dataset: Path, noise_kinds: dict[str, int],
                results: list[TrainerResult]) -> DemoReport:
    """What the report shows, from the options, the datasets and the models' results."""
    schedule = ctx.schedule
    meta = json.loads((ctx.dataset / "dataset.json").read_text())
    data = DemoData(
        noisy_dataset=ctx.dataset, clean_dataset=clean_dataset, alpha=args.alpha, beta=args.beta,
        n_train=args.train_cases, n_val=args.val_cases, n_test=meta.get("numTest", args.test_cases),
        noise_kinds=dict(noise_kinds), size=args.size, seed=args.seed,
        source="synthetic ISIC 2017 look-alike release (tloss_nnunet.converters.write_synthetic_isic2017), "
               "converted by tloss_nnunet.converters.convert_isic2017",
    )
    return DemoReport(
        data=data,
        schedule=f"{schedule.name}: {schedule.epochs} epochs x {schedule.iterations} iterations "
                 f"(trainers {schedule.tloss_trainer}, {schedule.stock_trainer})",
        device=ctx.device,
        results=results,
        seconds=dict(ctx.steps.seconds),
        notes=[f"nnU-Net fold 0: {args.train_cases} noisy training cases, {args.val_cases} clean validation cases",
               "wall times: measured when the step ran (possibly in an earlier run of the same options)"],
        grid_cases=args.grid_cases,
    )
