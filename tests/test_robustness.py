"""The robustness study: its run order, resume and refusals through the driver (a stand-in engine: no training),
and its report (tables, paired differences, nu, cells not run, plot) from hand-made records."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import robustness
from benchmarks.robustness_report import FIELDS, markdown_table, render_markdown, tloss_vs_baseline
from benchmarks.studykit import commands
from benchmarks.studykit.data import Family
from benchmarks.studykit.grid import parse_setting
from benchmarks.studykit.store import ResultStore, load_runs


class _Engine:
    """Stands in for the stock-command engine: records without training, the order of the calls kept."""

    calls: list[tuple] = []

    def __init__(self, family, config, work_dir, device="cpu") -> None:
        self.config = config

    def run(self, setting: str, arm: str, seed: int) -> dict:
        _Engine.calls.append((setting, arm, seed))
        if arm == "dice" and seed == 1:
            raise RuntimeError("nnUNetv2_train failed")
        alpha, beta = parse_setting(setting)
        return {"setting": setting, "alpha": alpha, "beta": beta, "loss": arm, "seed": seed, "dice_mean": 0.8,
                "dice_pooled": 0.81, "nu_final": 1.5 if arm == "tloss" else None, "wall_s": 1.0, "machine": "m",
                "engine": commands.ENGINE, "config": self.config.name}


@pytest.fixture
def stand_in(monkeypatch):
    import benchmarks.studykit.data as data

    monkeypatch.setattr(commands, "CommandEngine", _Engine)
    monkeypatch.setattr(data, "prepare_family", lambda *args, **kwargs: Family(raw=None, datasets={}))
    _Engine.calls = []
    return _Engine


def test_grid_runs_headline_first_keeps_going_past_a_failure_and_resumes(stand_in, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--config", "smoke", "--settings", "clean", "a0.7b0.7", "--losses", "dice", "dice_ce", "tloss",
            "--seeds", "0", "1", "--out", str(out), "--work-dir", str(tmp_path / "work")]
    assert robustness.main(args) == 1  # one run failed, the other eleven ran
    assert [c[1] for c in stand_in.calls] == ["tloss"] * 4 + ["dice_ce"] * 4 + ["dice"] * 4
    assert stand_in.calls[:4] == [("clean", "tloss", 0), ("a0.7b0.7", "tloss", 0), ("clean", "tloss", 1),
                                  ("a0.7b0.7", "tloss", 1)]
    assert len(load_runs(out, FIELDS)) == 10 and "nnUNetv2_train failed" in capsys.readouterr().err
    assert out.with_suffix(".md").read_text().startswith("# Robustness study\n")
    stand_in.calls = []
    assert robustness.main(args) == 2 and "pass --resume" in capsys.readouterr().err
    assert robustness.main([*args, "--resume"]) == 1  # the failing run is retried (and fails again) ...
    assert stand_in.calls == [("clean", "dice", 1), ("a0.7b0.7", "dice", 1)]  # ... and nothing else
    assert "failed" in json.loads(out.read_text())


def test_cli_rejects_unknown_setting_and_loss(tmp_path, capsys):
    assert robustness.main(["--config", "smoke", "--settings", "a0.4", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown setting(s) ['a0.4']" in capsys.readouterr().err
    assert robustness.main(["--config", "smoke", "--losses", "focal", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown loss(s) ['focal']" in capsys.readouterr().err
    assert robustness.main(["--summarize", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------ summary from a hand-made JSON
def _run(setting, loss, seed, dice, pooled=None, nu=None):
    alpha, beta = parse_setting(setting)
    return {"setting": setting, "alpha": alpha, "beta": beta, "loss": loss, "seed": seed, "dice_mean": dice,
            "dice_pooled": dice if pooled is None else pooled, "nu_final": nu, "wall_s": 1.0,
            "machine": "test", "engine": commands.ENGINE, "config": "smoke"}


def test_markdown_table_and_paired_difference_from_hand_made_runs(tmp_path):
    runs = [_run("clean", "tloss", s, d, nu=2.0) for s, d in enumerate([0.90, 0.92, 0.94])]
    runs += [_run("clean", "dice_ce", s, d) for s, d in enumerate([0.91, 0.91, 0.91])]
    runs += [_run("a0.7b0.7", "tloss", 0, 0.85, nu=0.5), _run("a0.7b0.7", "dice_ce", 0, 0.80)]
    table = markdown_table(runs, "dice_mean").splitlines()
    half = 100 * 4.302652729911275 * 0.02 / math.sqrt(3)
    assert table[0] == "| setting | tloss | dice_ce |"
    assert table[2] == f"| clean | 92.0 [{92 - half:.1f}, {92 + half:.1f}] | 91.0 [91.0, 91.0] |"
    assert table[3] == "| a0.7b0.7 | 85.0 (n=1) | 80.0 (n=1) |"
    diff = tloss_vs_baseline(runs, "dice_pooled").splitlines()
    assert diff[3] == "| a0.7b0.7 | 5.0 (n=1) | 1 |"
    assert diff[2].startswith("| clean | 1.0 [")

    path = tmp_path / "runs.json"
    store = ResultStore(path, FIELDS)
    for run in runs:
        store.add(run)
    assert load_runs(path, FIELDS) == runs
    md, png = robustness.summarize(path)
    text = md.read_text()
    assert "| a0.7b0.7 | 85.0 (n=1) | 80.0 (n=1) |" in text
    assert "a0.3b0.5/tloss" in text.split("### Not run")[1]  # cells with no run are listed, not invented
    assert "| clean | 2 (2-2) | not traced |" in text  # final nu summary
    assert "trainers of schedule 'tiny'" in text  # the configuration sentence
    assert png.stat().st_size > 1000
    rendered = render_markdown(runs, "T", "c", {}, lambda engine, config: "")
    assert rendered.count("## engine `nnunet-commands`, config `smoke`") == 1
