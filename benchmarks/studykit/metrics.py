"""Dice on binary label maps: the mean of per-case Dice (nnU-Net's summary) and the paper's pooled Dice."""

from __future__ import annotations

import numpy as np

from tloss_nnunet.repro.pipeline import pooled_dice


def dice_per_case(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N,) Dice of foreground (label 1) per case; NaN where both masks are empty (nnU-Net's convention).

    Args:
        prediction, reference: (N, ...) integer or bool label maps with values 0/1.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} differ in shape")
    pred = prediction.reshape(len(prediction), -1) == 1
    ref = reference.reshape(len(reference), -1) == 1
    overlap = (pred & ref).sum(axis=1)
    total = pred.sum(axis=1) + ref.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * overlap / total, np.nan)


def dice_pooled(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice over all pixels of all cases at once: 2 sum(TP) / (sum(pred) + sum(ref)) (the T-Loss paper's metric)."""
    return pooled_dice([(prediction, reference)])


def dice_mean(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Mean of the per-case Dice over the cases where it is defined (NaN if none is)."""
    per_case = dice_per_case(prediction, reference)
    return float("nan") if np.isnan(per_case).all() else float(np.nanmean(per_case))
