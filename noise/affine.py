"""Affine noise: rotate once, then binary-search a translation whose noise rate hits beta.

Same decisions as the published code, cheaper probes. The rotation is skimage's (bilinear about
the centre, zero outside, no resize) truncated with ``astype(uint8)``: only pixels whose
interpolated value is exactly 1.0 survive. It is computed once per mask with the very same call,
because any other arithmetic could flip those exactly-1.0 pixels.

A probe asks for the noise rate ``(FP + FN) / fg`` of the rotated mask ``R`` shifted by
``(s_r, s_c)`` against the clean mask ``C``. Instead of building the shifted image it uses

    FP + FN = |C| + |S| - 2 |C ∩ S|,   S = R shifted and cropped to the image,

with ``|S|`` (the rotated pixels that stay inside the image) and ``|C ∩ S|`` counted only inside
bounding boxes, without building any image.

Shift convention: the published code pastes the rotated mask at ``(|s_r|, |s_c|)`` in a larger
canvas and crops the top-left ``H x W``, so content always moves towards +row/+col whatever the
direction's signs (``(-1, 0)`` acts like ``(1, 0)``; with the duplicated ``(-1, 1)`` the result
is: down 2/8, right 2/8, down-right 4/8 of the time). That is kept in exact mode.
``signed=True`` honours the signs (content moves by ``(s_r, s_c)``), for unbiased directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import skimage.transform

from tloss_nnunet.noise.settings import MAX_PROBES, MAX_STEP


def rotate_like_protocol(mask: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (H, W) ``mask`` by ``angle`` degrees counter-clockwise; (H, W) bool.

    Exactly ``skimage.transform.rotate(mask.astype(float), angle).astype(np.uint8)``.
    """
    return skimage.transform.rotate(mask.astype(float), angle).astype(np.uint8).astype(bool)


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(row0, row1, col0, col1)`` half-open box around the True pixels, or None if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass
class ShiftProbe:
    """Noise-rate evaluation of shifted copies of ``rotated`` against ``clean`` (both (H, W) bool)."""

    clean: np.ndarray
    rotated: np.ndarray

    def __post_init__(self) -> None:
        self.fg = int(np.count_nonzero(self.clean))
        self.clean_box = _bounding_box(self.clean)
        self.rotated_box = _bounding_box(self.rotated)

    def _kept_source(self, shift_r: int, shift_c: int) -> tuple[int, int, int, int]:
        """Half-open source rows/cols of ``rotated`` that land inside the image after the shift."""
        rows, cols = self.rotated.shape
        return (
            min(max(0, -shift_r), rows), max(0, min(rows, rows - shift_r)),
            min(max(0, -shift_c), cols), max(0, min(cols, cols - shift_c)),
        )

    def mismatches(self, shift_r: int, shift_c: int) -> int:
        """``FP + FN`` of ``rotated`` moved by ``(shift_r, shift_c)`` (content moves that way)."""
        return self.fg + self._kept(shift_r, shift_c) - 2 * self._overlap(shift_r, shift_c)

    def _kept(self, shift_r: int, shift_c: int) -> int:
        """``|S|``: rotated pixels that land inside the image, counted inside their bounding box."""
        if self.rotated_box is None:
            return 0
        r0, r1, c0, c1 = self._kept_source(shift_r, shift_c)
        rr0, rr1, rc0, rc1 = self.rotated_box
        r0, r1, c0, c1 = max(r0, rr0), min(r1, rr1), max(c0, rc0), min(c1, rc1)
        if r0 >= r1 or c0 >= c1:
            return 0
        return int(np.count_nonzero(self.rotated[r0:r1, c0:c1]))

    def _overlap(self, shift_r: int, shift_c: int) -> int:
        """``|C ∩ S|``, counted inside the intersection of the two bounding boxes only."""
        if self.clean_box is None or self.rotated_box is None:
            return 0
        rows, cols = self.clean.shape
        cr0, cr1, cc0, cc1 = self.clean_box
        rr0, rr1, rc0, rc1 = self.rotated_box
        # Output-space window: inside the image, the clean box and the shifted rotated box.
        r0, r1 = max(0, cr0, rr0 + shift_r), min(rows, cr1, rr1 + shift_r)
        c0, c1 = max(0, cc0, rc0 + shift_c), min(cols, cc1, rc1 + shift_c)
        if r0 >= r1 or c0 >= c1:
            return 0
        window_clean = self.clean[r0:r1, c0:c1]
        window_rotated = self.rotated[r0 - shift_r : r1 - shift_r, c0 - shift_c : c1 - shift_c]
        return int(np.count_nonzero(window_clean & window_rotated))

    def rate(self, shift_r: int, shift_c: int) -> float:
        """Noise rate ``(FP + FN) / fg``; NaN for an empty clean mask (as 0/0 in the protocol)."""
        wrong = self.mismatches(shift_r, shift_c)
        if self.fg == 0:
            return math.nan
        return wrong / self.fg  # exact ints, one correctly rounded division, as np.float64 does

    def shifted(self, shift_r: int, shift_c: int) -> np.ndarray:
        """The (H, W) bool image of ``rotated`` moved by the shift, zero where nothing lands."""
        out = np.zeros_like(self.rotated)
        r0, r1, c0, c1 = self._kept_source(shift_r, shift_c)
        if r0 < r1 and c0 < c1:
            out[r0 + shift_r : r1 + shift_r, c0 + shift_c : c1 + shift_c] = self.rotated[r0:r1, c0:c1]
        return out


def step_to_shift(step: int, direction: tuple[int, int], signed: bool) -> tuple[int, int]:
    """Pixel shift of a search step: ``|step * d|`` per axis (published) or signed."""
    shift_r, shift_c = step * direction[0], step * direction[1]
    return (shift_r, shift_c) if signed else (abs(shift_r), abs(shift_c))


def search_shift(probe: ShiftProbe, beta: float, direction: tuple[int, int], signed: bool) -> tuple[int, float]:
    """The published binary search over steps in [0, MAX_STEP]; returns (last step, its rate).

    ``middle = (left + right) // 2``; rate > beta -> ``right = middle - 1``; rate < beta ->
    ``left = middle + 1``; equal (or NaN) -> stop; at most ``MAX_PROBES`` probes. The *last
    probed* step is the result, even if an earlier probe was closer.
    """
    left, right = 0, MAX_STEP
    step, rate = 0, math.nan
    for _ in range(MAX_PROBES):
        if left >= right:
            break
        step = (left + right) // 2
        rate = probe.rate(*step_to_shift(step, direction, signed))
        if rate > beta:
            right = step - 1
        elif rate < beta:
            left = step + 1
        else:
            break
    return step, rate


def affine_to_target(
    mask: np.ndarray, beta: float, angle: float, direction: tuple[int, int], signed: bool = False
) -> tuple[np.ndarray, str]:
    """Rotate ``mask`` (H, W) bool by ``angle``, then shift it along ``direction`` to rate ~ beta.

    Returns:
        (noisy mask (H, W) bool, note); the note is '' except for an empty clean mask.
    """
    rotated = rotate_like_protocol(mask, angle)
    probe = ShiftProbe(mask, rotated)
    step, _ = search_shift(probe, beta, direction, signed)
    note = "" if probe.fg else "empty mask: noise rate undefined, stays empty"
    return probe.shifted(*step_to_shift(step, direction, signed)), note
