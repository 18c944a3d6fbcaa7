"""Applying one case's planned corruption to its mask (the per-mask work, run in parallel)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tloss_nnunet.noise.affine import affine_to_target
from tloss_nnunet.noise.morphology import dilate_to_target, erode_to_target
from tloss_nnunet.noise.settings import CaseNoise


@dataclass(frozen=True)
class NoisyMask:
    """Result of :func:`apply_noise`.

    Attributes:
        mask: (H, W) bool, the corrupted mask.
        kind: the applied kind (as planned).
        noise_rate: ``(FP + FN) / fg_clean`` of ``mask`` against the clean mask; NaN when the
            clean mask is empty.
        note: '' or why the result deviates from a plain run of the protocol (e.g. a tiny mask
            the published script would crash on, left unchanged).
    """

    mask: np.ndarray
    kind: str
    noise_rate: float
    note: str = ""


def noise_rate(clean: np.ndarray, noisy: np.ndarray) -> float:
    """``(FP + FN) / |clean|`` for two (H, W) masks; NaN when ``clean`` is empty."""
    fg = int(np.count_nonzero(clean))
    if fg == 0:
        return math.nan
    return int(np.count_nonzero(clean != noisy)) / fg


def as_binary_mask(mask: np.ndarray) -> np.ndarray:
    """Validate a 2-D mask of {0, 1} (bool or integers) and return it as bool."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("mask values must be 0/1 (or bool); binarise 0/255 masks first")
    return mask.astype(bool)


def apply_noise(mask: np.ndarray, spec: CaseNoise, beta: float, unbiased: bool = False) -> NoisyMask:
    """Corrupt one clean mask according to its planned decisions.

    Args:
        mask: (H, W) bool or 0/1 integers, the clean mask at working resolution.
        spec: the case's decisions from :func:`~tloss_nnunet.noise.plan_noise`.
        beta: the setting's strength.
        unbiased: honour the sign of ``spec.direction`` when shifting (content moves along it);
            ``False`` reproduces the published shift, which always moves towards +row/+col.

    Returns:
        :class:`NoisyMask`; pixel-identical to the published protocol in exact mode, except
        where that crashes (see ``note``).
    """
    clean = as_binary_mask(mask)
    if spec.kind == "clean":
        noisy, note = clean.copy(), ""
    elif spec.kind == "dilate":
        noisy, note = dilate_to_target(clean, beta)
    elif spec.kind == "erode":
        noisy, note = erode_to_target(clean, beta)
    else:
        assert spec.angle is not None and spec.direction is not None  # CaseNoise guarantees it
        noisy, note = affine_to_target(clean, beta, spec.angle, spec.direction, signed=unbiased)
    return NoisyMask(mask=noisy, kind=spec.kind, noise_rate=noise_rate(clean, noisy), note=note)
