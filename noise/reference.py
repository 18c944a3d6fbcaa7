"""The published noise protocol, written out literally: the ORACLE for tests and benchmarks.

This module is deliberately plain and slow. It restates, step by step and single-process, what
the published generator does (SP-guided noisy-label segmentation, reused by the T-Loss
repository's ``datasets/noise/``): one-pixel ``scipy.ndimage`` dilation/erosion steps until the
target area is passed, and a binary search over translation steps that builds every probe's
shifted mask on a padded canvas. The fast implementation (:mod:`.morphology`, :mod:`.affine`,
:mod:`.apply`) must produce the same pixels; tests compare the two on many random masks.

Where the published code crashes (dilation/erosion of an empty mask, of a full mask, or with
``int(fg * beta) == 0``: its loop never runs and an unassigned variable is read), this oracle
raises :class:`PublishedProtocolCrash` instead of guessing. The fast path documents its own
behaviour for those cases (mask left unchanged, with a note).

Masks here are ``uint8`` arrays with values 0/1, as the published script holds them after
``label[label > 0] = 1``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import scipy.ndimage
import skimage.transform

from tloss_nnunet.noise.settings import (
    CORRUPTION_KINDS,
    MAX_ANGLE,
    MAX_PROBES,
    MAX_STEP,
    PUBLISHED_DIRECTIONS,
)


class PublishedProtocolCrash(RuntimeError):
    """The published script would fail on this input (its search loop never runs)."""


def reference_dilate(label: np.ndarray, beta: float) -> np.ndarray:
    """Dilate one cross-shaped step at a time until the area reaches ``fg + int(fg * beta)``.

    Returns the last mask, or the one before it when the last is full or when the one before is
    strictly closer to the target area.
    """
    fg = int((label > 0).sum())
    return _step_to_target(label, fg + int(fg * beta), scipy.ndimage.binary_dilation, limit=label.size)


def reference_erode(label: np.ndarray, beta: float) -> np.ndarray:
    """Erode one cross-shaped step at a time until the area reaches ``fg - int(fg * beta)``.

    Pixels outside the image count as background (``binary_erosion``'s ``border_value=0``).
    Returns the last mask, or the one before it when the last is empty or when the one before
    is strictly closer to the target area.
    """
    fg = int((label > 0).sum())
    return _step_to_target(label, fg - int(fg * beta), scipy.ndimage.binary_erosion, limit=0)


def _step_to_target(label: np.ndarray, target: int, step, limit: int) -> np.ndarray:
    """The published loop of both: ``step`` (one dilation or erosion) while the area is on the start's side of
    ``target`` and not at ``limit`` (full for dilation, empty for erosion); then the last mask, or the one before
    when the last is at ``limit`` or the one before is strictly closer to ``target``."""
    growing = limit > 0
    noisy = label.copy()
    previous = None
    while (noisy.sum() < target if growing else noisy.sum() > target) and noisy.sum() != limit:
        previous = noisy.copy()
        noisy = step(noisy, iterations=1)
    if previous is None:
        kind = "dilation" if growing else "erosion"
        raise PublishedProtocolCrash(f"{kind} loop never runs (fg={int((label > 0).sum())}, target={target})")
    noisy = noisy.astype(np.uint8)
    previous = previous.astype(np.uint8)
    if noisy.sum() == limit:
        return previous
    if abs(int(previous.sum()) - target) < abs(int(noisy.sum()) - target):
        return previous
    return noisy


def reference_rotate(label: np.ndarray, angle: float) -> np.ndarray:
    """Bilinear rotation about the centre (skimage defaults), truncated to uint8 0/1."""
    return skimage.transform.rotate(label.astype(float), angle).astype(np.uint8)


def reference_translate(
    clean: np.ndarray, rotated: np.ndarray, step: int, direction: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """Paste ``rotated`` into a zero canvas at ``(|step*dr|, |step*dc|)`` and crop to the image.

    Whatever the direction's signs, content moves towards +row/+col (the published bias).
    Returns the shifted mask and its noise rate ``(FP + FN) / fg`` against ``clean``.
    """
    step_r, step_c = step * direction[0], step * direction[1]
    rows, cols = clean.shape
    canvas = np.zeros((rows + abs(step_r), cols + abs(step_c)), dtype=clean.dtype)
    origin_r, origin_c = abs(step_r), abs(step_c)
    canvas[origin_r : origin_r + rows, origin_c : origin_c + cols] = rotated
    shifted = canvas[:rows, :cols]
    wrong = np.logical_and(shifted == 1, clean == 0).sum() + np.logical_and(shifted == 0, clean == 1).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = float(np.float64(wrong) / np.float64(clean.sum()))
    return shifted, rate


def reference_affine(
    label: np.ndarray, beta: float, angle: float, direction: tuple[int, int]
) -> np.ndarray:
    """Rotate by ``angle``, then binary-search the step in [0, 100] whose noise rate hits beta.

    The mask of the last probe is returned (not necessarily the closest one).
    """
    rotated = reference_rotate(label, angle)
    left, right, probes = 0, MAX_STEP, 0
    shifted = None
    while left < right:
        probes += 1
        if probes > MAX_PROBES:
            break
        middle = (left + right) // 2
        shifted, rate = reference_translate(label, rotated, middle, direction)
        if rate > beta:
            right = middle - 1
        elif rate < beta:
            left = middle + 1
        else:  # equal, or NaN for an empty clean mask
            break
    return shifted


def reference_add_noise(label: np.ndarray, beta: float, rng: random.Random) -> tuple[np.ndarray, str]:
    """Draw a kind (and for affine an angle and a direction) from ``rng`` and apply it."""
    kind = rng.choice(CORRUPTION_KINDS)
    if kind == "dilate":
        return reference_dilate(label, beta), kind
    if kind == "erode":
        return reference_erode(label, beta), kind
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    direction = rng.choice(PUBLISHED_DIRECTIONS)
    return reference_affine(label, beta, angle, direction), kind


def reference_protocol(
    labels: Mapping[str, np.ndarray], alpha: float, beta: float, seed: int = 0
) -> dict[str, tuple[np.ndarray, str]]:
    """Run one (alpha, beta) setting the published way: one seeded stream, interleaved work.

    Args:
        labels: case id -> clean mask (H, W), uint8 0/1.

    Returns:
        case id -> (noisy mask uint8 0/1, kind), in sorted-id order; clean cases are copies.
    """
    rng = random.Random(seed)
    ids = sorted(labels)
    shuffled = ids.copy()
    rng.shuffle(shuffled)
    noisy_ids = set(shuffled[: int(len(shuffled) * alpha)])
    result: dict[str, tuple[np.ndarray, str]] = {}
    for case in ids:
        label = labels[case]
        if case in noisy_ids:
            result[case] = reference_add_noise(label, beta, rng)
        else:
            result[case] = (label.copy(), "clean")
    return result
