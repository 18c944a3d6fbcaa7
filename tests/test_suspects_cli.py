"""``tloss-nnunet suspects`` end to end on a model trained with the stock nnU-Net commands.

Folds 0 and 1 of the session's tiny planned dataset are trained with ``nnUNetTrainerTLoss_audit`` (tests/nnunet_ext,
100 iterations: the session's ``_tiny`` model trains 8, too few for its predictions to mean anything, and the finding
of the wrong label then depended on how nnU-Net's unseeded training happened to start), so that cross-fold scoring
(each case by the fold that held it out) is exercised. The raw dataset is copied with one training label inverted,
which every score must put first.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import numpy as np
import pytest
from nnunet_commands import DATASET_ID, cli, private_results, run
from PIL import Image

from tloss_nnunet.cli import main

pytestmark = [pytest.mark.slow]


#: what the audit's commands read from the environment (the folders, and where the test trainer is)
NNUNET_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")
AUDIT_TRAINER = "nnUNetTrainerTLoss_audit"
TEST_TRAINERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnunet_ext")


@pytest.fixture(scope="module")
def audited(trained_tloss_model, tmp_path_factory):
    """Folds 0 and 1 trained with ``AUDIT_TRAINER`` into a private results folder, a raw copy with one inverted
    label, and one audit of it (``root/audit``, its stdout in ``stdout``) that the re-run tests copy instead of
    predicting again. ``env`` finds the test trainer (nnU-Net reads ``nnUNet_extTrainer`` as a path list)."""
    root = tmp_path_factory.mktemp("suspects")
    shared = private_results(trained_tloss_model, root)  # the shared plans and data; results written privately
    ext = os.pathsep.join((shared["ext"], TEST_TRAINERS))
    for fold in ("0", "1"):
        run(["nnUNetv2_train", str(DATASET_ID), "2d", fold, "-tr", AUDIT_TRAINER, "-device", "cpu"],
            dict(shared["train_env"], nnUNet_extTrainer=ext))
    model = {**shared, "model": os.path.join(os.path.dirname(shared["model"]), f"{AUDIT_TRAINER}__nnUNetPlans__2d"),
             "env": dict(shared["env"], nnUNet_extTrainer=ext)}
    raw = root / os.path.basename(model["raw"])
    shutil.copytree(model["raw"], raw)
    labels = sorted((raw / "labelsTr").iterdir())
    wrong = labels[3]
    mask = np.asarray(Image.open(wrong))
    Image.fromarray((1 - mask).astype(np.uint8)).save(wrong)
    base = ["-device", "cpu", "-npp", "1", "-nps", "1", "--quiet", "--raw", str(raw)]
    with pytest.MonkeyPatch.context() as patch:
        for key in NNUNET_VARIABLES:
            patch.setenv(key, model["env"][key])
        stdout = cli(["suspects", model["model"], "-o", str(root / "audit"), *base])
    return {**model, "audit_raw": raw, "wrong_case": wrong.name[:-len(".png")], "root": root, "base": base,
            "stdout": stdout}


@pytest.fixture()
def nnunet_env(audited, monkeypatch):
    for key in NNUNET_VARIABLES:
        monkeypatch.setenv(key, audited["env"][key])


def _copy_audit(audited: dict, name: str):
    out = audited["root"] / name
    shutil.copytree(audited["root"] / "audit", out)  # copy2: modification times kept
    return out


def _npz_stamps(out) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted((out / "predictions").rglob("*.npz"))}


def _rows(out) -> list[dict]:
    with open(out / "suspects.csv") as f:
        return list(csv.DictReader(f))


def test_ranks_the_wrong_label_first_with_cross_fold_scoring(audited, nnunet_env):
    out, stdout = audited["root"] / "audit", audited["stdout"]
    assert "by one_minus_softmin" in stdout
    rows = _rows(out)
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 9)]
    default = [float(r["one_minus_softmin"]) for r in rows]
    assert default == sorted(default, reverse=True)  # ranked by the default score, most suspect first
    assert rows[0]["case"] == audited["wrong_case"]
    for score in ("mse", "tloss_nll"):
        assert max(rows, key=lambda r: float(r[score]))["case"] == audited["wrong_case"], score
    splits = json.loads((audited["paths"]["preprocessed"] / os.path.basename(audited["raw"])
                         / "splits_final.json").read_text())
    held = {case: fold for fold in (0, 1) for case in splits[fold]["val"]}
    for row in rows:
        assert row["held_out"] == str(row["case"] in held)
        assert int(row["fold"]) == held.get(row["case"], 0)
        # The per-element NLL may be negative (a density, not a probability); it must be there and finite.
        assert math.isfinite(float(row["tloss_nll"])) and 0 <= float(row["mse"]) <= 1
    assert "were scored by a model that trained on them" in (out / "suspects.md").read_text()
    not_held = [r["case"] for r in rows if r["case"] not in held]  # nnU-Net's 5 folds, folds 0 and 1 trained
    untrained = ", ".join(str(k) for k in range(2, len(splits)))
    assert (f"{len(not_held)} of 8 training case(s) were held out by no trained fold" in stdout
            and f"train fold(s) {untrained} of the {len(splits)}-fold split: see docs/how-to/audit-labels.md" in stdout)
    with Image.open(out / "suspects.png") as image:
        assert image.height > 500  # one row per gallery case


def test_rerun_reuses_predictions_and_repairs_a_damaged_one(audited, nnunet_env):
    out = _copy_audit(audited, "audit_rerun")
    predicted = _npz_stamps(out)
    stdout = cli(["suspects", audited["model"], "-o", str(out), "--rank-by", "tloss_nll", *audited["base"]])
    assert "by tloss_nll" in stdout and _npz_stamps(out) == predicted  # re-ranked from the same predictions
    assert _rows(out)[0]["case"] == audited["wrong_case"]
    first = (out / "suspects.csv").read_text()
    npz = sorted((out / "predictions" / "fold_0").glob("*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in npz}
    npz[0].write_bytes(npz[0].read_bytes()[:50])  # an interrupted write
    cli(["suspects", audited["model"], "-o", str(out), "--rank-by", "tloss_nll", *audited["base"]])
    assert (out / "suspects.csv").read_text() == first
    assert npz[0].stat().st_mtime_ns != stamps[npz[0]]
    assert all(p.stat().st_mtime_ns == stamps[p] for p in npz[1:])


def test_probabilities_damaged_inside_fail_in_one_line_and_the_rerun_repairs_them(audited, nnunet_env, capsys):
    out = _copy_audit(audited, "audit_damaged")
    args = ["suspects", audited["model"], "-o", str(out), *audited["base"]]
    first = (out / "suspects.csv").read_text()
    npz = sorted((out / "predictions" / "fold_0").glob("*.npz"))[0]
    data = bytearray(npz.read_bytes())  # the archive's directory and the array header intact, its data not
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    npz.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot be read" in err and "run the audit again" in err and len(err.splitlines()) == 1
    assert not npz.exists()
    cli(args)
    assert (out / "suspects.csv").read_text() == first


def test_stock_model_has_no_tloss_scores(audited, nnunet_env, capsys):
    stock_parent = audited["root"] / "stock_results" / os.path.basename(audited["raw"])
    cli(["export-stock", audited["model"], str(stock_parent), "--quiet"])
    model, out = str(stock_parent / "nnUNetTrainer__nnUNetPlans__2d"), audited["root"] / "audit_stock"
    assert "by mse" in cli(["suspects", model, "-o", str(out), "--rank-by", "mse", *audited["base"]])
    rows = _rows(out)
    assert rows[0]["case"] == audited["wrong_case"] and rows[0]["tloss_nll"] == "" and rows[0]["mse"] != ""
    assert main(["suspects", model, "-o", str(out), "--rank-by", "tloss_weight", *audited["base"]]) == 2
    assert "needs nu" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (lambda a: [str(a["root"]), "-o", "x"], "is not an nnU-Net model folder"),
    (lambda a: [a["model"] + "_nope", "-o", "x"], "does not exist"),
    (lambda a: [a["model"], "-o", "x", "-f", "4"], "have no checkpoint_final.pth"),
    (lambda a: [a["model"], "-o", "x", "--checkpoint", "checkpoint_best.pth.missing"], "no fold"),
    (lambda a: [a["model"], "-o", os.path.join(a["model"], "audit")], "inside the model folder"),
    (lambda a: [a["model"], "-o", "x", "--top-k", "-1"], "top-k"),
])
def test_bad_inputs_give_one_line(audited, nnunet_env, capsys, args, message):
    assert main(["suspects", *args(audited), "-device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not os.path.exists("x")  # a refused audit creates no output folder


def test_missing_dataset_and_cuda_are_refused(audited, nnunet_env, capsys, monkeypatch):
    assert main(["suspects", audited["model"], "-o", "x", "-device", "cpu", "--raw", "/nonexistent"]) == 2
    assert "raw dataset /nonexistent not found" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(audited["root"] / "empty"))
    assert main(["suspects", audited["model"], "-o", "x", "-device", "cpu"]) == 2
    assert "not found" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert main(["suspects", audited["model"], "-o", "x", "--raw", str(audited["audit_raw"])]) == 2
        assert "pass -device cpu" in capsys.readouterr().err
