"""Synthetic ISIC 2017 release in the official layout, and the drawing helpers of the synthetic releases, for tests,
demo and benchmarks.

The real data cannot be downloaded where this project is built and tested, so these writers
produce small (or, for benchmarks, full-size) look-alikes, seeded and reproducible:

* ISIC 2017: dermoscopy-like pictures (skin tone with shading, pores and hairs, a dark vignette)
  with one irregular pigmented lesion; its ground truth is exactly the lesion's outline. The six
  official folders (or zips, each holding its folder), ``ISIC_xxxxxxx_superpixels.png`` decoys and
  the ``*_metadata.csv`` files are written; image sizes vary.
* Shenzhen: see :mod:`~tloss_nnunet.converters.synthetic_shenzhen` (it shares the drawing helpers below).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.converters.isic2017 import OFFICIAL_FOLDERS
from tloss_nnunet.workers import process_pool


# ----------------------------------------------------------------------------- shared drawing
def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """(H, W) float32 noise in about [-1, 1], smooth at the scale of ``shape / cells``."""
    h, w = shape
    coarse = rng.standard_normal((max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))))
    field = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return field / (np.abs(field).max() + 1e-6)


def irregular_outline(rng: np.random.Generator, center: tuple[float, float], radius: float,
                       roughness: float, points: int = 240) -> np.ndarray:
    """(points, 2) int32 (x, y) polygon: a circle whose radius is modulated by random harmonics."""
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 9):
        r += roughness * rng.normal(0, 1 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.35, None)
    xy = np.stack([center[0] + r * np.cos(theta), center[1] + r * np.sin(theta)], axis=1)
    return np.round(xy).astype(np.int32)


def encode_image(image: np.ndarray, ext: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else []
    ok, buffer = cv2.imencode(ext, image, params)
    assert ok
    return buffer.tobytes()


# ----------------------------------------------------------------------------- ISIC 2017
def isic_case(seed: int, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One dermoscopy-like case: ((H, W, 3) uint8 BGR image, (H, W) uint8 0/255 lesion mask).

    The smooth content (skin shading, pores, pigment, vignette) is rendered at most 768 px wide
    and upsampled, so that ISIC-size pictures (4000 px) stay cheap; the lesion outline, the
    mask, hairs and grain are drawn at full resolution.
    """
    rng = np.random.default_rng([seed, index, 2017])
    scale = min(1.0, 768 / max(height, width))
    small = (max(8, round(height * scale)), max(8, round(width * scale)))
    skin = np.array([rng.uniform(200, 240), rng.uniform(150, 190), rng.uniform(125, 165)], np.float32)
    image = skin + 18 * smooth_field(rng, small, 4)[..., None] + 7 * smooth_field(rng, small, 64)[..., None]

    radius = min(height, width) * rng.uniform(0.12, 0.32)
    center = (width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65))
    outline = irregular_outline(rng, center, radius, roughness=rng.uniform(0.15, 0.45))
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [outline], 255)
    small_mask = np.zeros(small, np.float32)
    cv2.fillPoly(small_mask, [np.round(outline * [small[1] / width, small[0] / height]).astype(np.int32)], 1.0)
    alpha = cv2.GaussianBlur(small_mask, (0, 0), max(1.0, radius * scale * 0.04))[..., None]
    lesion_rgb = np.array([rng.uniform(95, 160), rng.uniform(55, 100), rng.uniform(35, 80)], np.float32)
    image = image * (1 - alpha) + (lesion_rgb + 22 * smooth_field(rng, small, 24)[..., None]) * alpha

    yy, xx = np.ogrid[: small[0], : small[1]]
    dist = np.hypot((yy - small[0] / 2) / (small[0] / 2), (xx - small[1] / 2) / (small[1] / 2))
    image *= np.clip(1.25 - 0.55 * dist ** 3, 0.15, 1.0)[..., None]  # dermatoscope vignette

    image = cv2.resize(np.clip(image, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    grain = rng.integers(-4, 5, (height, width, 1), dtype=np.int16)
    image = np.clip(image + grain, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 7))):  # hairs: dark smooth curves
        start = rng.uniform([0, 0], [width, height])
        steps = np.cumsum(rng.normal(0, 1, (12, 2)) * width / 40 + rng.normal(0, width / 25, 2), axis=0)
        curve = np.round(start + steps).astype(np.int32)
        cv2.polylines(image, [curve], False, (30, 25, 20), int(rng.integers(1, 3 + width // 800)), cv2.LINE_AA)
    return image[..., ::-1].copy(), mask  # RGB -> BGR for OpenCV's encoder


def _superpixels(height: int, width: int, cells: int = 40) -> np.ndarray:
    """Superpixel-map decoy in the ISIC encoding (index = R + 256 G + 65536 B), grid cells."""
    step = max(height, width) // cells + 1
    index = (np.arange(height)[:, None] // step) * (width // step + 1) + np.arange(width)[None, :] // step
    rgb = np.stack([index & 255, (index >> 8) & 255, (index >> 16) & 255], axis=-1).astype(np.uint8)
    return rgb[..., ::-1]


def _isic_files(args: tuple[int, int, str, int, int, bool]) -> list[tuple[str, bytes]]:
    """Encoded files of one case: image JPEG, superpixels PNG (optional) and mask PNG."""
    seed, index, case_id, height, width, superpixels = args
    image, mask = isic_case(seed, index, height, width)
    files = [(f"{case_id}.jpg", encode_image(image, ".jpg")),
             (f"{case_id}_segmentation.png", encode_image(mask, ".png"))]
    if superpixels:
        files.append((f"{case_id}_superpixels.png", encode_image(_superpixels(height, width), ".png")))
    return files


def write_synthetic_isic2017(
    out: str | Path,
    n_train: int = 8,
    n_val: int = 3,
    n_test: int = 4,
    *,
    seed: int = 0,
    min_size: int = 300,
    max_size: int = 700,
    as_zip: bool = False,
    superpixels: bool = True,
    workers: int = 1,
) -> Path:
    """Write a synthetic ISIC 2017 Part 1 release under ``out`` and return ``out``.

    Args:
        n_train, n_val, n_test: cases per split (the real release: 2000, 150, 600).
        min_size, max_size: image width range in pixels; height is 0.65-0.85 of the width.
        as_zip: write the six official ``.zip`` files (each holding its folder) instead of folders.
        superpixels: also write the ``*_superpixels.png`` decoys.
        workers: processes used to draw and encode the images.
    """
    out = Path(out)
    rng = np.random.default_rng([seed, 0])
    total = n_train + n_val + n_test
    numbers = np.cumsum(rng.integers(1, 4, total)) - 1
    roles = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    order = np.concatenate([rng.permutation(n_train + n_val), np.arange(n_train + n_val, total)])
    widths = rng.integers(min_size, max_size + 1, total)
    heights = np.maximum(8, (widths * rng.uniform(0.65, 0.85, total)).astype(int))
    jobs = [(seed, int(i), f"ISIC_{numbers[order[i]]:07d}", int(heights[i]), int(widths[i]), superpixels)
            for i in range(total)]

    with _ReleaseWriter(out, as_zip) as writer, \
            process_pool(workers, preload=[__name__]) as pool:
        for role, files in zip(roles, pool.map(_isic_files, jobs, chunksize=4)):
            image_folder, mask_folder = OFFICIAL_FOLDERS[role]
            for filename, data in files:
                writer.add(mask_folder if filename.endswith("_segmentation.png") else image_folder, filename, data)
        for role, (image_folder, _) in OFFICIAL_FOLDERS.items():
            case_ids = [job[2] for r, job in zip(roles, jobs) if r == role]
            writer.add(image_folder, f"{image_folder}_metadata.csv", _isic_metadata(rng, case_ids))
        for name in (n for pair in OFFICIAL_FOLDERS.values() for n in pair):
            writer.ensure(name)  # an empty split still gets its folder
    return out


def _isic_metadata(rng: np.random.Generator, case_ids: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_id", "age_approximate", "sex"])
    for case_id in sorted(case_ids):
        writer.writerow([case_id, int(rng.integers(3, 17)) * 5, rng.choice(["male", "female", "unknown"])])
    return buffer.getvalue().encode()


class _ReleaseWriter:
    """Writes release files as they are produced: into ``out/<folder>/`` or into
    ``out/<folder>.zip`` holding ``<folder>/`` (the official archives' layout)."""

    def __init__(self, out: Path, as_zip: bool) -> None:
        self.out, self.as_zip = out, as_zip
        self.archives: dict[str, zipfile.ZipFile] = {}
        out.mkdir(parents=True, exist_ok=True)

    def ensure(self, folder: str) -> None:
        if not self.as_zip:
            (self.out / folder).mkdir(exist_ok=True)
        elif folder not in self.archives:
            self.archives[folder] = zipfile.ZipFile(self.out / f"{folder}.zip", "w")
            self.archives[folder].writestr(zipfile.ZipInfo(f"{folder}/"), b"")

    def add(self, folder: str, filename: str, data: bytes) -> None:
        self.ensure(folder)
        if not self.as_zip:
            (self.out / folder / filename).write_bytes(data)
            return
        compress = zipfile.ZIP_STORED if filename.endswith((".jpg", ".png")) else zipfile.ZIP_DEFLATED
        self.archives[folder].writestr(f"{folder}/{filename}", data, compress_type=compress)

    def __enter__(self) -> _ReleaseWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for archive in self.archives.values():
            archive.close()
