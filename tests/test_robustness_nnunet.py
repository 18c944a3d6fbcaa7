"""The robustness study's nnU-Net engine: its environment per seed, reading checkpoints; end to end (slow)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

import robustness
from robustness_lib.data import Family
from robustness_lib.grid import get_config
from robustness_lib.nnunet_engine import NnUNetStudy, read_nu

from tloss_nnunet.nnunet import ext_trainer_path


def test_study_env_has_one_results_folder_per_seed(tmp_path):
    family = Family(raw=tmp_path / "raw", datasets={})
    study = NnUNetStudy(family, get_config("smoke"), tmp_path / "work")
    env0, env1 = study.env(0), study.env(1)
    assert env0["nnUNet_results"] == str((tmp_path / "work" / "results_seed0").resolve())
    assert env1["nnUNet_results"] == str((tmp_path / "work" / "results_seed1").resolve())
    for env in (env0, env1):
        assert env["nnUNet_raw"] == str(family.raw.resolve())
        assert env["nnUNet_preprocessed"] == str((tmp_path / "work" / "nnUNet_preprocessed").resolve())
        assert env["nnUNet_extTrainer"].split(os.pathsep)[0] == ext_trainer_path()
        assert env["nnUNet_compile"] == "0"


def test_read_nu_from_a_tloss_checkpoint(tmp_path):
    torch.save({"network_weights": {}, "tloss_state": {"nu": 0.75}}, tmp_path / "with.pth")
    torch.save({"network_weights": {}}, tmp_path / "without.pth")
    assert read_nu(tmp_path / "with.pth") == 0.75
    assert read_nu(tmp_path / "without.pth") is None


@pytest.mark.slow
def test_nnunet_engine_smoke_end_to_end(tmp_path, monkeypatch):
    """nnU-Net's commands (plan, train with the _tiny trainers, predict, evaluate) on the smoke data: minutes."""
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    out = tmp_path / "r.json"
    code = robustness.main(["--config", "smoke", "--engine", "nnunet", "--settings", "a0.7b0.7", "--losses", "gce",
                            "tloss", "--out", str(out), "--work-dir", str(tmp_path / "work")])
    assert code == 0
    runs = json.loads(out.read_text())["runs"]
    assert [(r["loss"], r["trainer"]) for r in runs] == [("tloss", "nnUNetTrainerTLoss_tiny"),
                                                       ("gce", "nnUNetTrainerGCELoss_tiny")]
    for run in runs:
        assert run["engine"] == "nnunet" and 0 <= run["dice_mean"] <= 1 and 0 <= run["dice_pooled"] <= 1
    assert runs[0]["nu_final"] > 0 and runs[1]["nu_final"] is None
    logs = tmp_path / "work" / "nnunet" / "logs" / "seed0"
    assert sorted(p.parent.name for p in logs.glob("*/*/train.log")) == ["nnUNetTrainerGCELoss_tiny",
                                                                       "nnUNetTrainerTLoss_tiny"]
