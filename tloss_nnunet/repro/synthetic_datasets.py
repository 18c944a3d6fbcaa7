"""Tiny synthetic nnU-Net raw datasets (2D PNG, 3D NIfTI, 2D regions + ignore label) for tests and benchmarks.

Each case is a noisy image with one or two bright blobs and the matching label map, so a network can learn
something in a few iterations and every nnU-Net code path (label maps, 3D, regions, ignore label) is hit.
Layout (nnU-Net v2 raw format)::

    <raw_root>/DatasetXXX_Name/dataset.json
                               imagesTr/case_000_0000.png   labelsTr/case_000.png
                               imagesTs/test_000_0000.png   labelsTs/test_000.png
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from skimage.draw import disk
from skimage.io import imsave

__all__ = ["write_synthetic_dataset", "DatasetKind"]

DatasetKind = Literal["2d", "3d", "regions_ignore"]


def _case_2d(rng: np.random.Generator, size: int, kind: DatasetKind) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (size, size), labels uint8 (size, size)) for one 2D case."""
    labels = np.zeros((size, size), np.uint8)
    r = rng.uniform(0.15, 0.3) * size
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    labels[disk((cy, cx), r, shape=labels.shape)] = 1
    if kind == "regions_ignore":
        # label 2 = core inside the blob (regions: whole = {1, 2}, core = {2}); label 3 = ignore (a stripe).
        labels[disk((cy, cx), r / 2, shape=labels.shape)] = 2
        start = int(rng.integers(0, size - 4))
        labels[:, start:start + 3] = 3
    image = 60.0 + 110.0 * (labels == 1) + 170.0 * (labels == 2) + rng.normal(0, 20, labels.shape)
    if kind == "regions_ignore":
        image[labels == 3] = 60.0 + rng.normal(0, 20, int((labels == 3).sum()))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _case_3d(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (size//2, size, size), labels uint8) for one 3D case: an ellipsoid blob."""
    depth = max(size // 2, 8)
    zz, yy, xx = np.mgrid[:depth, :size, :size]
    c = rng.uniform([depth * 0.4, size * 0.35, size * 0.35], [depth * 0.6, size * 0.65, size * 0.65])
    radii = rng.uniform([depth * 0.2, size * 0.15, size * 0.15], [depth * 0.3, size * 0.25, size * 0.25])
    inside = ((zz - c[0]) / radii[0]) ** 2 + ((yy - c[1]) / radii[1]) ** 2 + ((xx - c[2]) / radii[2]) ** 2 <= 1
    labels = inside.astype(np.uint8)
    image = (100.0 * labels + rng.normal(0, 15, labels.shape)).astype(np.float32)
    return image, labels


def _write_nifti(array: np.ndarray, path: str) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.0))  # (x, y, z): thicker slices, as in most 3D scans
    sitk.WriteImage(image, path)


def write_synthetic_dataset(raw_root: str, dataset_id: int, kind: DatasetKind = "2d", num_train: int = 10,
                            num_test: int = 2, size: int = 32, seed: int = 0) -> str:
    """Write a tiny nnU-Net raw dataset and return its folder.

    Args:
        raw_root: the ``nnUNet_raw`` folder.
        dataset_id: nnU-Net dataset id (the folder is ``Dataset{id:03d}_Synthetic{Kind}``).
        kind: ``"2d"`` (PNG, labels {0, 1}), ``"3d"`` (NIfTI, labels {0, 1}) or ``"regions_ignore"`` (PNG,
            regions whole = {1, 2} and core = {2}, ignore label 3).
        num_train / num_test: cases in imagesTr/labelsTr and imagesTs/labelsTs.
        size: in-plane edge length in pixels (3D volumes have size // 2 slices, at least 8).
        seed: random seed; the same arguments always give the same files.
    """
    if kind not in ("2d", "3d", "regions_ignore"):
        raise ValueError(f"kind must be '2d', '3d' or 'regions_ignore', got {kind!r}.")
    if num_train < 2 or size < 16:
        raise ValueError(f"need num_train >= 2 and size >= 16, got {num_train=}, {size=}.")
    name = {"2d": "Synthetic2D", "3d": "Synthetic3D", "regions_ignore": "SyntheticRegionsIgnore"}[kind]
    folder = os.path.join(raw_root, f"Dataset{dataset_id:03d}_{name}")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    ending = ".nii.gz" if kind == "3d" else ".png"
    rng = np.random.default_rng(seed)
    for split, prefix, count in (("Tr", "case", num_train), ("Ts", "test", num_test)):
        for i in range(count):
            case = f"{prefix}_{i:03d}"
            image_path = os.path.join(folder, f"images{split}", f"{case}_0000{ending}")
            label_path = os.path.join(folder, f"labels{split}", f"{case}{ending}")
            if kind == "3d":
                image, labels = _case_3d(rng, size)
                _write_nifti(image, image_path)
                _write_nifti(labels, label_path)
            else:
                image, labels = _case_2d(rng, size, kind)
                imsave(image_path, image, check_contrast=False)
                imsave(label_path, labels, check_contrast=False)
    if kind == "regions_ignore":
        labels_json = {"background": 0, "whole": (1, 2), "core": 2, "ignore": 3}
        extra = {"regions_class_order": (1, 2)}
    else:
        labels_json = {"background": 0, "blob": 1}
        extra = {}
    generate_dataset_json(folder, {0: "intensity"}, labels_json, num_train, ending, dataset_name=name,
                          description=f"synthetic {kind} dataset written by tloss_nnunet.repro.synthetic_datasets",
                          license="CC0", converted_by="tloss-nnunet", **extra)
    return folder
