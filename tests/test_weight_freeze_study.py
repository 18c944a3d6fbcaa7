"""The tloss_freeze arm in the long-horizon study: a group only run with --variants, version 1's plan unchanged,
the arm registry, and the report's tables and decision listing the arm and its checkpoint_best rule."""

from __future__ import annotations

import pytest
from test_horizon import _record

from benchmarks import horizon, horizon_report
from benchmarks.studykit.arms import trainer_class
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_freeze


def test_the_variant_group_follows_version_1s_plan_only_when_asked():
    version_1 = horizon.plan(list(horizon.DATASETS))
    assert len(version_1) == 60 and not [r for r in version_1 if r[2] in horizon.VARIANT_ARMS]
    with_variants = horizon.plan(list(horizon.DATASETS), variants=True)
    assert with_variants[:60] == version_1
    assert with_variants[60:] == [(d, s, "tloss_freeze", 0) for s in ("a0.7b0.7", "a0.5b0.7", "clean")
                                  for d in horizon.DATASETS]
    assert horizon.plan(["101-201"], arms=["tloss_freeze"], variants=True) == [
        ("101-201", s, "tloss_freeze", 0) for s in ("a0.7b0.7", "a0.5b0.7", "clean")]


def test_the_arm_needs_variants_and_trains_the_freeze_trainer(tmp_path):
    with pytest.raises(InputError, match="need --variants"):
        horizon.run(horizon.parse_args(["--arms", "tloss_freeze", "--out", str(tmp_path / "r.json")]))
    assert horizon.parse_args(["--variants", "--arms", "tloss_freeze"]).variants
    assert trainer_class("tloss_freeze") is nnUNetTrainerTLoss_freeze


def test_the_report_lists_the_arm_and_lets_it_win_the_decision(tmp_path):
    runs = [_record(d, s, arm, level, val) for d in ("101-201", "102-202") for s in horizon.HEADLINE
            for arm, level, val in (("dice_ce", 0.6, 0.5), ("tloss", 0.7, 0.55), ("tloss_freeze", 0.72, 0.6))]
    out = tmp_path / "horizon.json"
    horizon_report.write_summary(runs, out, horizon.CONFIGS["horizon"], horizon.plan(["101-201", "102-202"]))
    md = out.with_suffix(".md").read_text()
    for arm in ("tloss_freeze", "tloss_freeze_best", "tloss_freeze_elr"):
        assert f"| {arm} | 2 |" in md  # in each setting's table
    decision = md.split("## Decision")[1]
    assert "| tloss_freeze | " in decision and "| tloss_freeze_best | " in decision
    assert "Winner by the protocol's rule: **tloss_freeze**" in decision
