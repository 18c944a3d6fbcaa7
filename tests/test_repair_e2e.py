"""The real chain on the session's tiny trained model: ``tloss-nnunet suspects`` -> ``tloss-nnunet repair`` ->
stock ``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` on the repaired dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nnunet_commands import cli, run

pytestmark = [pytest.mark.slow]

REPAIRED_ID = 623


def test_suspects_then_repair_gives_a_dataset_nnunet_plans(trained_tloss_model, tmp_path, monkeypatch):
    model = trained_tloss_model
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, model["env"][key])
    audit = tmp_path / "audit"
    cli(["suspects", model["model"], "-o", str(audit), "-device", "cpu", "-npp", "1", "-nps", "1", "--quiet"])
    raw = tmp_path / "raw"  # a raw folder of its own: the session's stays as the other tests expect it
    stdout = cli(["repair", str(audit), "--out-id", str(REPAIRED_ID), "--mode", "ignore", "--top-k", "3",
                  "--confidence", "0.6", "--out", str(raw)])
    folder = raw / f"Dataset{REPAIRED_ID}_{Path(model['raw']).name.split('_', 1)[1]}_repaired"
    assert f"wrote {folder}" in stdout
    record = json.loads((folder / "repair.json").read_text())
    ranked = [line.split(",")[0] for line in (audit / "suspects.csv").read_text().splitlines()[1:]]
    assert [c["case"] for c in record["cases"]] == ranked[:3] and record["source"]["path"] == str(
        Path(model["raw"]).resolve())
    assert json.loads((folder / "dataset.json").read_text())["labels"]["ignore"] == 2
    env = dict(model["env"], nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "preprocessed"))
    os.makedirs(env["nnUNet_preprocessed"])
    run(["nnUNetv2_plan_and_preprocess", "-d", str(REPAIRED_ID), "-c", "2d", "--verify_dataset_integrity",
         "-np", "1", "-npfp", "1"], env)
    assert (tmp_path / "preprocessed" / folder.name / "nnUNetPlans.json").is_file()
