"""``benchmarks/gpu_check.py`` end to end in its CPU smoke mode, so the GPU check cannot rot unnoticed.

One run of every section (tiny sizes, the real stock nnU-Net commands in the training section), files written
and read back. On a CUDA machine the same script runs with ``--device cuda`` at full size (see the README).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--smoke",
                           "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text(), done.stdout


@pytest.mark.slow
def test_every_section_ran_and_passed_its_checks(smoke):
    data, _, stdout = smoke
    sections = data["sections"]
    assert list(sections) == ["loss", "overhead", "training", "scaler"]
    for name, section in sections.items():
        assert section["status"] == "ok", (name, section.get("error"), section.get("traceback"))
        assert section["checks"] and all(section["checks"].values())
        assert section["seconds"] > 0 and f"== {name}: ok" in stdout  # the per-section budget line
    assert data["meta"]["device"] == "cpu" and data["meta"]["smoke"] is True


@pytest.mark.slow
def test_loss_rows_cover_cases_dtypes_and_losses(smoke):
    rows = smoke[0]["sections"]["loss"]["result"]["rows"]
    keys = {(r["case"], r["dtype"], r["loss"]) for r in rows}
    assert keys == {(c, d, loss) for c in ("2d", "3d") for d in ("float32", "float16", "bfloat16")
                    for loss in ("tloss", "dc_ce", "floor")}
    for r in rows:
        assert r["median_s"] > 0 and r["time_vs_floor"] > 0 and r["extra_bytes"] is None  # no CPU memory figure


@pytest.mark.slow
def test_overhead_and_training_found_what_they_check(smoke):
    sections = smoke[0]["sections"]
    overhead = sections["overhead"]["result"]
    assert set(overhead["train_step"]) == {"nnUNetTrainer", "nnUNetTrainerTLoss"}
    assert overhead["amp"] is False and overhead["compiled"] is False  # nnU-Net: neither on CPU
    assert math.isfinite(overhead["tloss_over_stock"])
    trainers = sections["training"]["result"]["trainers"]
    ours = trainers["nnUNetTrainerTLoss_demo"]
    assert ours["continue_restored_nu_exactly"] is True and ours["log_nu"] != 0.0
    assert len(ours["nu_logged"]) == 1
    assert list(trainers) == ["nnUNetTrainerTLoss_demo"]  # the smoke run skips the stock chain (same code)
    assert all(0.0 <= d <= 1.0 for t in trainers.values() for d in t["dice_per_case"].values() if d == d)
    scaler = sections["scaler"]["result"]
    assert scaler["network_unchanged"] and scaler["nu_unchanged"] and scaler["scale_after"] < scaler["init_scale"]


@pytest.mark.slow
def test_markdown_has_a_table_per_section(smoke):
    markdown = smoke[1]
    for heading in ("## loss", "## overhead", "## training", "## scaler"):
        assert heading in markdown
    assert "| 2d | float32 | tloss |" in markdown


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path):
    from benchmarks.gpu_check_lib.record import Record

    record = Record(tmp_path / "r.json", {"smoke": True}, lambda data: "md\n")
    record.run("broken", 1.0, lambda: 1 / 0)
    record.run("unmet", 1.0, lambda: {"result": {"x": 1}, "checks": {"fine": True, "target": False}})
    record.run("fine", 1.0, lambda: {"result": {}, "checks": {"fine": True}})
    data = json.loads((tmp_path / "r.json").read_text())["sections"]
    assert data["broken"]["status"] == "failed" and "ZeroDivisionError" in data["broken"]["error"]
    assert data["unmet"]["status"] == "failed" and data["unmet"]["error"] == "checks failed: target"
    assert data["fine"]["status"] == "ok" and not record.ok
    assert (tmp_path / "r.md").read_text() == "md\n"
