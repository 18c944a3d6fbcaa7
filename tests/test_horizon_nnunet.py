"""The long-horizon check inside nnU-Net (``benchmarks/horizon_nnunet.py``): its plan, its split, the split the
stock-command engine installs, and the report made from records (the runs themselves take the stock commands
minutes each; the smoke configuration is run by hand, see the module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import horizon_nnunet, horizon_nnunet_report
from benchmarks.studykit import commands
from benchmarks.studykit.data import Family


def _record(dataset: str, setting: str, arm: str, final: float, best: float) -> dict:
    return {"engine": commands.ENGINE, "config": "horizon", "dataset": dataset, "setting": setting, "loss": arm,
            "seed": 0, "trainer": f"{arm}_study", "dice_pooled": final, "dice_mean": final - 0.01,
            "checkpoints": {"checkpoint_best.pth": {"dice_pooled": best, "dice_mean": best - 0.01}},
            "nnunet_log": {"mean_fg_dice": [0.2, 0.5, 0.6], "ema_fg_dice": [0.2, 0.23, 0.27]},
            "wall_s": 100.0, "model_reused": False}


def test_plan_runs_the_headline_setting_first_on_every_dataset():
    plan = horizon_nnunet.plan(["d1", "d2"])
    arms = ("dice_ce", "tloss", "tloss_freeze")
    assert plan[:6] == [(d, "a0.7b0.7", a, 0) for d in ("d1", "d2") for a in arms]
    assert {s for _, s, _, _ in plan[6:]} == {"clean"}
    assert horizon_nnunet.plan(["d1"], settings=["clean"], arms=["tloss"]) == [("d1", "clean", "tloss", 0)]


def test_noisy_validation_split_is_nnunets_fold_0_of_the_training_cases(tmp_path):
    cases = [f"ISIC_{i:07d}" for i in range(20)]
    (tmp_path / "splits_final.json").write_text(json.dumps([{"train": cases, "val": ["ISIC_0000099"]}]))
    (split,) = horizon_nnunet.noisy_validation_split(tmp_path)
    assert len(split["train"]) == 16 and len(split["val"]) == 4
    assert sorted(split["train"] + split["val"]) == cases  # the converter's validation case stays out


def _engine(tmp_path: Path, dataset_dir: Path) -> commands.CommandEngine:
    family = Family(raw=tmp_path / "raw", datasets={"clean": (910, dataset_dir)})
    return commands.CommandEngine(family, horizon_nnunet.CONFIGS["smoke"], tmp_path / "work",
                                  splits=lambda folder: [{"train": ["a"], "val": ["b"]}])


def _install(engine: commands.CommandEngine, dataset_dir: Path, preprocessed: Path, monkeypatch) -> Path:
    monkeypatch.setattr(commands.pipeline, "plan_and_preprocess", lambda *a, **k: None)
    engine.ensure_preprocessed(910, dataset_dir, {"nnUNet_preprocessed": str(preprocessed)})
    return preprocessed / dataset_dir.name / "splits_final.json"


def test_engine_replaces_the_split_nnunets_planner_copied_and_refuses_a_foreign_one(tmp_path, monkeypatch):
    dataset_dir = tmp_path / "raw" / "Dataset910_X"
    dataset_dir.mkdir(parents=True)
    converter = [{"train": ["a", "b"], "val": ["c"]}]
    (dataset_dir / "splits_final.json").write_text(json.dumps(converter))
    preprocessed = tmp_path / "pre"
    (preprocessed / dataset_dir.name).mkdir(parents=True)
    installed = preprocessed / dataset_dir.name / "splits_final.json"
    installed.write_text(json.dumps(converter))  # what nnUNetv2_plan_and_preprocess copies from the raw folder
    engine = _engine(tmp_path, dataset_dir)
    _install(engine, dataset_dir, preprocessed, monkeypatch)
    assert json.loads(installed.read_text()) == [{"train": ["a"], "val": ["b"]}]
    _install(engine, dataset_dir, preprocessed, monkeypatch)  # ours again: kept
    installed.write_text(json.dumps([{"train": ["b"], "val": ["a"]}]))
    with pytest.raises(RuntimeError, match="another split"):
        _install(engine, dataset_dir, preprocessed, monkeypatch)


def test_report_pairs_arms_by_dataset_and_names_missing_runs(tmp_path):
    runs = [_record("d1", "a0.7b0.7", "dice_ce", 0.70, 0.74), _record("d1", "a0.7b0.7", "tloss", 0.76, 0.77),
            _record("d2", "a0.7b0.7", "dice_ce", 0.60, 0.66), _record("d2", "a0.7b0.7", "tloss", 0.68, 0.68)]
    expected = [*[(r["dataset"], r["setting"], r["loss"], 0) for r in runs], ("d1", "clean", "tloss", 0)]
    out = tmp_path / "horizon_nnunet.json"
    (tmp_path / "horizon.json").write_text(json.dumps({"runs": [
        {"dataset": d, "setting": "a0.7b0.7", "arm": a, "final": {"test_dice_pooled": v}}
        for d, a, v in (("d1", "dice_ce", 0.7), ("d1", "tloss", 0.8), ("d2", "dice_ce", 0.6), ("d2", "tloss", 0.7))]}))
    paths = horizon_nnunet_report.write_summary(runs, out, horizon_nnunet.CONFIGS["horizon"], expected)
    assert [p.name for p in paths] == ["horizon_nnunet.json", "horizon_nnunet.md", "horizon_nnunet.png"]
    entries = json.loads(out.read_text())["runs"]
    assert {e["arm"] for e in entries} == {"dice_ce", "dice_ce_best", "tloss", "tloss_best"}
    best = next(e for e in entries if e["arm"] == "tloss_best" and e["dataset"] == "d2")
    assert best["final"] == {"checkpoint": "checkpoint_best.pth", "test_dice_pooled": 0.68, "test_dice_mean": 0.67}
    text = out.with_suffix(".md").read_text()
    tloss_row = next(line for line in text.splitlines() if line.startswith("| tloss |"))
    # tloss - dice_ce per dataset: +6 and +8 points -> mean 7.0; in-process: +10 on both datasets
    assert "| 2 |" in tloss_row and "7.0 [" in tloss_row and tloss_row.rstrip(" |").endswith("10.0 [10.0, 10.0]")
    assert "missing: clean tloss d1" in text


def _with_ema(record: dict, ema: list[float]) -> dict:
    return {**record, "nnunet_log": {"mean_fg_dice": ema, "ema_fg_dice": ema}}


def test_addendum_1_2_rule_reads_nnunets_moving_average_and_waits_for_every_planned_run(tmp_path):
    # tloss: last 0.60, max 0.70; tloss_freeze: last 0.65, max 0.68 -> tloss_best (0.70) wins: not confirmed
    runs = [_with_ema(_record(d, s, "tloss", 0.7, 0.7), [0.5, 0.7, 0.6]) for d in ("d1", "d2") for s in ("n", "c")]
    runs += [_with_ema(_record(d, s, "tloss_freeze", 0.72, 0.7), [0.5, 0.68, 0.65])
             for d in ("d1", "d2") for s in ("n", "c")]
    expected = [(d, s, a, 0) for d in ("d1", "d2") for s in ("n", "c") for a in ("tloss", "tloss_freeze")]
    result = horizon_nnunet_report.decision(runs, expected)
    assert result["validation_dice"] == pytest.approx({"tloss": 0.6, "tloss_best": 0.7, "tloss_freeze": 0.65,
                                                       "tloss_freeze_best": 0.68})
    assert (result["pick"], result["confirmed"]) == ("tloss_best", False)
    runs[-1] = _with_ema(runs[-1], [0.5, 0.95, 0.9])  # one run lifts the freeze's best rule above the default's
    assert horizon_nnunet_report.decision(runs, expected)["confirmed"] is True
    assert horizon_nnunet_report.decision(runs[:-1], expected)["pick"] is None  # a planned run is missing
    out = tmp_path / "horizon_nnunet.json"
    horizon_nnunet_report.write_summary(runs, out, horizon_nnunet.CONFIGS["horizon"], expected)
    text = out.with_suffix(".md").read_text()
    assert "The rule picks **tloss_freeze_best**, which confirms version 2's pick" in text
    addendum = text[text.index("## Addendum 1.2"):].splitlines()
    row = next(line for line in addendum if line.startswith("| tloss_freeze |"))
    assert row.startswith("| tloss_freeze | 4 | ")
    assert row.endswith(" | 2.0 [2.0, 2.0] | 2.0 [2.0, 2.0] |")  # clean test: 0.72 - 0.70 on both datasets
