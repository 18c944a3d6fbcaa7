"""Re-runs of ``convert`` and ``export-stock`` never delete or rewrite files they did not write (issue 22,
Deliver 2): files put into a dataset folder or edited by hand are named in a one-line refusal (exit 2, nothing
changed) and replaced only with ``--overwrite``; markers compare SHA-256 digests, so a damaged output (one
flipped byte) is written again; an older export without digests is never replaced."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from tloss_nnunet.cli import main
from tloss_nnunet.converters import write_synthetic_isic2017
from tloss_nnunet.converters.contents import png_is_intact
from tloss_nnunet.converters.publish import MARKER

OPTIONS = ["--alpha", "0.5", "--beta", "0.5", "--workers", "1", "--quiet", "--no-verify"]
CLEAN = "Dataset500_ISIC2017_clean"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_synthetic_isic2017(tmp_path_factory.mktemp("isic") / "release", n_train=4, n_val=1, n_test=1,
                                    seed=3, min_size=90, max_size=140)


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory) -> Path:
    """One finished conversion, copied by each test (hard links kept apart: copies are independent)."""
    raw = tmp_path_factory.mktemp("converted") / "raw"
    assert _convert(release, raw) == 0
    return raw


def _convert(release: Path, raw: Path, *extra: str) -> int:
    return main(["convert", "isic2017", str(release), "--out", str(raw), *OPTIONS, *extra])


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _copy(converted: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(converted, raw)
    return raw


def _png(mask: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", mask)
    assert ok
    return data.tobytes()


def _datasets(raw: Path) -> dict[str, bytes]:
    """Every file of the dataset folders (not the hidden staging a refusal after staging keeps for the re-run)."""
    return {f"{folder.name}/{name}": data for folder in sorted(raw.glob("Dataset*"))
            for name, data in _tree(folder).items()}


def _refused(release: Path, raw: Path, capsys, *names: str) -> str:
    """Re-run without --overwrite: exit 2, one line naming ``names`` and --overwrite, no dataset file changed."""
    before = _datasets(raw)
    capsys.readouterr()
    assert _convert(release, raw) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "Traceback" not in err
    assert all(name in err for name in names), err
    assert _datasets(raw) == before
    return err


@pytest.mark.parametrize("where", ["imagesTr", "labelsTs"])
def test_a_file_the_user_added_is_kept_and_named_until_overwrite(release, converted, tmp_path, capsys, where):
    raw = _copy(converted, tmp_path)
    added = raw / CLEAN / where / "mine_0000.png"
    added.write_bytes(_png(np.zeros((8, 8), np.uint8)))
    before = _tree(raw)
    _refused(release, raw, capsys, f"{where}/mine_0000.png")
    assert _tree(raw) == before  # refused before any input was read: not even a staging folder
    assert _convert(release, raw, "--overwrite") == 0  # --overwrite: removed, inside the dataset folder only
    assert _tree(raw) == _tree(converted)


def test_a_label_fixed_by_hand_is_not_reverted_without_overwrite(release, converted, tmp_path, capsys):
    raw = _copy(converted, tmp_path)
    label = sorted((raw / CLEAN / "labelsTr").iterdir())[0]
    import cv2

    fixed = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    fixed[:4, :4] = 1 - fixed[:4, :4]
    label.write_bytes(_png(fixed))
    _refused(release, raw, capsys, f"labelsTr/{label.name}")
    assert _convert(release, raw, "--overwrite") == 0
    assert _tree(raw) == _tree(converted)


def test_a_refusal_names_five_files_then_dots(release, converted, tmp_path, capsys):
    raw = _copy(converted, tmp_path)
    for index in range(7):
        (raw / CLEAN / "labelsTr" / f"extra{index}.png").write_bytes(b"not a png")
    err = _refused(release, raw, capsys, *(f"labelsTr/extra{i}.png" for i in range(5)))
    assert "extra5" not in err and ", ..." in err and "7 file(s)" in err


@pytest.mark.parametrize("position", [0.5, 0.0, -1.0])
def test_one_flipped_byte_of_the_same_size_is_written_again(release, converted, tmp_path, capsys, position):
    raw = _copy(converted, tmp_path)
    label = sorted((raw / CLEAN / "labelsTr").iterdir())[0]
    data = bytearray(label.read_bytes())
    at = int(position * (len(data) - 1)) % len(data)
    data[at] ^= 0x01
    label.write_bytes(bytes(data))
    capsys.readouterr()
    assert _convert(release, raw) == 0
    out = capsys.readouterr().out
    assert f"{CLEAN} [written]" in out and "written again" in out
    assert _tree(raw) == _tree(converted)


def test_files_nnunet_does_not_read_are_left_alone(release, converted, tmp_path, capsys):
    raw = _copy(converted, tmp_path)
    mine = {raw / CLEAN / "imagesTr" / "notes.txt": b"mine", raw / CLEAN / "labelsTr" / ".DS_Store": b"\0",
            raw / CLEAN / "README.md": b"about"}
    for path, data in mine.items():
        path.write_bytes(data)
    capsys.readouterr()
    assert _convert(release, raw) == 0 and f"{CLEAN} [up to date]" in capsys.readouterr().out
    assert all(path.read_bytes() == data for path, data in mine.items())


def test_the_marker_records_a_sha256_per_file(converted):
    marker = json.loads((converted / CLEAN / MARKER).read_text())
    label = next(name for name in marker["files"] if name.startswith("labelsTr/"))
    import hashlib

    assert marker["files"][label] == hashlib.sha256((converted / CLEAN / label).read_bytes()).hexdigest()
    assert {"dataset.json", "splits_final.json"} <= set(marker["files"])


def test_an_older_marker_with_sizes_still_tells_damaged_from_edited(release, converted, tmp_path, capsys):
    raw = _copy(converted, tmp_path)
    marker_path = raw / CLEAN / MARKER
    marker = json.loads(marker_path.read_text())
    marker["files"] = {name: (raw / CLEAN / name).stat().st_size for name in marker["files"]}
    marker_path.write_text(json.dumps(marker))
    capsys.readouterr()
    assert _convert(release, raw) == 0 and f"{CLEAN} [up to date]" in capsys.readouterr().out
    label = sorted((raw / CLEAN / "labelsTr").iterdir())[0]
    data = bytearray(label.read_bytes())
    data[len(data) // 2] ^= 0x10  # same size, CRC error: damaged
    label.write_bytes(bytes(data))
    assert _convert(release, raw) == 0 and "written again" in capsys.readouterr().out
    assert label.read_bytes() == (converted / CLEAN / "labelsTr" / label.name).read_bytes()
    label.write_bytes(_png(np.ones((5, 5), np.uint8)))  # another size, decodes: edited
    _refused(release, raw, capsys, f"labelsTr/{label.name}")


def test_a_file_put_into_an_unfinished_folder_is_refused_before_publishing(release, tmp_path, capsys):
    raw = tmp_path / "raw"
    assert _convert(release, raw) == 0
    for folder in raw.glob("Dataset*"):  # as a run killed while publishing leaves them
        marker = json.loads((folder / MARKER).read_text())
        (folder / MARKER).write_text(json.dumps({"fingerprint": marker["fingerprint"], "complete": False}))
    noisy = raw / "Dataset501_ISIC2017_a05b05"
    # the staging is made again (new files): each file there is compared by its bytes, all ours but this one
    (noisy / "labelsTr" / "mine.png").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    _refused(release, raw, capsys, "labelsTr/mine.png", str(noisy))
    assert _convert(release, raw, "--overwrite") == 0 and not (noisy / "labelsTr" / "mine.png").exists()


def test_every_flipped_byte_and_every_cut_makes_a_png_damaged():
    data = _png(np.arange(64, dtype=np.uint8).reshape(8, 8) % 2)
    assert png_is_intact(data)
    for at in range(len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        assert not png_is_intact(bytes(flipped)), at
    assert not any(png_is_intact(data[:cut]) for cut in range(len(data)))
    assert not png_is_intact(data + b"\0")
    # a whole PNG whose image data inflates to too few bytes for its header
    raw_rows = zlib.compress(b"\0" * 3)
    chunk = b"IDAT" + raw_rows
    short = data[:33] + len(raw_rows).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[-12:]
    assert not png_is_intact(short)


def _model(root: Path) -> Path:
    import torch

    folder = root / "Dataset777_X" / "nnUNetTrainerTLoss_5epochs__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        (folder / name).write_text(json.dumps({"name": name}))
    torch.save({"network_weights": {"w": torch.ones(2)}, "trainer_name": "nnUNetTrainerTLoss_5epochs",
                "init_args": {"configuration": "2d"}, "current_epoch": 5}, folder / "fold_0" / "checkpoint_final.pth")
    return folder


@pytest.mark.parametrize("retrained", [True, False])
def test_an_older_export_without_digests_is_never_replaced(tmp_path, capsys, retrained):
    import torch

    model, out = _model(tmp_path / "mine"), tmp_path / "out"
    assert main(["export-stock", str(model), str(out), "--quiet"]) == 0
    target = out / "nnUNetTrainer__nnUNetPlans__2d"
    provenance = json.loads((target / "tloss_export.json").read_text())
    del provenance["files"]  # as export-stock wrote it before it recorded digests
    (target / "tloss_export.json").write_text(json.dumps(provenance))
    if retrained:  # nnUNetv2_train -tr nnUNetTrainer --c continued in the export
        torch.save({"network_weights": {"w": torch.zeros(2)}, "trainer_name": "nnUNetTrainer",
                    "init_args": {}, "current_epoch": 9}, target / "fold_0" / "checkpoint_final.pth")
    before = _tree(out)
    capsys.readouterr()
    assert main(["export-stock", str(model), str(out), "--quiet", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recorded no SHA-256 digests" in err and f"rm -r '{target}'" in err
    assert _tree(out) == before


def test_a_fresh_file_is_hashed_again_after_a_same_size_change(tmp_path):
    """Timestamps are coarse: a digest is cached only for files unchanged for a while."""
    from tloss_nnunet.converters.contents import sha256

    path = tmp_path / "label.png"
    path.write_bytes(b"a" * 64)
    first = sha256(path)
    path.write_bytes(b"b" * 64)  # same size, same inode, most likely the same timestamp tick
    assert sha256(path) != first


def test_a_changed_export_is_not_offered_overwrite(tmp_path, capsys):
    """--overwrite would not replace a changed export either, so the refusal without it does not suggest it."""
    model, out = _model(tmp_path / "mine"), tmp_path / "out"
    assert main(["export-stock", str(model), str(out), "--quiet"]) == 0
    (out / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0" / "checkpoint_latest.pth").write_bytes(b"training went on")
    capsys.readouterr()
    assert main(["export-stock", str(model), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "changed since" in err and "fold_0/checkpoint_latest.pth" in err and "pass --overwrite" not in err
