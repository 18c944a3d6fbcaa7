"""Synthetic Shenzhen release in the official layouts, for tests, demo and benchmarks.

CXR-like grey images (body, two dark lung fields crossed by ribs, spine, heart, clavicles) with lung masks;
the NLM layout ``ChinaSet_AllFiles/CXR_png/`` plus clinical readings, and the lung-mask release ``mask/``
(or nested ``mask/mask/``), with some images left without a mask as in the real release; optionally stored
as RGB. Seeded and reproducible, like :mod:`~tloss_nnunet.converters.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.converters.synthetic import encode_image, irregular_outline, smooth_field
from tloss_nnunet.workers import process_pool

__all__ = ["SyntheticShenzhen", "shenzhen_case", "write_synthetic_shenzhen"]


def shenzhen_case(seed: int, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One CXR-like case: ((H, W) uint8 grey image, (H, W) uint8 0/255 mask of both lungs)."""
    rng = np.random.default_rng([seed, index, 662])
    shape = (height, width)
    image = np.full(shape, 12, np.float32)
    body = np.zeros(shape, np.uint8)
    cv2.ellipse(body, (width // 2, int(height * 0.62)), (int(width * 0.46), int(height * 0.55)), 0, 0, 360, 1, -1)
    image += 150 * cv2.GaussianBlur(body.astype(np.float32), (0, 0), width * 0.03)

    lungs = np.zeros(shape, np.uint8)
    for side in (-1, 1):
        cx = width / 2 + side * width * rng.uniform(0.17, 0.21)
        cy = height * rng.uniform(0.45, 0.5)
        outline = irregular_outline(rng, (cx, cy), min(shape) * 0.19, roughness=0.08)
        outline[:, 1] = cy + (outline[:, 1] - cy) * rng.uniform(1.6, 1.9)  # lungs are tall
        outline[:, 0] = cx + (outline[:, 0] - cx) * 0.85
        cv2.fillPoly(lungs, [outline.astype(np.int32)], 255)
    heart_center = (int(width * rng.uniform(0.53, 0.58)), int(height * rng.uniform(0.62, 0.68)))
    heart = np.zeros(shape, np.uint8)
    cv2.ellipse(heart, heart_center, (int(width * 0.13), int(height * 0.11)), rng.uniform(-25, -10), 0, 360, 255, -1)
    lungs[heart > 0] = 0

    lung_soft = cv2.GaussianBlur(lungs.astype(np.float32) / 255, (0, 0), width * 0.008)
    image -= 95 * lung_soft
    ribs = np.zeros(shape, np.float32)
    for k in range(10):
        y = height * (0.22 + 0.065 * k)
        xs = np.linspace(0.15 * width, 0.85 * width, 60)
        arc = y + 0.06 * height * ((xs - width / 2) / (width / 2)) ** 2
        cv2.polylines(ribs, [np.stack([xs, arc], 1).astype(np.int32)], False, 1.0, max(2, width // 80), cv2.LINE_AA)
    image += 35 * cv2.GaussianBlur(ribs, (0, 0), width * 0.004) * body
    spine = np.exp(-(((np.arange(width) - width / 2) / (width * 0.04)) ** 2))[None, :]
    image += 60 * spine * body
    image += 20 * smooth_field(rng, shape, 6) + 4 * smooth_field(rng, shape, max(8, width // 6))
    return np.clip(image, 0, 255).astype(np.uint8), lungs


@dataclass(frozen=True)
class SyntheticShenzhen:
    """Where :func:`write_synthetic_shenzhen` put things; pass the two folders to the converter."""

    root: Path
    images_dir: Path
    masks_dir: Path
    without_mask: tuple[str, ...]


def _shenzhen_files(args: tuple[int, int, int, int, bool]) -> tuple[bytes, bytes]:
    seed, index, height, width, rgb = args
    image, mask = shenzhen_case(seed, index, height, width)
    if rgb:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return encode_image(image, ".png"), encode_image(mask, ".png")


def write_synthetic_shenzhen(
    out: str | Path,
    n: int = 12,
    *,
    missing_masks: int = 2,
    rgb: bool = False,
    nested_masks: bool = False,
    seed: int = 0,
    min_size: int = 300,
    max_size: int = 600,
    workers: int = 1,
) -> SyntheticShenzhen:
    """Write ``n`` synthetic CXRs and lung masks under ``out`` (real release: 662 images, 566 masks).

    Args:
        missing_masks: how many images get no mask (the real release has 96 such images).
        rgb: store the CXRs as 3-channel PNGs (as some mirrors do).
        nested_masks: put the masks in ``mask/mask/`` (a common mirror layout).
        min_size, max_size: image side range in pixels (real: about 3000).
    """
    if not 0 <= missing_masks <= n:
        raise ValueError(f"missing_masks must be in [0, n], got {missing_masks}")
    out = Path(out)
    rng = np.random.default_rng([seed, 1])
    images_dir = out / "ChinaSet_AllFiles" / "CXR_png"
    readings_dir = out / "ChinaSet_AllFiles" / "ClinicalReadings"
    masks_root = out / "mask"
    masks_dir = masks_root / "mask" if nested_masks else masks_root
    for folder in (images_dir, readings_dir, masks_dir):
        folder.mkdir(parents=True, exist_ok=True)
    stems = [f"CHNCXR_{i + 1:04d}_{int(i >= n // 2)}" for i in range(n)]
    without = set(rng.choice(stems, missing_masks, replace=False).tolist()) if missing_masks else set()
    heights = rng.integers(min_size, max_size + 1, n)
    widths = np.maximum(8, (heights * rng.uniform(0.9, 1.1, n)).astype(int))
    jobs = [(seed, i, int(heights[i]), int(widths[i]), rgb) for i in range(n)]
    with process_pool(workers, preload=[__name__]) as pool:
        for stem, (image_png, mask_png) in zip(stems, pool.map(_shenzhen_files, jobs, chunksize=4)):
            (images_dir / f"{stem}.png").write_bytes(image_png)
            if stem not in without:
                (masks_dir / f"{stem}_mask.png").write_bytes(mask_png)
            finding = "normal" if stem.endswith("_0") else "PTB in the right upper field"
            sex = rng.choice(["male", "female"])
            (readings_dir / f"{stem}.txt").write_text(f"{sex} {int(rng.integers(18, 80))}yrs\n{finding}\n")
    return SyntheticShenzhen(out, images_dir, masks_root, tuple(sorted(without)))
