"""Bad inputs, options and destinations: one report listing every problem, nothing written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tloss_nnunet.cli import main
from tloss_nnunet.converters import convert_isic2017, convert_shenzhen, write_synthetic_isic2017
from tloss_nnunet.converters.family import STAGING_ROOT
from tloss_nnunet.converters.synthetic_shenzhen import write_synthetic_shenzhen
from tloss_nnunet.errors import InputError

TRAIN_DATA, TRAIN_GT = "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"


def digest(root: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file, and the mtimes, to prove a folder was not modified."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_synthetic_isic2017(tmp_path_factory.mktemp("pristine") / "release", n_train=6, n_val=1,
                                    n_test=1, seed=11, min_size=120, max_size=200)


@pytest.fixture
def release(pristine, tmp_path) -> Path:
    copy = tmp_path / "release"
    shutil.copytree(pristine, copy)
    return copy


def _train_ids(release: Path) -> list[str]:
    return sorted(p.stem for p in (release / TRAIN_DATA).glob("*.jpg"))


def _convert(release: Path, raw: Path, **kwargs):
    options = dict(alphas=[0.5], betas=[0.5], workers=1, verify=False, progress=False)
    return convert_isic2017(release, raw, **{**options, **kwargs})


def test_every_problem_is_listed_in_one_report_and_nothing_is_written(release, tmp_path):
    ids = _train_ids(release)
    # missing mask / orphan mask (its image is gone) / truncated JPEG / empty file
    (release / TRAIN_GT / f"{ids[0]}_segmentation.png").unlink()
    (release / TRAIN_DATA / f"{ids[1]}.jpg").unlink()
    jpg = release / TRAIN_DATA / f"{ids[2]}.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    (release / TRAIN_DATA / f"{ids[3]}.jpg").write_bytes(b"")
    # size mismatch: the mask is 7 pixels wider than its image (still binary)
    mask_file = release / TRAIN_GT / f"{ids[4]}_segmentation.png"
    mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    wider = cv2.resize(mask, (mask.shape[1] + 7, mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(mask_file), wider)
    # not binary: a grey patch
    grey_file = release / TRAIN_GT / f"{ids[5]}_segmentation.png"
    grey = cv2.imread(str(grey_file), cv2.IMREAD_GRAYSCALE)
    grey[:5, :5] = 128
    cv2.imwrite(str(grey_file), grey)
    before = digest(release)
    raw = tmp_path / "raw"

    with pytest.raises(InputError) as caught:
        _convert(release, raw)
    message = str(caught.value)
    assert "6 problem(s)" in message
    for case, words in [(ids[0], "missing mask"), (ids[1], "orphan mask"), (ids[2], "corrupt"),
                        (ids[3], "empty file"), (ids[4], "size mismatch"), (ids[5], "not binary")]:
        assert any(case in line and words in line for line in message.splitlines()), (case, words, message)
    assert "128" in message
    assert not raw.exists() or not any(raw.iterdir())
    assert digest(release) == before


def test_a_corrupt_file_found_while_staging_leaves_no_dataset_and_no_staging(release, tmp_path):
    # no pairing problem: the only problem surfaces in the decoding pass that writes to staging
    ids = _train_ids(release)
    jpg = release / TRAIN_DATA / f"{ids[-1]}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:300])
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match=rf"^ISIC2017: nothing was written: {ids[-1]}: [^\n]*corrupt[^\n]*$"):
        _convert(release, raw)
    assert not raw.exists()  # staging removed, and the output folder it had to create too


def test_missing_official_folder_and_ignored_files(release, tmp_path):
    shutil.rmtree(release / "ISIC-2017_Test_v2_Data")
    (release / TRAIN_DATA / "notes.txt").write_text("not a case")
    (release / TRAIN_DATA / "ISIC_9999999_superpixels.png").write_bytes(b"decoy without image")
    with pytest.raises(InputError) as caught:
        _convert(release, tmp_path / "raw")
    lines = str(caught.value).splitlines()
    assert any("missing" in line and "ISIC-2017_Test_v2_Data" in line for line in lines)
    assert not any("notes.txt" in line or "ISIC_9999999" in line for line in lines)


def test_existing_folder_is_refused_without_overwrite_and_replaced_with_it(release, tmp_path):
    raw = tmp_path / "raw"
    foreign = raw / "Dataset500_ISIC2017_clean"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("precious")
    with pytest.raises(InputError, match="--overwrite"):
        _convert(release, raw)
    assert (foreign / "mine.txt").read_text() == "precious"
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset500_ISIC2017_clean"]

    _convert(release, raw, overwrite=True)
    assert not (foreign / "mine.txt").exists() and (foreign / "dataset.json").is_file()


def test_dataset_id_used_by_another_dataset_is_refused_even_with_overwrite(release, tmp_path):
    raw = tmp_path / "raw"
    (raw / "Dataset501_Other").mkdir(parents=True)
    with pytest.raises(InputError, match="id 501 is already used"):
        _convert(release, raw, overwrite=True)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset501_Other"]


def test_rerun_with_other_options_is_refused_as_stale(release, tmp_path):
    raw = tmp_path / "raw"
    _convert(release, raw)
    with pytest.raises(InputError, match="different conversion"):
        _convert(release, raw, seed=1)
    assert not (raw / STAGING_ROOT).exists()


def test_rerun_with_other_folds_is_refused_as_stale_and_the_default_split_stays(release, tmp_path):
    raw = tmp_path / "raw"
    _convert(release, raw)
    default = (raw / "Dataset500_ISIC2017_clean" / "splits_final.json").read_bytes()
    assert len(json.loads(default)) == 1  # the official split, as before --folds existed
    with pytest.raises(InputError, match="different conversion"):
        _convert(release, raw, folds=3)
    assert _convert(release, raw, folds=3, overwrite=True).datasets[0].state == "written"
    assert _convert(release, raw, folds=3).datasets[0].state == "up to date"
    with pytest.raises(InputError, match="different conversion"):
        _convert(release, raw, folds=2)
    _convert(release, raw, overwrite=True)
    assert (raw / "Dataset500_ISIC2017_clean" / "splits_final.json").read_bytes() == default


def test_more_folds_than_training_cases_is_refused(release, tmp_path):
    with pytest.raises(InputError, match="--folds 7 needs at least 7 training cases, found 6"):
        _convert(release, tmp_path / "raw", folds=7)
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(alphas=[0.35]), "not a multiple of 0.1"),
        (dict(betas=[0.0]), "beta must be"),
        (dict(size=4), "--size"),
        (dict(first_id=999), "ids 999..1000 are outside"),
        (dict(folds=1), "--folds must be at least 2"),
    ],
)
def test_bad_options_are_reported_before_reading_inputs(kwargs, expected, tmp_path):
    with pytest.raises(InputError, match=expected):
        _convert(tmp_path / "does-not-exist", tmp_path / "raw", **kwargs)
    assert not (tmp_path / "raw").exists()


def test_output_and_preprocessed_folders_come_from_the_environment(release, tmp_path, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    with pytest.raises(InputError, match="nnUNet_raw") as caught:
        convert_isic2017(release, None, install_splits=True, progress=False)
    assert "nnUNet_preprocessed" in str(caught.value)

    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    report = convert_isic2017(release, None, alphas=[0.5], betas=[0.5], workers=1, verify=False,
                              install_splits=True, progress=False)
    for ds in report.datasets:
        installed = tmp_path / "pre" / ds.name / "splits_final.json"
        assert installed.read_bytes() == (tmp_path / "raw" / ds.name / "splits_final.json").read_bytes()


def test_cli_reports_input_errors_with_exit_code_2(release, tmp_path, capsys):
    ids = _train_ids(release)
    (release / TRAIN_GT / f"{ids[0]}_segmentation.png").unlink()
    code = main(["convert", "isic2017", str(release), "--out", str(tmp_path / "raw"), "--workers", "1",
                 "--alpha", "0.5", "--beta", "0.5", "--quiet", "--no-verify"])
    assert code == 2
    assert f"{ids[0]}: missing mask" in capsys.readouterr().err


def test_shenzhen_orphan_mask_and_non_binary_mask(tmp_path):
    release = write_synthetic_shenzhen(tmp_path / "sz", 8, missing_masks=1, min_size=100, max_size=140)
    stems = sorted(p.stem for p in release.images_dir.glob("*.png"))
    with_mask = [s for s in stems if s not in release.without_mask]
    (release.images_dir / f"{with_mask[0]}.png").unlink()
    mask_file = release.masks_dir / f"{with_mask[1]}_mask.png"
    mask = cv2.imread(str(mask_file), 0)
    cv2.imwrite(str(mask_file), np.where(mask > 0, 200, 0).astype(np.uint8))
    with pytest.raises(InputError) as caught:
        convert_shenzhen(release.images_dir, release.masks_dir, tmp_path / "raw", alphas=[0.5], betas=[0.5],
                         workers=1, verify=False, progress=False)
    message = str(caught.value)
    assert f"{with_mask[0]}: orphan mask" in message
    assert with_mask[1] in message and "not binary" in message
    assert release.without_mask[0] not in message  # images without a mask are skipped, not errors
