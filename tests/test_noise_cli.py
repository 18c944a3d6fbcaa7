"""``tloss-nnunet noise`` end to end: layout, logs, value conventions, workers, preview, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import tloss_nnunet.cli
from tloss_nnunet.noise import NoiseSetting, apply_noise, plan_noise
from tloss_nnunet.noise.synthetic import lesion_like_mask

CASES = [f"ISIC_{i:07d}" for i in range(24)]


def _write_masks(folder: Path, foreground: int = 255, tiny_case: str | None = None) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    masks = {}
    for case in CASES:
        mask = lesion_like_mask(rng, (64, 80))
        if case == tiny_case:
            mask = np.zeros((64, 80), dtype=bool)
            mask[10, 10] = True
        masks[case] = mask
        cv2.imwrite(str(folder / f"{case}.png"), mask.astype(np.uint8) * foreground)
    return masks


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _main(*argv: str) -> int:
    return tloss_nnunet.cli.main(["noise", *argv, "--quiet"])


def test_layout_logs_and_contents(tmp_path: Path) -> None:
    masks = _write_masks(tmp_path / "masks")
    out = tmp_path / "out"
    assert _main(str(tmp_path / "masks"), str(out), "--alpha", "0.3", "0.7", "--beta", "0.5", "--workers", "2") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha0.3_beta0.5", "alpha0.7_beta0.5", "noise_details.csv", "noise_log.csv"]
    log = _log(out / "noise_log.csv")
    assert list(log[0]) == ["case", "alpha0.3_beta0.5", "alpha0.7_beta0.5", "notes"]
    assert [row["case"] for row in log] == CASES
    for alpha in (0.3, 0.7):
        setting = NoiseSetting(alpha, 0.5)
        plan = plan_noise(CASES, setting)
        assert [row[setting.name] for row in log] == [plan[c].kind for c in CASES]
        assert sum(row[setting.name] != "clean" for row in log) == int(len(CASES) * alpha)
        for case in CASES:
            written = _read(out / setting.name / f"{case}.png")
            assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
            expected = apply_noise(masks[case], plan[case], 0.5).mask
            np.testing.assert_array_equal(written > 0, expected, err_msg=f"{setting.name}/{case}")
            if plan[case].kind == "clean":
                np.testing.assert_array_equal(written, masks[case].astype(np.uint8) * 255)
    details = _log(out / "noise_details.csv")
    assert len(details) == 2 * len(CASES)
    affine = [row for row in details if row["kind"] == "affine"]
    assert affine and all(row["angle"] and row["direction_row"] for row in affine)


def test_zero_one_masks_stay_zero_one_and_workers_do_not_change_results(tmp_path: Path) -> None:
    _write_masks(tmp_path / "masks", foreground=1)
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert _main(str(tmp_path / "masks"), str(out), "--alpha", "0.5", "--beta", "0.7", "--workers", workers) == 0
        runs[workers] = {p.name: _read(p) for p in sorted((out / "alpha0.5_beta0.7").iterdir())}
        assert (out / "noise_log.csv").read_text() == (tmp_path / "out1" / "noise_log.csv").read_text()
    assert list(runs["1"]) == [f"{c}.png" for c in CASES]
    for name, image in runs["1"].items():
        assert set(np.unique(image)) <= {0, 1}
        np.testing.assert_array_equal(image, runs["2"][name])


def test_tiny_mask_is_logged_in_notes(tmp_path: Path) -> None:
    setting = NoiseSetting(1.0, 0.5)
    tiny = next(c for c, spec in plan_noise(CASES, setting).items() if spec.kind in ("dilate", "erode"))
    _write_masks(tmp_path / "masks", tiny_case=tiny)
    out = tmp_path / "out"
    assert _main(str(tmp_path / "masks"), str(out), "--alpha", "1", "--beta", "0.5", "--workers", "1") == 0
    notes = {row["case"]: row["notes"] for row in _log(out / "noise_log.csv")}
    assert notes[tiny].startswith("alpha1_beta0.5: tiny mask (1 px)")
    assert all(note == "" for case, note in notes.items() if case != tiny)
    assert (_read(out / "alpha1_beta0.5" / f"{tiny}.png") > 0).sum() == 1


def test_bad_inputs_are_listed_together_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    masks = tmp_path / "masks"
    _write_masks(masks)
    cv2.imwrite(str(masks / "grey.png"), np.full((8, 8), 128, dtype=np.uint8))
    cv2.imwrite(str(masks / "rgb.png"), np.zeros((8, 8, 3), dtype=np.uint8))
    (masks / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert _main(str(masks), str(out), "--alpha", "0.5", "--beta", "0.5", "--workers", "2") == 2
    error = capsys.readouterr().err
    assert error.startswith("tloss-nnunet noise: error: 3 problem(s)")
    assert "grey.png: values other than 0/1/255 (128)" in error
    assert "rgb.png: has 3 channels" in error
    assert "broken.png: unreadable" in error
    assert not out.exists()


def test_missing_mask_folder_and_bad_options(tmp_path: Path, capsys) -> None:
    assert _main(str(tmp_path / "nowhere"), str(tmp_path / "out")) == 2
    assert "does not exist" in capsys.readouterr().err
    _write_masks(tmp_path / "masks")
    assert _main(str(tmp_path / "masks"), str(tmp_path / "out"), "--alpha", "1.5") == 2
    assert "alpha must be" in capsys.readouterr().err
    assert _main(str(tmp_path / "masks"), str(tmp_path / "out"), "--preview", "2", "--images",
                 str(tmp_path / "no_images")) == 2
    assert "image folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_existing_outputs_need_overwrite(tmp_path: Path, capsys) -> None:
    _write_masks(tmp_path / "masks")
    out = tmp_path / "out"
    args = (str(tmp_path / "masks"), str(out), "--alpha", "0.5", "--beta", "0.5", "--workers", "1")
    assert _main(*args) == 0
    marker = out / "alpha0.5_beta0.5" / "stale.png"
    marker.write_bytes(b"old")
    assert _main(*args) == 2
    assert "--overwrite" in capsys.readouterr().err and marker.exists()
    assert _main(*args, "--overwrite") == 0
    assert not marker.exists()
    assert sorted(p.name for p in out.iterdir()) == ["alpha0.5_beta0.5", "noise_details.csv", "noise_log.csv"]


def test_failure_midway_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import tloss_nnunet.noise.generate as generate

    _write_masks(tmp_path / "masks")
    calls = {"n": 0}
    real_write = generate.write_binary_mask

    def failing_write(path, mask, max_value):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError("disk full")
        real_write(path, mask, max_value)

    monkeypatch.setattr(generate, "write_binary_mask", failing_write)
    out = tmp_path / "out"
    assert _main(str(tmp_path / "masks"), str(out), "--alpha", "0.5", "--beta", "0.5", "--workers", "1") == 1
    assert capsys.readouterr().err == "tloss-nnunet noise: failed: disk full\n"  # one line, no traceback
    assert not out.exists()


def test_preview_with_and_without_images(tmp_path: Path, capsys) -> None:
    _write_masks(tmp_path / "masks")
    images = tmp_path / "images"
    images.mkdir()
    for case in CASES:
        cv2.imwrite(str(images / f"{case}.jpg"), np.full((128, 160, 3), 90, dtype=np.uint8))
    out = tmp_path / "out"
    assert _main(str(tmp_path / "masks"), str(out), "--alpha", "0.5", "--beta", "0.5", "0.7",
                 "--preview", "5", "--images", str(images), "--workers", "1") == 0
    for name in ("alpha0.5_beta0.5", "alpha0.5_beta0.7"):
        preview = _read(out / f"preview_{name}.png")
        assert preview is not None and preview.ndim == 3 and preview.shape[1] > 600
    (images / f"{CASES[0]}.jpg").unlink()
    assert _main(str(tmp_path / "masks"), str(tmp_path / "out2"), "--alpha", "1", "--beta", "0.5",
                 "--preview", "3", "--images", str(images)) == 2
    assert f"no image found for preview case {CASES[0]}" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_read_binary_mask_conventions_and_errors(tmp_path: Path) -> None:
    from tloss_nnunet.errors import InputError
    from tloss_nnunet.noise import read_binary_mask

    image = np.zeros((6, 7), dtype=np.uint16)
    image[2:4, 3:5] = 1
    cv2.imwrite(str(tmp_path / "sixteen.png"), image)
    mask, max_value = read_binary_mask(tmp_path / "sixteen.png")
    assert mask.dtype == bool and mask.sum() == 4 and max_value == 1
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((5, 5), dtype=np.uint8))
    assert read_binary_mask(tmp_path / "empty.png")[1] == 0
    mixed = np.array([[0, 1, 255]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "mixed.png"), mixed)
    with pytest.raises(InputError, match="mixed.png: mixes 1 and 255"):
        read_binary_mask(tmp_path / "mixed.png")
    with pytest.raises(InputError, match="gone.png: missing"):
        read_binary_mask(tmp_path / "gone.png")
