"""Test-set scores of a model: nnU-Net's per-case Dice (``summary.json``) and the paper's pooled Dice.

Reading and computing only; :func:`tloss_nnunet.repro.pipeline.evaluate` runs ``nnUNetv2_evaluate_folder``
and fills an :class:`Evaluation` from these functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Evaluation", "evaluation_current", "pooled_dice", "read_segmentations", "read_summary"]


@dataclass
class Evaluation:
    """Test-set scores of one model for label 1 (the foreground).

    Attributes:
        per_case: ``{case id: Dice}`` from nnU-Net's ``summary.json`` (NaN when a case and its
            prediction are both empty, as nnU-Net reports it).
        dice_mean: mean of the per-case Dice values (nnU-Net's ``mean['1']['Dice']``, NaN-ignoring).
        dice_pooled: the paper's metric, Dice over all test pixels pooled:
            ``2 * sum_i TP_i / (sum_i |pred_i| + sum_i |gt_i|)``, computed from the files.
        summary_path: the ``summary.json`` written by ``nnUNetv2_evaluate_folder``.
    """

    per_case: dict[str, float]
    dice_mean: float
    dice_pooled: float
    summary_path: Path


def pooled_dice(pairs: Sequence[tuple[np.ndarray, np.ndarray]], label: int = 1) -> float:
    """Dice of ``label`` over all ``(prediction, ground truth)`` pairs pooled into one set of pixels.

    ``2 * sum TP / (sum |pred == label| + sum |gt == label|)``; NaN when the label is absent everywhere.
    Arrays of one pair must have the same shape (any number of dimensions).
    """
    tp = predicted = reference = 0
    for prediction, truth in pairs:
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction shape {prediction.shape} != ground-truth shape {truth.shape}")
        p, t = prediction == label, truth == label
        tp += int(np.count_nonzero(p & t))
        predicted += int(np.count_nonzero(p))
        reference += int(np.count_nonzero(t))
    return 2.0 * tp / (predicted + reference) if predicted + reference else float("nan")


def read_summary(summary_path: Path, file_ending: str, label: int = 1) -> tuple[dict[str, float], float]:
    """``(per-case Dice {case id: Dice}, mean Dice)`` of ``label`` from an nnU-Net ``summary.json``."""
    summary = json.loads(Path(summary_path).read_text())
    per_case: dict[str, float] = {}
    for entry in summary["metric_per_case"]:
        name = Path(entry["prediction_file"]).name
        case_id = name[: -len(file_ending)] if name.endswith(file_ending) else name
        value = entry["metrics"][str(label)]["Dice"]
        per_case[case_id] = float("nan") if value is None else float(value)
    mean = summary["mean"][str(label)]["Dice"]
    return per_case, float("nan") if mean is None else float(mean)


def read_segmentations(gt_dir: Path, pred_dir: Path, case_ids: Sequence[str], dataset_json: dict,
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(prediction, ground truth)`` arrays per case, read with nnU-Net's reader for the dataset's format."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    ending = dataset_json["file_ending"]
    first = str(gt_dir / f"{case_ids[0]}{ending}")
    reader = determine_reader_writer_from_dataset_json(dataset_json, first, verbose=False)()
    return [(reader.read_seg(str(pred_dir / f"{c}{ending}"))[0], reader.read_seg(str(gt_dir / f"{c}{ending}"))[0])
            for c in case_ids]


def evaluation_current(pred_dir: Path, file_ending: str = ".png") -> bool:
    """True when ``pred_dir/summary.json`` exists and is newer than every prediction in ``pred_dir``."""
    summary = Path(pred_dir) / "summary.json"
    predictions = list(Path(pred_dir).glob(f"*{file_ending}"))
    return summary.is_file() and bool(predictions) and all(
        p.stat().st_mtime <= summary.stat().st_mtime for p in predictions)
