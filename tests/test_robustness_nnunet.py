"""The stock-command engine: its environment per seed, reading nu from checkpoints; end to end (slow)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import memorisation, robustness
from benchmarks.studykit.commands import CommandEngine, read_nu
from benchmarks.studykit.data import Family
from tloss_nnunet.nnunet import ext_trainer_path
from tloss_nnunet.repro.study_trainers import STUDY_SIZES_VARIABLE


def test_engine_env_has_one_results_folder_per_seed(tmp_path):
    family = Family(raw=tmp_path / "raw", datasets={})
    engine = CommandEngine(family, robustness.CONFIGS["smoke"], tmp_path / "work")
    env0, env1 = engine.env(0), engine.env(1)
    assert env0["nnUNet_results"] == str((tmp_path / "work" / "results_seed0").resolve())
    assert env1["nnUNet_results"] == str((tmp_path / "work" / "results_seed1").resolve())
    for env in (env0, env1):
        assert env["nnUNet_raw"] == str(family.raw.resolve())
        assert env["nnUNet_preprocessed"] == str((tmp_path / "work" / "nnUNet_preprocessed").resolve())
        assert env["nnUNet_extTrainer"].split(os.pathsep)[0] == ext_trainer_path()
        assert env["nnUNet_compile"] == "0" and STUDY_SIZES_VARIABLE not in env  # "tiny": the trainer's own sizes
    assert not (tmp_path / "work" / "nnUNet_results").exists()
    sized = CommandEngine(family, memorisation.CONFIGS["cpu"], tmp_path / "work").env(0)
    assert json.loads(sized[STUDY_SIZES_VARIABLE])["features"] == [8, 16, 32, 64, 128]


def test_read_nu_from_a_tloss_checkpoint(tmp_path):
    state = {"loss": {"log_nu": torch.tensor(-0.5)}, "nu_optimizer": {}}
    torch.save({"network_weights": {}, "tloss_state": state}, tmp_path / "with.pth")
    torch.save({"network_weights": {}}, tmp_path / "without.pth")
    assert read_nu(tmp_path / "with.pth") == pytest.approx(float(torch.tensor(-0.5).exp()))
    assert read_nu(tmp_path / "without.pth") is None


@pytest.mark.slow
def test_stock_command_engine_smoke_end_to_end(tmp_path, monkeypatch):
    """nnU-Net's commands (plan, train with the _tiny T-Loss trainer, predict, evaluate) on the smoke data.

    One arm: every stock command runs once (the other arms differ only in the ``-tr`` name, which the study's
    trainer table tests check)."""
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    out = tmp_path / "r.json"
    code = robustness.main(["--config", "smoke", "--settings", "a0.7b0.7", "--losses", "tloss", "--out", str(out),
                            "--work-dir", str(tmp_path / "work")])
    assert code == 0
    [run] = json.loads(out.read_text())["runs"]
    assert (run["loss"], run["trainer"], run["engine"]) == ("tloss", "nnUNetTrainerTLoss_tiny", "nnunet-commands")
    assert 0 <= run["dice_mean"] <= 1 and 0 <= run["dice_pooled"] <= 1 and run["nu_final"] > 0
    assert run["model_reused"] is False and "CPUs" in run["machine"]
    [dataset] = (tmp_path / "work" / "nnunet" / "logs" / "seed0").glob("Dataset*_a07b07")
    logs = dataset / "nnUNetTrainerTLoss_tiny"
    assert sorted(p.name for p in logs.iterdir()) == ["evaluate.log", "predict.log", "train.log"]
