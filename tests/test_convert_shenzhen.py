"""Shenzhen converter on a synthetic release: pairing, skipped images, split, grey images, exactness."""

from __future__ import annotations

import json
import os
import random

import cv2
import numpy as np
import pytest
import skimage.io

from tloss_nnunet.cli import main
from tloss_nnunet.converters import convert_shenzhen, split_test_cases, write_synthetic_shenzhen
from tloss_nnunet.noise.reference import reference_protocol

NAMES = ["Dataset510_Shenzhen_clean", "Dataset511_Shenzhen_a05b05"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    # RGB-stored CXRs and the nested mask/mask/ layout: both variants the converter must handle
    return write_synthetic_shenzhen(tmp_path_factory.mktemp("sz") / "release", 14, missing_masks=2, rgb=True,
                                    nested_masks=True, seed=4, min_size=280, max_size=420)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    # the release folder (parent of CXR_png) and the outer mask/ folder are accepted as given
    report = convert_shenzhen(release.root / "ChinaSet_AllFiles", release.masks_dir, raw, alphas=[0.5],
                              betas=[0.5], workers=1, verify=False, progress=False)
    return raw, report


def _paired_stems(release) -> list[str]:
    return sorted(p.stem for p in release.images_dir.glob("*.png") if p.stem not in release.without_mask)


def test_paper_split_skipped_images_and_layout(converted, release):
    raw, report = converted
    stems = _paired_stems(release)
    random.seed(0)  # the paper's split, written as the reference script does it
    expected_test = sorted(random.sample(stems, round(len(stems) * 0.3)))
    expected_train = sorted(set(stems) - set(expected_test))
    assert report.skipped == list(release.without_mask) and len(report.skipped) == 2
    assert report.color_converted == 12
    assert [ds.name for ds in report.datasets] == NAMES
    for name in NAMES:
        folder = raw / name
        assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"{s}_0000.png" for s in expected_test]
        assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [f"{s}.png" for s in expected_train]
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["channel_names"] == {"0": "X-ray"} and meta["labels"] == {"background": 0, "lung": 1}
        assert meta["numTraining"] == len(expected_train)
    text = report.format()
    assert "skipped 2 image(s) without a mask" in text and release.without_mask[0] in text
    assert "nnUNetv2_plan_and_preprocess -d 510 511" in text


def test_splits_are_nnunets_own_five_folds_over_the_training_cases(converted):
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    raw, _ = converted
    splits = json.loads((raw / NAMES[1] / "splits_final.json").read_text())
    train = sorted(p.stem for p in (raw / NAMES[1] / "labelsTr").iterdir())
    assert len(splits) == 5
    assert sorted(c for fold in splits for c in fold["val"]) == train
    assert all(not set(f["train"]) & set(f["val"]) and sorted(f["train"] + f["val"]) == train for f in splits)
    assert splits == [{"train": list(f["train"]), "val": list(f["val"])}
                      for f in generate_crossval_split(train, seed=12345, n_splits=5)]


def test_folds_option_gives_that_many_folds_of_the_same_function(release, tmp_path, converted):
    from tloss_nnunet.converters.plan import crossval_splits

    raw = tmp_path / "raw"
    convert_shenzhen(release.images_dir, release.masks_dir, raw, alphas=[], betas=[], size=32, folds=3, workers=1,
                     verify=False, progress=False)
    splits = json.loads((raw / NAMES[0] / "splits_final.json").read_text())
    train = sorted(p.stem for p in (raw / NAMES[0] / "labelsTr").iterdir())
    assert splits == crossval_splits(train, 3) and sorted(c for f in splits for c in f["val"]) == train
    default = json.loads((converted[0] / NAMES[0] / "splits_final.json").read_text())
    assert default == crossval_splits(train, 5)  # the default is still nnU-Net's 5 folds


def test_grey_images_and_exact_labels(converted, release):
    raw, _ = converted
    train = sorted(p.stem for p in (raw / NAMES[0] / "labelsTr").iterdir())
    clean = {}
    for stem in train:
        mask = skimage.io.imread(release.masks_dir / "mask" / f"{stem}_mask.png", as_gray=True)
        mask[mask > 0] = 1
        clean[stem] = cv2.resize(mask.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
        source = cv2.imread(str(release.images_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert source.ndim == 3  # stored as RGB ...
        written = cv2.imread(str(raw / NAMES[0] / "imagesTr" / f"{stem}_0000.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == (256, 256)  # ... written as one grey channel
        expected = cv2.resize(source[:, :, 0], (256, 256), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(written, expected)
        assert np.array_equal(cv2.imread(str(raw / NAMES[0] / "labelsTr" / f"{stem}.png"), -1), clean[stem])
    for stem, (noisy, _kind) in reference_protocol(clean, 0.5, 0.5, seed=0).items():
        assert np.array_equal(cv2.imread(str(raw / NAMES[1] / "labelsTr" / f"{stem}.png"), -1), noisy)
    image = raw / NAMES[0] / "imagesTr" / f"{train[0]}_0000.png"
    assert os.path.samefile(image, raw / NAMES[1] / "imagesTr" / image.name)


def test_paper_split_sizes_for_the_real_release():
    stems = [f"CHNCXR_{i:04d}_{int(i > 326)}" for i in range(1, 567)]
    test = split_test_cases(stems, seed=0)
    assert len(test) == 170 and test == split_test_cases(list(reversed(stems)), seed=0)
    assert test != split_test_cases(stems, seed=1)


def test_cli_end_to_end_with_flat_masks(tmp_path, capsys):
    assert main(["synth", "shenzhen", str(tmp_path / "sz"), "--n", "8", "--missing-masks", "1",
                 "--min-size", "120", "--max-size", "160"]) == 0
    assert "next: tloss-nnunet convert shenzhen" in capsys.readouterr().out
    code = main(["convert", "shenzhen", str(tmp_path / "sz" / "ChinaSet_AllFiles" / "CXR_png"),
                 str(tmp_path / "sz" / "mask"), "--out", str(tmp_path / "raw"), "--alpha", "0.5", "--beta", "0.7",
                 "--size", "64", "--workers", "1", "--quiet", "--no-verify"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Dataset511_Shenzhen_a05b07" in out and "skipped 1 image(s)" in out
    label = cv2.imread(str(next((tmp_path / "raw" / "Dataset511_Shenzhen_a05b07" / "labelsTr").iterdir())), -1)
    assert label.shape == (64, 64) and set(np.unique(label)) <= {0, 1}
