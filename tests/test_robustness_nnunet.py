"""The robustness study's nnU-Net engine: reading nnU-Net's evaluation and checkpoints; end to end (slow)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import robustness  # noqa: E402
from robustness_lib.nnunet_engine import read_nu, read_summary  # noqa: E402


def test_read_summary_pools_tp_fp_fn_over_cases(tmp_path):
    summary = {
        "foreground_mean": {"Dice": 0.5},
        "metric_per_case": [
            {"metrics": {"1": {"TP": 3, "FP": 1, "FN": 0, "Dice": 6 / 7}}},
            {"metrics": {"1": {"TP": 1, "FP": 0, "FN": 5, "Dice": 2 / 7}}},
        ],
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    dice_mean, dice_pooled = read_summary(tmp_path / "summary.json")
    assert dice_mean == 0.5  # nnU-Net's own mean over cases, taken as is
    assert dice_pooled == pytest.approx(2 * 4 / (2 * 4 + 1 + 5))


def test_read_nu_from_a_tloss_checkpoint(tmp_path):
    torch.save({"network_weights": {}, "tloss_state": {"nu": 0.75}}, tmp_path / "with.pth")
    torch.save({"network_weights": {}}, tmp_path / "without.pth")
    assert read_nu(tmp_path / "with.pth") == 0.75
    assert read_nu(tmp_path / "without.pth") is None


@pytest.mark.slow
def test_nnunet_engine_smoke_end_to_end(tmp_path):
    """nnU-Net's commands (plan, train with the _tiny trainers, predict, evaluate) on the smoke data: minutes."""
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
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
