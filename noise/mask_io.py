"""Reading, validating and writing binary mask PNGs.

Accepted masks: single-channel PNGs (8- or 16-bit) whose values are {0, 1} or {0, 255}.
``max_value`` (0, 1 or 255) records the file's convention so that the noisy copy is written in
the same one: 255 -> 0/255, otherwise 0/1. An all-zero mask (max_value 0) is written as zeros,
which is the same file in either convention (no corruption can add pixels to an empty mask).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.errors import InputError

#: Largest number of distinct bad values quoted in an error message.
_MAX_VALUES_SHOWN = 6


def _distinct_values(image: np.ndarray) -> list[int]:
    """Sorted distinct values; a histogram for 8-bit images avoids sorting millions of pixels."""
    if image.dtype == np.uint8:
        return np.flatnonzero(np.bincount(image.ravel(), minlength=256)).tolist()
    return np.unique(image).tolist()


def read_binary_mask(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a binary mask PNG.

    Returns:
        (mask (H, W) bool, max_value) with max_value in {0, 1, 255}.

    Raises:
        InputError: missing or unreadable file, more than one channel, or values other than
            {0, 1} / {0, 255}. The message starts with the file name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: missing (no such file)")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path.name}: unreadable (not an image OpenCV can decode)")
    if image.ndim != 2:
        raise InputError(
            f"{path.name}: has {image.shape[2]} channels, expected a single-channel binary mask"
        )
    max_value = int(image.max())
    # The common case, checked without a histogram: all non-zero pixels equal max_value.
    if max_value == 0 or (
        max_value in (1, 255) and np.count_nonzero(image) == np.count_nonzero(image == max_value)
    ):
        return image > 0, max_value
    values = _distinct_values(image)
    bad = [value for value in values if value not in (0, 1, 255)]
    if bad:
        shown = ", ".join(str(value) for value in bad[:_MAX_VALUES_SHOWN])
        more = ", ..." if len(bad) > _MAX_VALUES_SHOWN else ""
        raise InputError(f"{path.name}: values other than 0/1/255 ({shown}{more})")
    raise InputError(f"{path.name}: mixes 1 and 255 as foreground, expected 0/1 or 0/255")


def write_binary_mask(path: str | os.PathLike, mask: np.ndarray, max_value: int) -> None:
    """Write (H, W) bool ``mask`` as an 8-bit PNG with foreground 255 if ``max_value == 255`` else 1."""
    image = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # 0/1 without a copy
    if max_value == 255:
        image = image * np.uint8(255)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
