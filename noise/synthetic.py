"""Synthetic lesion-like binary masks for tests, benchmarks and demos (no real data needed).

A mask is the union of one to three ellipses with a wavy border (radius modulated by a few
random harmonics), so that shapes are irregular like skin lesions; centres may lie near or past
the image border so that some lesions touch it.
"""

from __future__ import annotations

import numpy as np


def lesion_like_mask(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    size_range: tuple[float, float] = (0.08, 0.35),
    border_margin: float = 0.1,
    max_blobs: int = 3,
) -> np.ndarray:
    """Return a random (H, W) bool mask.

    Args:
        rng: source of randomness (the mask depends only on its state).
        shape: (H, W).
        size_range: ellipse semi-axes as fractions of H and W.
        border_margin: centres are drawn in [-margin, 1 + margin] times the size, so lesions can
            be cut by the border.
        max_blobs: at most this many ellipses are united.
    """
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols].astype(float)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(int(rng.integers(1, max_blobs + 1))):
        centre_r = rng.uniform(-border_margin, 1 + border_margin) * rows
        centre_c = rng.uniform(-border_margin, 1 + border_margin) * cols
        radius_r = max(1.0, rng.uniform(*size_range) * rows)
        radius_c = max(1.0, rng.uniform(*size_range) * cols)
        angle = np.arctan2(yy - centre_r, xx - centre_c)
        wobble = 1 + sum(rng.uniform(0, 0.12) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        mask |= ((yy - centre_r) / radius_r) ** 2 + ((xx - centre_c) / radius_c) ** 2 < wobble**2
    return mask
