"""ISIC 2017 converter on synthetic releases: layout, exactness at 256, hard links, zips, size 0."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.io

from tloss_nnunet.cli import main
from tloss_nnunet.converters import convert_isic2017, write_synthetic_isic2017
from tloss_nnunet.converters.isic2017 import OFFICIAL_FOLDERS
from tloss_nnunet.noise import NoiseSetting
from tloss_nnunet.noise.reference import reference_protocol

ALPHAS, BETAS = (0.3, 0.7), (0.5, 0.7)
NAMES = ["Dataset500_ISIC2017_clean", "Dataset501_ISIC2017_a03b05", "Dataset502_ISIC2017_a03b07",
         "Dataset503_ISIC2017_a07b05", "Dataset504_ISIC2017_a07b07"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) as relative path -> content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_synthetic_isic2017(tmp_path_factory.mktemp("isic") / "release", n_train=10, n_val=3, n_test=3,
                                    seed=3, min_size=280, max_size=520)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    report = convert_isic2017(release, raw, alphas=ALPHAS, betas=BETAS, workers=2, verify=False, progress=False)
    return raw, report


def _reference_clean_label(mask_file: Path) -> np.ndarray:
    """The T-Loss repository's preprocessing of a ground-truth mask, written out independently:
    skimage reads it, non-zero -> 1, then cv2 nearest-neighbour resize to 256 x 256."""
    arr = skimage.io.imread(mask_file)
    arr[arr > 0] = 1
    return cv2.resize(arr, (256, 256), interpolation=cv2.INTER_NEAREST)


def _ids(release: Path, role: str) -> list[str]:
    folder = release / OFFICIAL_FOLDERS[role][1]
    return sorted(p.name[:12] for p in folder.glob("*_segmentation.png"))


def test_family_names_layout_and_dataset_json(converted, release):
    raw, report = converted
    assert [ds.name for ds in report.datasets] == NAMES
    assert sorted(p.name for p in raw.iterdir()) == NAMES  # no staging left behind
    train, val, test = _ids(release, "train"), _ids(release, "val"), _ids(release, "test")
    for name in NAMES:
        folder = raw / name
        assert sorted(p.name[:12] for p in (folder / "imagesTr").iterdir()) == sorted(train + val)
        assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == sorted(f"{c}.png" for c in train + val)
        assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"{c}_0000.png" for c in test]
        assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [f"{c}.png" for c in test]
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
        assert meta["labels"] == {"background": 0, "lesion": 1}
        assert meta["numTraining"] == 13 and meta["file_ending"] == ".png"
        assert json.loads((folder / "splits_final.json").read_text()) == [{"train": train, "val": val}]
        image = cv2.imread(str(folder / "imagesTr" / f"{train[0]}_0000.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    noise = json.loads((raw / NAMES[4] / "dataset.json").read_text())["tloss_nnunet"]["noise"]
    assert (noise["alpha"], noise["beta"], noise["seed"]) == (0.7, 0.7, 0)
    assert json.loads((raw / NAMES[0] / "dataset.json").read_text())["tloss_nnunet"]["noise"] is None


def test_folds_hold_out_every_training_case_once_and_the_validation_cases_in_every_fold(release, tmp_path):
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    raw = tmp_path / "raw"
    assert main(["convert", "isic2017", str(release), "--out", str(raw), "--alpha", "0.3", "--beta", "0.5",
                 "--size", "32", "--folds", "3", "--workers", "1", "--no-verify", "--quiet"]) == 0
    train, val = _ids(release, "train"), _ids(release, "val")
    for name in NAMES[:2]:
        splits = json.loads((raw / name / "splits_final.json").read_text())
        assert len(splits) == 3
        assert sorted(c for fold in splits for c in fold["val"] if c in train) == train  # each exactly once
        for fold, nnunet in zip(splits, generate_crossval_split(train, seed=12345, n_splits=3)):
            assert fold == {"train": list(nnunet["train"]), "val": list(nnunet["val"]) + val}
            assert sorted(fold["train"] + fold["val"]) == sorted(train + val)  # every imagesTr case, once
        assert sorted(p.stem for p in (raw / name / "labelsTr").iterdir()) == sorted(train + val)


def test_training_labels_are_pixel_identical_to_the_published_protocol(converted, release):
    raw, _ = converted
    gt = release / OFFICIAL_FOLDERS["train"][1]
    clean = {c: _reference_clean_label(gt / f"{c}_segmentation.png") for c in _ids(release, "train")}
    for case, mask in clean.items():
        assert np.array_equal(cv2.imread(str(raw / NAMES[0] / "labelsTr" / f"{case}.png"), -1), mask)
    for name, (alpha, beta) in zip(NAMES[1:], [(a, b) for a in ALPHAS for b in BETAS]):
        expected = reference_protocol(clean, alpha, beta, seed=0)
        log = (raw / name / "noise_log.tsv").read_text().splitlines()[1:]
        assert [line.split("\t")[:2] for line in log] == [[c, expected[c][1]] for c in sorted(clean)]
        for case, (noisy, _kind) in expected.items():
            written = cv2.imread(str(raw / name / "labelsTr" / f"{case}.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(written, noisy), (name, case)
        n_noisy = sum(kind != "clean" for _, kind in expected.values())
        assert n_noisy == int(len(clean) * alpha) > 0


def test_validation_and_test_labels_stay_clean_and_images_are_resized_linearly(converted, release):
    raw, _ = converted
    for role, images, labels in (("val", "imagesTr", "labelsTr"), ("test", "imagesTs", "labelsTs")):
        image_dir, mask_dir = (release / f for f in OFFICIAL_FOLDERS[role])
        for case in _ids(release, role):
            expected_label = _reference_clean_label(mask_dir / f"{case}_segmentation.png")
            rgb = cv2.cvtColor(cv2.imread(str(image_dir / f"{case}.jpg")), cv2.COLOR_BGR2RGB)
            expected_image = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_LINEAR)
            for name in NAMES:
                label = cv2.imread(str(raw / name / labels / f"{case}.png"), cv2.IMREAD_UNCHANGED)
                assert np.array_equal(label, expected_label)
                written = skimage.io.imread(raw / name / images / f"{case}_0000.png")  # RGB order
                assert np.array_equal(written, expected_image)


def test_images_and_clean_labels_are_hard_links_across_the_family(converted, release):
    raw, report = converted
    case = _ids(release, "train")[0]
    inodes = {os.stat(raw / n / "imagesTr" / f"{case}_0000.png").st_ino for n in NAMES}
    assert len(inodes) == 1
    assert os.stat(raw / NAMES[0] / "imagesTr" / f"{case}_0000.png").st_nlink == len(NAMES)
    test_case = _ids(release, "test")[0]
    assert len({os.stat(raw / n / "labelsTs" / f"{test_case}.png").st_ino for n in NAMES}) == 1
    for ds in report.datasets:
        assert ds.copied == 0 and ds.linked == 2 * 16
    # a training case that a noisy setting leaves clean shares the clean dataset's label file
    log = dict(line.split("\t")[:2] for line in (raw / NAMES[1] / "noise_log.tsv").read_text().splitlines()[1:])
    clean_case = next(c for c, kind in log.items() if kind == "clean")
    noisy_case = next(c for c, kind in log.items() if kind != "clean")
    assert os.path.samefile(raw / NAMES[0] / "labelsTr" / f"{clean_case}.png",
                            raw / NAMES[1] / "labelsTr" / f"{clean_case}.png")
    assert not os.path.samefile(raw / NAMES[0] / "labelsTr" / f"{noisy_case}.png",
                                raw / NAMES[1] / "labelsTr" / f"{noisy_case}.png")


def test_falls_back_to_copies_where_hard_links_fail(release, tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", refuse)
    report = convert_isic2017(release, tmp_path, alphas=[0.3], betas=[0.5], workers=1, verify=False,
                              progress=False)
    assert all(ds.linked == 0 and ds.copied == 32 for ds in report.datasets)
    assert "copied" in report.format()
    image = Path("imagesTr") / f"{_ids(release, 'train')[0]}_0000.png"
    a, b = tmp_path / NAMES[0] / image, tmp_path / NAMES[1] / image
    assert not os.path.samefile(a, b) and a.read_bytes() == b.read_bytes()


def test_zip_release_and_mixed_root_give_the_same_datasets(converted, release, tmp_path):
    raw, _ = converted
    zipped = write_synthetic_isic2017(tmp_path / "zipped", n_train=10, n_val=3, n_test=3, seed=3,
                                      min_size=280, max_size=520, as_zip=True)
    assert sorted(p.name for p in zipped.iterdir()) == sorted(f"{n}.zip" for pair in OFFICIAL_FOLDERS.values()
                                                              for n in pair)
    # junk that real archives may carry must be ignored
    with zipfile.ZipFile(zipped / "ISIC-2017_Training_Data.zip", "a") as archive:
        archive.writestr("__MACOSX/ISIC-2017_Training_Data/._ISIC_0000000.jpg", b"resource fork")
        archive.writestr("ISIC-2017_Training_Data/.DS_Store", b"finder")
    out_zip = tmp_path / "raw_zip"
    convert_isic2017(zipped, out_zip, alphas=ALPHAS, betas=BETAS, workers=1, verify=False, progress=False)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for index, name in enumerate(n for pair in OFFICIAL_FOLDERS.values() for n in pair):
        if index % 2:
            shutil.copytree(release / name, mixed / name)
        else:
            shutil.copy(zipped / f"{name}.zip", mixed / f"{name}.zip")
    out_mixed = tmp_path / "raw_mixed"
    convert_isic2017(mixed, out_mixed, alphas=ALPHAS, betas=BETAS, workers=1, verify=False, progress=False)

    def pixels(root: Path) -> dict[str, bytes]:  # dataset.json differs only in its provenance
        return {k: v for k, v in tree_bytes(root).items() if not k.endswith(("dataset.json", ".tloss_convert.json"))}

    assert pixels(out_zip) == pixels(raw)
    assert pixels(out_mixed) == pixels(raw)
    assert sorted(p.name for p in zipped.iterdir()) == sorted(p.name for p in (tmp_path / "zipped").iterdir())


def test_size_zero_keeps_native_resolution(tmp_path):
    release = write_synthetic_isic2017(tmp_path / "r", n_train=2, n_val=1, n_test=1, seed=5,
                                       min_size=90, max_size=140, superpixels=False)
    convert_isic2017(release, tmp_path / "raw", alphas=[], betas=[], size=0, workers=1, verify=False,
                     progress=False)
    folder = tmp_path / "raw" / NAMES[0]
    for jpg in (release / "ISIC-2017_Training_Data").glob("*.jpg"):
        source = cv2.imread(str(jpg))
        written = cv2.imread(str(folder / "imagesTr" / f"{jpg.stem}_0000.png"))
        assert np.array_equal(written, source)
        mask = cv2.imread(str(release / "ISIC-2017_Training_Part1_GroundTruth" / f"{jpg.stem}_segmentation.png"), 0)
        assert np.array_equal(cv2.imread(str(folder / "labelsTr" / f"{jpg.stem}.png"), -1), (mask > 0).astype(np.uint8))


def test_settings_order_matches_the_reference_grid():
    from tloss_nnunet.converters.plan import noise_settings

    assert noise_settings([0.3, 0.5, 0.3], [0.5])[1] == ["--alpha lists 0.3 more than once"]  # as `noise`
    settings, problems = noise_settings([0.3, 0.5], [0.5, 0.7])
    assert problems == []
    assert [s.short for s in settings] == ["a03b05", "a03b07", "a05b05", "a05b07"]
    assert settings[0] == NoiseSetting(0.3, 0.5)
