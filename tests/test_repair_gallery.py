"""``repair.png``: the repaired cases before and after (tloss_nnunet/audit/repair_gallery.py), from hand-made arrays
and from ``repair`` on the tiny synthetic datasets of repair_data.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from repair_data import make_audit, make_dataset

from tloss_nnunet.atomic import file_sha256
from tloss_nnunet.audit import repair_dataset
from tloss_nnunet.audit.repair_gallery import GALLERY_FILE, _changes_rgb, _label_rgb, repair_view

ORANGE, RED, BLUE, GREY = (1.0, 0.55, 0.0), (0.85, 0.1, 0.1), (0.1, 0.3, 0.9), (0.75, 0.75, 0.75)


@pytest.fixture(autouse=True)
def _no_nnunet_folders(monkeypatch):
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(key, raising=False)


def test_a_3d_view_shows_the_slice_with_the_most_changes():
    label = np.zeros((4, 5, 6), np.uint8)
    label[:, 1:4, 1:4] = 1
    repaired = label.copy()
    repaired[2, 1, 1:4] = 0  # 3 changed pixels in slice 2, 1 in slice 0
    repaired[0, 2, 2] = 0
    image = np.stack([np.arange(4 * 5 * 6, dtype=float).reshape(4, 5, 6)])
    view = repair_view("c", 1, image, label, label, repaired, 4 / label.size)
    np.testing.assert_array_equal(view.repaired, repaired[2])
    expected = image[0, 2]
    np.testing.assert_allclose(view.image, (expected - expected.min()) / (expected.max() - expected.min()))
    dropped = repair_view("c", 1, image, label, None, None, 1.0)  # drop: the slice with the most foreground
    assert dropped.repaired is None and dropped.prediction is None and dropped.label.shape == (5, 6)


def test_2d_natural_images_keep_their_colour_and_size():
    image = np.random.default_rng(0).random((3, 1, 7, 9))  # nnU-Net's reader: (C, 1, H, W)
    label = np.zeros((1, 7, 9), np.uint8)
    view = repair_view("c", 1, image, label, label, label, 0.0)
    assert view.image.shape == (7, 9, 3) and view.label.shape == (7, 9)


def test_colours_of_labels_and_changes():
    given = np.array([[0, 1, 1, 2]])
    repaired = np.array([[1, 0, 3, 2]])  # added, removed, ignored (3), unchanged class 2
    changes = _changes_rgb(given, repaired, ignore_value=3)
    assert [tuple(changes[0, i]) for i in range(4)] == [BLUE, RED, ORANGE, GREY]
    shown = _label_rgb(repaired, ignore_value=3)
    assert tuple(shown[0, 2]) == ORANGE and tuple(shown[0, 3]) == (1.0, 1.0, 1.0) and tuple(shown[0, 1]) == (0, 0, 0)


@pytest.mark.parametrize("mode, rows", [("ignore", 2), ("drop", 2)])
def test_repair_writes_the_gallery_into_the_dataset_and_its_digest_into_repair_json(tmp_path, mode, rows):
    data = make_dataset(tmp_path / "raw", 3, 3)
    audit = make_audit(data, tmp_path / "audit")
    result = repair_dataset(audit, 611, mode=mode, top_k=rows, out=tmp_path / "out")
    png = result.folder / GALLERY_FILE
    with Image.open(png) as picture:
        picture.verify()
    with Image.open(png) as picture:
        width, height = picture.size
    assert height == 3 * 80 * rows  # 3-inch rows at 80 dpi, one per repaired case
    assert width == 3 * 80 * (5 if mode == "ignore" else 3)  # drop: image, given label, held-out prediction
    record = json.loads((result.folder / "repair.json").read_text())
    assert record["files"][GALLERY_FILE] == file_sha256(png)
