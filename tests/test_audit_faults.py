"""``suspects`` on damaged inputs and on folders holding files it did not write (issue 22).

Every refusal is one line on stderr (exit 2 for bad input, 1 for a failed run), never a traceback, and a refusal
before prediction creates no output folder. The fast tests use a model folder with a hand-made checkpoint (all
refused before nnU-Net's predictor would need real weights); the last ones predict with the session's trained
tiny model (copied where they damage it).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunet_commands import cli
from PIL import Image

from tloss_nnunet.audit.model import load_model
from tloss_nnunet.audit.predict import _is_complete, _prepare_folder
from tloss_nnunet.cli import main
from tloss_nnunet.errors import InputError
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

CHECKPOINT = {"network_weights": {"w": torch.zeros(64)}, "init_args": {"configuration": "2d"},
              "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1)}


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> dict:
    """A raw dataset of 4 cases and a model folder whose fold 0 holds a well-formed (untrained) checkpoint."""
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(key, raising=False)
    raw = Path(write_synthetic_dataset(str(tmp_path / "raw"), 621, "2d", num_train=4, num_test=0, size=16))
    model = tmp_path / "results" / raw.name / "nnUNetTrainer__nnUNetPlans__2d"
    (model / "fold_0").mkdir(parents=True)
    (model / "plans.json").write_text("{}")
    shutil.copy(raw / "dataset.json", model / "dataset.json")
    torch.save(CHECKPOINT, model / "fold_0" / "checkpoint_final.pth")
    out = tmp_path / "audit"
    return {"raw": raw, "model": model, "out": out, "checkpoint": model / "fold_0" / "checkpoint_final.pth",
            "args": ["suspects", str(model), "-o", str(out), "--raw", str(raw), "-device", "cpu", "--quiet"]}


def _refused(args: list[str], capsys, *, code: int = 2) -> str:
    capsys.readouterr()
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _refused_before_writing(fake: dict, capsys, extra: tuple[str, ...] = ()) -> str:
    err = _refused([*fake["args"], *extra], capsys)
    assert not fake["out"].exists()
    return err


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "cannot be read as a checkpoint"),
    (lambda p: p.write_text("not a checkpoint\n"), "cannot be read as a checkpoint"),
    (lambda p: torch.save(torch.zeros(3), p), "holds a Tensor"),
    (lambda p: torch.save({k: v for k, v in CHECKPOINT.items() if k != "network_weights"}, p),
     "lacks network_weights"),
    (lambda p: torch.save({**CHECKPOINT, "init_args": {}}, p), "init_args has no configuration"),
])
def test_a_damaged_checkpoint_is_one_line_and_writes_nothing(fake, capsys, damage, message):
    damage(fake["checkpoint"])
    err = _refused_before_writing(fake, capsys)
    assert message in err and str(fake["checkpoint"]) in err


@pytest.mark.parametrize("splits, message", [
    ([{"train": [], "val": 5}], "fold 0's 'val' is 5"),
    (["val"], "fold 0 is a str"),
    ([{"train": [], "val": ["case_000"]}, ["val"]], "fold 1 is a list"),
])
def test_malformed_splits_are_one_line(fake, capsys, tmp_path, splits, message):
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    err = _refused_before_writing(fake, capsys, ("--splits", str(tmp_path / "splits.json")))
    assert message in err and "not an nnU-Net splits file" in err


@pytest.mark.parametrize("key, message", [("file_ending", "no file_ending"), ("labels", "no labels")])
def test_a_dataset_json_without_a_key_is_one_line(fake, capsys, key, message):
    dataset = json.loads((fake["model"] / "dataset.json").read_text())
    (fake["model"] / "dataset.json").write_text(json.dumps({k: v for k, v in dataset.items() if k != key}))
    assert message in _refused_before_writing(fake, capsys)


def test_a_raw_dataset_of_another_release_is_refused_before_prediction(fake, capsys, tmp_path):
    other = Path(write_synthetic_dataset(str(tmp_path / "other"), 621, "2d", num_train=6, num_test=0, size=32))
    err = _refused_before_writing(fake, capsys, ("--raw", str(other)))
    assert "has 6 training case(s), the model was trained on 4" in err


def test_a_raw_dataset_with_another_file_ending_is_named(fake, capsys, tmp_path):
    other = Path(write_synthetic_dataset(str(tmp_path / "other"), 621, "3d", num_train=4, num_test=0, size=16))
    err = _refused_before_writing(fake, capsys, ("--raw", str(other)))
    assert "it holds .nii.gz files, the model's dataset.json says .png" in err


def test_a_label_value_the_model_lacks_is_named_before_prediction(fake, capsys):
    label = fake["raw"] / "labelsTr" / "case_002.png"
    mask = np.asarray(Image.open(label)).copy()
    mask[0, 0] = 2
    Image.fromarray(mask.astype(np.uint8)).save(label)
    err = _refused_before_writing(fake, capsys)
    assert "case_002: value 2" in err and "its labels: 0, 1" in err


def test_a_label_of_another_size_is_named_before_prediction(fake, capsys):
    Image.fromarray(np.zeros((20, 16), np.uint8)).save(fake["raw"] / "labelsTr" / "case_001.png")
    assert "case_001: label 1x20x16 vs image 1x16x16" in _refused_before_writing(fake, capsys)


def test_a_users_file_in_a_prediction_folder_is_kept_and_named(fake, capsys):
    user = fake["out"] / "predictions" / "fold_0" / "case1.nii.gz"
    user.parent.mkdir(parents=True)
    user.write_bytes(b"mine")
    err = _refused([*fake["args"]], capsys)
    assert f"holds files suspects did not write: {user}" in err and "choose another -o" in err
    assert user.read_bytes() == b"mine"


def test_a_damaged_stamp_makes_the_folder_unknown(fake, capsys):
    folder = fake["out"] / "predictions" / "fold_0"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{not json")
    (folder / "case_000.npz").write_bytes(b"x")
    assert "did not write" in _refused([*fake["args"]], capsys)
    assert (folder / "case_000.npz").exists() and (folder / "model.json").read_text() == "{not json"


def test_a_users_suspects_csv_without_our_predictions_is_kept(fake, capsys):
    fake["out"].mkdir()
    (fake["out"] / "suspects.csv").write_text("mine\n")
    assert "suspects.csv" in _refused([*fake["args"]], capsys)
    assert (fake["out"] / "suspects.csv").read_text() == "mine\n"


def _predictions(fake: dict) -> Path:
    """fold 0's prediction folder as an audit leaves it (stamped), with each case's three files."""
    folder = _prepare_folder(load_model(fake["model"], raw_folder=fake["raw"]), 0, fake["out"])
    for case in ("case_000", "case_001"):
        for suffix in (".png", ".npz", ".pkl"):
            (folder / f"{case}{suffix}").write_bytes(b"ours")
    return folder


def test_a_checkpoint_changed_in_content_only_empties_its_folder(fake):
    """Same size and modification time, other bytes: the stamp compares the SHA-256, so the folder is ours but
    stale and is emptied for new predictions."""
    folder = _predictions(fake)
    checkpoint, stat = fake["checkpoint"], fake["checkpoint"].stat()
    data = bytearray(checkpoint.read_bytes())
    data[-30] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _prepare_folder(load_model(fake["model"], raw_folder=fake["raw"]), 0, fake["out"])
    assert sorted(p.name for p in folder.iterdir()) == ["model.json"]


@pytest.mark.parametrize("stamp", [
    lambda s: {**s, "sha256": "0" * 64},  # our own output of another checkpoint
    lambda s: {"checkpoint": s["checkpoint"], "size": 1, "mtime_ns": 1},  # the older stamp of size and time
], ids=["other_checkpoint", "size_and_time"])
def test_our_stale_predictions_are_replaced_and_a_users_file_is_not(fake, stamp):
    folder = _predictions(fake)
    (folder / "model.json").write_text(json.dumps(stamp(json.loads((folder / "model.json").read_text()))))
    (folder / "mine.txt").write_text("mine")
    with pytest.raises(InputError, match="mine.txt"):
        _prepare_folder(load_model(fake["model"], raw_folder=fake["raw"]), 0, fake["out"])
    assert (folder / "case_000.npz").exists()
    (folder / "mine.txt").unlink()
    _prepare_folder(load_model(fake["model"], raw_folder=fake["raw"]), 0, fake["out"])
    assert sorted(p.name for p in folder.iterdir()) == ["model.json"]
    assert json.loads((folder / "model.json").read_text())["sha256"] != "0" * 64


def test_probabilities_damaged_near_the_start_count_as_unfinished(tmp_path):
    """bytes 200-399 of the npz overwritten: the array header's compressed stream breaks (zlib.error)."""
    rng = np.random.default_rng(0)
    np.savez_compressed(tmp_path / "case.npz", probabilities=rng.random((2, 64, 64)).astype(np.float32))
    (tmp_path / "case.png").write_bytes(b"")
    assert _is_complete(tmp_path, "case", ".png")
    data = bytearray((tmp_path / "case.npz").read_bytes())
    data[200:400] = bytes(range(200))
    (tmp_path / "case.npz").write_bytes(bytes(data))
    assert zipfile.ZipFile(tmp_path / "case.npz").namelist() == ["probabilities.npy"]  # the directory is intact
    assert not _is_complete(tmp_path, "case", ".png")


# --- with the session's trained tiny model (prediction) ------------------------------------------------------


@pytest.fixture(scope="module")
def predicted(trained_tloss_model, tmp_path_factory) -> dict:
    """An audit of fold 0 of the trained model, run once; each test audits a copy of it."""
    model = trained_tloss_model
    root = tmp_path_factory.mktemp("audit_faults")
    base = ["-device", "cpu", "-npp", "1", "-nps", "1", "--quiet", "--raw", str(model["raw"])]
    cli(["suspects", model["model"], "-o", str(root / "base"), "-f", "0", *base])
    return {**model, "root": root, "base": base}


def _copy(predicted: dict, name: str) -> Path:
    out = predicted["root"] / name
    shutil.copytree(predicted["root"] / "base", out)
    return out


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")}


@pytest.mark.slow
def test_a_rerun_predicts_a_damaged_npz_again_and_finishes(predicted):
    out = _copy(predicted, "damaged_npz")
    folder = out / "predictions" / "fold_0"
    before, first = _mtimes(folder), (out / "suspects.csv").read_text()
    npz = folder / "case_003.npz"
    data = bytearray(npz.read_bytes())
    data[200:400] = bytes(200)
    npz.write_bytes(bytes(data))
    cli(["suspects", predicted["model"], "-o", str(out), "-f", "0", *predicted["base"]])
    after = _mtimes(folder)
    assert after["case_003.npz"] != before["case_003.npz"]
    assert {k: v for k, v in after.items() if k != "case_003.npz"} == \
        {k: v for k, v in before.items() if k != "case_003.npz"}
    assert (out / "suspects.csv").read_text() == first


@pytest.mark.slow
def test_overwrite_deletes_foreign_files_only_in_the_prediction_folders(predicted, capsys):
    out = _copy(predicted, "overwrite")
    user, note = out / "predictions" / "fold_0" / "case1.nii.gz", out / "notes.txt"
    user.write_bytes(b"mine")
    note.write_text("mine")
    args = ["suspects", predicted["model"], "-o", str(out), "-f", "0", *predicted["base"]]
    assert "did not write: " + str(user) in _refused(args, capsys)
    before = _mtimes(out / "predictions" / "fold_0")
    cli([*args, "--overwrite"])
    assert not user.exists() and note.read_text() == "mine"
    assert _mtimes(out / "predictions" / "fold_0") == before  # our predictions kept: same checkpoint


@pytest.mark.slow
def test_a_half_written_segmentation_is_predicted_again(predicted, capsys):
    out = _copy(predicted, "damaged_segmentation")
    top = (out / "suspects.csv").read_text().splitlines()[1].split(",")[0]
    segmentation = out / "predictions" / "fold_0" / f"{top}.png"
    whole = segmentation.read_bytes()
    segmentation.write_bytes(whole[:20])  # nnU-Net writes it last: a killed write beside a whole .npz
    capsys.readouterr()
    assert main(["suspects", predicted["model"], "-o", str(out), "-f", "0", *predicted["base"]]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert segmentation.read_bytes() == whole


@pytest.mark.slow
def test_a_fold_without_its_checkpoint_is_named(predicted):
    model = predicted["root"] / "models" / Path(predicted["model"]).parent.name / Path(predicted["model"]).name
    shutil.copytree(predicted["model"], model)  # the shared model has fold 0 only
    (model / "fold_3").mkdir()
    out = _copy(predicted, "skipped")  # same checkpoint bytes: the predictions are reused
    stdout = cli(["suspects", str(model), "-o", str(out), *predicted["base"]])
    line = "fold 3 has no checkpoint_final.pth: skipped; train it (nnUNetv2_train ... FOLD) or pass -f 0"
    assert line in stdout and line in (out / "suspects.md").read_text()


def test_parts_take_turns_at_a_stale_prediction_folder(fake):
    """Two parts of one audit starting together: the one that waits finds the folder already stamped and keeps
    what the other wrote (it must not empty it as stale)."""
    import threading

    from tloss_nnunet.audit.ownership import prediction_folder, predictions_lock

    model = load_model(fake["model"], raw_folder=fake["raw"])
    done = threading.Event()
    with predictions_lock(fake["out"]):  # another part is deciding
        worker = threading.Thread(target=lambda: (_prepare_folder(model, 0, fake["out"]), done.set()))
        worker.start()
        assert not done.wait(0.5)  # it waits for the lock
        folder = prediction_folder(fake["out"], 0)
    worker.join(30)
    assert done.is_set() and (folder / "model.json").is_file()
    (folder / "case_000.npz").write_bytes(b"from part 0")
    _prepare_folder(model, 0, fake["out"])  # a second part: the stamp is current, nothing is emptied
    assert (folder / "case_000.npz").read_bytes() == b"from part 0"
