"""``tloss-nnunet repair`` refusals (one line, exit 2, nothing written) and interruptions (nothing left behind)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from repair_data import SIZES_2D, make_audit, make_dataset, write

from tloss_nnunet.audit import repair_dataset
from tloss_nnunet.cli import main


@pytest.fixture(autouse=True)
def _no_nnunet_folders(monkeypatch):
    """repair also refuses an ID taken in $nnUNet_preprocessed / $nnUNet_results: keep the machine's out of it."""
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(key, raising=False)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _change_a_label(data, audit):
    write(np.zeros(SIZES_2D[0], np.uint8), data["folder"] / "labelsTr" / "case_0.png")


def _add_a_case(data, audit):
    shutil.copy(data["folder"] / "imagesTr" / "case_0_0000.png", data["folder"] / "imagesTr" / "case_9_0000.png")
    shutil.copy(data["folder"] / "labelsTr" / "case_0.png", data["folder"] / "labelsTr" / "case_9.png")


def _taken_id(data, audit):
    (audit.parent / "out" / "Dataset620_Other").mkdir(parents=True)


def _regions(data, audit):
    path = data["folder"] / "dataset.json"
    dataset_json = json.loads(path.read_text())
    dataset_json["labels"] = {"background": 0, "a": [1]}
    dataset_json["regions_class_order"] = [1]
    path.write_text(json.dumps(dataset_json))


def _wrong_probabilities(data, audit):
    np.savez_compressed(audit / "predictions" / "fold_0" / "case_1.npz", probabilities=np.zeros((2, 5, 5), np.float32))


def _other_checkpoint(data, audit):
    stamp = audit / "predictions" / "fold_0" / "model.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "sha256": "0" * 64}))


def _edited_csv(data, audit):
    with open(audit / "suspects.csv", "a") as f:
        f.write("\n")


@pytest.mark.parametrize("change, options, message", [
    (None, ["--top-k", "1"], "choose --mode ignore | replace | drop"),
    (None, ["--mode", "drop"], "exactly one of --top-k N, --fraction F, --threshold T"),
    (None, ["--mode", "drop", "--top-k", "1", "--fraction", "0.5"], "exactly one of"),
    (None, ["--mode", "drop", "--fraction", "0"], "--fraction must be in (0, 1]"),
    (None, ["--mode", "drop", "--fraction", "1.5"], "--fraction must be in (0, 1]"),
    (None, ["--mode", "drop", "--top-k", "0"], "--top-k must be in 1..4"),
    (None, ["--mode", "drop", "--top-k", "5"], "--top-k must be in 1..4"),
    (None, ["--mode", "drop", "--top-k", "4"], "would leave no training case"),
    (None, ["--mode", "ignore", "--top-k", "1", "--confidence", "2"], "--confidence must be in [0, 1]"),
    (_change_a_label, ["--mode", "ignore", "--top-k", "1"], "labels of 1 case(s)"),
    (_add_a_case, ["--mode", "ignore", "--top-k", "1"], "1 case(s) of"),
    (_taken_id, ["--mode", "ignore", "--top-k", "1"], "dataset ID 620 is taken"),
    (_regions, ["--mode", "ignore", "--top-k", "1"], "region-based"),
    (_wrong_probabilities, ["--mode", "ignore", "--top-k", "2"], "the audit is not of this dataset"),
    (_edited_csv, ["--mode", "ignore", "--top-k", "1"], "not the one audit.json was written with"),
    (_other_checkpoint, ["--mode", "replace", "--top-k", "1"], "not the ones the audit ranked"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, change, options, message):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    if change:
        change(data, audit)
    target = tmp_path / "out"
    before = sorted(p.name for p in target.iterdir()) if target.exists() else None
    code, out, err = _cli(["repair", str(audit), "--out-id", "620", "--out", str(target), *options], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (sorted(p.name for p in target.iterdir()) if target.exists() else None) == before


def test_an_audit_of_another_dataset_is_refused(tmp_path, capsys):
    data = make_dataset(tmp_path / "raw", 2, 2)
    other = make_dataset(tmp_path / "raw", 2, 2, dataset_id=502)
    audit = make_audit(data, tmp_path / "audit")
    code, _, err = _cli(["repair", str(audit), "--out-id", "620", "--out", str(tmp_path / "out"), "--mode", "ignore",
                         "--top-k", "1", "--raw", str(other["folder"])], capsys)
    assert code == 2 and "the audit is of Dataset501_Toy2d, not of Dataset502_Toy2d" in err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_repair_leaves_nothing_and_a_killed_ones_staging_is_swept(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    target = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = target / f".tloss-repair-{int(dead.stdout)}-abc123" / "Dataset630_Toy2d_repaired" / "labelsTr"
    leftover.mkdir(parents=True)  # what a repair killed with -9 leaves
    from tloss_nnunet.audit import repair_write

    calls = []

    def link_then_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return shutil.copyfile(src, dst)

    monkeypatch.setattr(repair_write, "link_or_copy", link_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        repair_dataset(audit, 630, mode="ignore", top_k=2, out=target)
    assert list(target.iterdir()) == []  # the dead run's staging swept, this one's removed
