"""Synthetic releases: official layouts and names, seeded, varying sizes, plausible content."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.cli import main
from tloss_nnunet.converters import write_synthetic_isic2017, write_synthetic_shenzhen
from tloss_nnunet.converters.isic2017 import OFFICIAL_FOLDERS


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_isic_layout_names_and_extras(tmp_path):
    root = write_synthetic_isic2017(tmp_path / "r", n_train=5, n_val=2, n_test=3, seed=1, min_size=200,
                                    max_size=400)
    for role, count in (("train", 5), ("val", 2), ("test", 3)):
        data, gt = (root / f for f in OFFICIAL_FOLDERS[role])
        images = sorted(data.glob("ISIC_???????.jpg"))
        assert len(images) == count
        assert sorted(p.name for p in data.glob("*_superpixels.png")) == [f"{p.stem}_superpixels.png" for p in images]
        assert sorted(p.name for p in gt.iterdir()) == [f"{p.stem}_segmentation.png" for p in images]
        with open(data / f"{data.name}_metadata.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["image_id"] for r in rows] == [p.stem for p in images]
    all_ids = [p.stem for p in root.glob("*_Data/ISIC_???????.jpg")]
    assert len(set(all_ids)) == 10  # case ids are unique across the splits


def test_isic_is_seeded_sizes_vary_and_lesions_look_like_lesions(tmp_path):
    a = write_synthetic_isic2017(tmp_path / "a", n_train=6, n_val=1, n_test=1, seed=2, min_size=200, max_size=500)
    b = write_synthetic_isic2017(tmp_path / "b", n_train=6, n_val=1, n_test=1, seed=2, min_size=200, max_size=500)
    c = write_synthetic_isic2017(tmp_path / "c", n_train=6, n_val=1, n_test=1, seed=3, min_size=200, max_size=500)
    assert _files(a) == _files(b)
    assert _files(a) != _files(c)
    widths = set()
    for jpg in (a / "ISIC-2017_Training_Data").glob("*.jpg"):
        image = cv2.imread(str(jpg))
        mask = cv2.imread(str(a / "ISIC-2017_Training_Part1_GroundTruth" / f"{jpg.stem}_segmentation.png"), -1)
        assert mask.shape == image.shape[:2] and set(np.unique(mask)) == {0, 255}
        assert 0.02 < (mask > 0).mean() < 0.6
        assert 200 <= image.shape[1] <= 500 and image.shape[0] < image.shape[1]
        widths.add(image.shape[1])
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float)
        ring = cv2.dilate(mask, np.ones((25, 25), np.uint8)) > 0
        # the lesion is darker than the skin right around it
        assert grey[mask > 0].mean() < grey[ring & (mask == 0)].mean() - 20
    assert len(widths) > 3


def test_isic_zip_holds_the_official_top_folder(tmp_path):
    root = write_synthetic_isic2017(tmp_path / "z", n_train=2, n_val=1, n_test=1, as_zip=True,
                                    min_size=100, max_size=150)
    with zipfile.ZipFile(root / "ISIC-2017_Training_Data.zip") as archive:
        names = archive.namelist()
    assert "ISIC-2017_Training_Data/" in names
    assert all(n.startswith("ISIC-2017_Training_Data/") for n in names)
    assert any(n.endswith("_metadata.csv") for n in names) and any(n.endswith("_superpixels.png") for n in names)
    assert not any(p.is_dir() for p in root.iterdir())


def test_shenzhen_layouts_missing_masks_and_rgb(tmp_path):
    flat = write_synthetic_shenzhen(tmp_path / "flat", 10, missing_masks=3, seed=5, min_size=150, max_size=250)
    assert flat.images_dir == tmp_path / "flat" / "ChinaSet_AllFiles" / "CXR_png"
    stems = sorted(p.stem for p in flat.images_dir.glob("CHNCXR_????_?.png"))
    assert len(stems) == 10 and stems[0] == "CHNCXR_0001_0" and stems[-1].endswith("_1")
    masks = sorted(p.name for p in flat.masks_dir.glob("*_mask.png"))
    assert masks == [f"{s}_mask.png" for s in stems if s not in flat.without_mask] and len(flat.without_mask) == 3
    assert len(list((tmp_path / "flat" / "ChinaSet_AllFiles" / "ClinicalReadings").glob("*.txt"))) == 10
    for stem in stems:
        if stem in flat.without_mask:
            continue
        image = cv2.imread(str(flat.images_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(flat.masks_dir / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 2 and mask.shape == image.shape and set(np.unique(mask)) == {0, 255}
        # two lung fields, darker than the body between them
        count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8))
        assert count - 1 == 2
        spine_column = image[:, image.shape[1] // 2]
        assert image[mask > 0].mean() < spine_column[image.shape[0] // 3: 2 * image.shape[0] // 3].mean() - 30

    nested = write_synthetic_shenzhen(tmp_path / "nested", 4, missing_masks=0, rgb=True, nested_masks=True,
                                      min_size=100, max_size=120)
    assert len(list((nested.masks_dir / "mask").glob("*_mask.png"))) == 4
    rgb = cv2.imread(str(next(nested.images_dir.iterdir())), cv2.IMREAD_UNCHANGED)
    assert rgb.ndim == 3 and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])


def test_synth_cli(tmp_path, capsys):
    assert main(["synth", "isic2017", str(tmp_path / "isic"), "--train", "2", "--val", "1", "--test", "1",
                 "--min-size", "80", "--max-size", "120", "--zip"]) == 0
    assert len(list((tmp_path / "isic").glob("*.zip"))) == 6
    assert "next: tloss-nnunet convert isic2017" in capsys.readouterr().out
    assert main(["synth", "isic2017", str(tmp_path / "bad"), "--min-size", "500", "--max-size", "100"]) == 2
    assert "--min-size" in capsys.readouterr().err
