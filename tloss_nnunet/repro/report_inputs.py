"""What the demo's report shows, and reading it from a run's files (no plotting, no OpenCV).

:class:`DemoReport` gathers the data set (:class:`DemoData`) and each trained model's results
(:class:`TrainerResult`); the readers take nnU-Net's per-epoch log from ``checkpoint_final.pth`` and the
converter's noise log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tloss_nnunet.repro.scores import Evaluation

__all__ = [
    "DemoData",
    "DemoReport",
    "ReportPaths",
    "TrainerResult",
    "cases_for_grid",
    "load_training_log",
    "noisy_examples",
    "read_noise_log",
]


@dataclass
class TrainerResult:
    """One trained model and its test-set evaluation.

    Attributes:
        label: short human name, e.g. ``"T-Loss"``.
        trainer: nnU-Net trainer class name (``-tr``).
        model_folder: ``.../<trainer>__nnUNetPlans__2d``.
        predictions: folder of the test-set predictions (``<case>.png``).
        evaluation: the scores (see :class:`~tloss_nnunet.repro.scores.Evaluation`).
        logging: nnU-Net's per-epoch log of ``checkpoint_final.pth`` (``ema_fg_dice``, ``mean_fg_dice``, ``nu``...).
    """

    label: str
    trainer: str
    model_folder: Path
    predictions: Path
    evaluation: Evaluation
    logging: dict[str, list[float]]


@dataclass
class DemoData:
    """The noisy training set and the clean test set the models saw.

    Attributes:
        noisy_dataset: raw folder of the noisy dataset (``imagesTr``/``labelsTr`` noisy, ``imagesTs``/``labelsTs``
            clean).
        clean_dataset: raw folder of its clean twin (same images, clean ``labelsTr``).
        alpha, beta: the noise setting.
        n_train, n_val, n_test: cases per split (training cases are the ones that may be corrupted).
        noise_kinds: ``{kind: count}`` over the training cases (``clean``, ``dilate``, ``erode``, ``affine``).
        size: image side length after conversion (pixels).
        seed: the seed of the synthetic release and of the noise protocol.
        source: where the images come from, one sentence.
    """

    noisy_dataset: Path
    clean_dataset: Path
    alpha: float
    beta: float
    n_train: int
    n_val: int
    n_test: int
    noise_kinds: dict[str, int]
    size: int
    seed: int
    source: str


@dataclass
class DemoReport:
    """Everything the report shows. ``results[0]`` is the T-Loss model, ``results[1]`` its stock twin."""

    data: DemoData
    schedule: str
    device: str
    results: list[TrainerResult]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    grid_cases: int = 4


@dataclass
class ReportPaths:
    folder: Path
    markdown: Path
    html: Path
    curves: Path
    cases: Path
    results: Path


# ----------------------------------------------------------------------------- reading run files
def load_training_log(fold_folder: Path) -> dict[str, list[float]]:
    """nnU-Net's per-epoch ``logging`` dict of ``fold_folder/checkpoint_final.pth`` as plain float lists."""
    import torch  # only here: the rest of the report does not need it

    checkpoint = torch.load(Path(fold_folder) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    logging = checkpoint.get("logging") or {}
    out: dict[str, list[float]] = {}
    for key, values in logging.items():
        try:
            out[key] = [float(v) for v in values]
        except (TypeError, ValueError):
            continue  # per-class lists (dice_per_class_or_region) are not plotted
    return out


def read_noise_log(dataset: Path) -> dict[str, str]:
    """``{training case: noise kind}`` from the converter's ``noise_log.tsv``."""
    lines = (Path(dataset) / "noise_log.tsv").read_text().splitlines()[1:]
    return {parts[0]: parts[1] for parts in (line.split("\t") for line in lines if line.strip())}


def cases_for_grid(report: DemoReport) -> list[str]:
    """The first ``grid_cases`` test cases in id order (a fixed rule, not a selection by score)."""
    return sorted(report.results[0].evaluation.per_case)[: report.grid_cases]


def noisy_examples(data: DemoData, count: int) -> list[tuple[str, str]]:
    """``count`` corrupted training cases ``(case, kind)``, taking the kinds in turn (dilate, erode, affine)."""
    kinds = read_noise_log(data.noisy_dataset)
    by_kind: dict[str, list[str]] = {}
    for case, kind in sorted(kinds.items()):
        if kind != "clean":
            by_kind.setdefault(kind, []).append(case)
    order = ([k for k in ("dilate", "erode", "affine") if k in by_kind]
             + sorted(set(by_kind) - {"dilate", "erode", "affine"}))
    picked: list[tuple[str, str]] = []
    for i in range(max((len(v) for v in by_kind.values()), default=0)):
        for kind in order:
            if i < len(by_kind[kind]) and len(picked) < count:
                picked.append((by_kind[kind][i], kind))
    return picked
