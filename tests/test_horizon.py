"""The long-horizon study: checkpoint rules on hand-made curves, the run plan, keys by dataset, the validation
split, the report from hand-made records (partial results, derived arms, horizon.json), and one smoke run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import horizon, horizon_report
from benchmarks.studykit import selection
from benchmarks.studykit.store import KEY_FIELDS, ResultStore, load_runs


def _log(agreement=None, val=None, n=60, per_epoch=50):
    agreement = agreement if agreement is not None else [0.5] * n
    val = val if val is not None else [0.5] * n
    return [{"iteration": per_epoch * (i + 1), "train_agreement": a, "val_dice_noisy": v}
            for i, (a, v) in enumerate(zip(agreement, val))]


def test_ema_is_nnunets_logger_ema(tmp_path):
    from nnunetv2.training.logging.nnunet_logger import MetaLogger

    values = [0.1, 0.5, 0.3, 0.9, 0.2]
    logger = MetaLogger(str(tmp_path), resume=False)
    for epoch, value in enumerate(values):
        logger.log("mean_fg_dice", value, epoch)
    assert selection.ema(values) == pytest.approx(logger.get_value("ema_fg_dice", step=None))


def test_best_keeps_the_earliest_highest_ema():
    assert selection.best(_log(val=[0.1, 0.9, 0.9, 0.1], n=4)) == 2  # e: .1, .18, .252, .2368
    assert selection.best(_log(val=[0.5] * 6, n=6)) == 0  # constant: never a strict improvement
    tie = _log(val=[0.0, 1.0, 0.0, 0.0], n=4)  # e: 0, .1, .09, .081 -> index 1
    assert selection.best(tie) == 1
    with pytest.raises(ValueError, match="val_dice_noisy"):
        selection.best([{"iteration": 1, "val_dice_noisy": None}])


def test_elr_fires_where_the_fitted_slope_has_dropped_by_90_percent():
    s = np.arange(1, 61)
    # f = 0.9 (1 - exp(-0.3 s)): f'(t) / f'(1) = exp(-0.3 (t - 1)) < 0.1 first at t = 9 (index 8)
    assert selection.elr(_log(agreement=list(0.9 * (1 - np.exp(-0.3 * s)))), 50) == 8
    assert selection.elr(_log(agreement=list(0.01 * s)), 50) == 59  # linear: never fires -> last
    assert selection.elr(_log(agreement=[0.4] * 60), 50) == 59  # constant: the fit is degenerate, never fires
    step = [0.0] * 5 + [0.8] * 55  # a jump at epoch 6: fires as soon as the flat plateau after it is fitted
    assert 5 <= selection.elr(_log(agreement=step), 50) <= 10
    assert selection.elr(_log(agreement=list(0.9 * (1 - np.exp(-0.3 * s)))), 50, fit=lambda *_: None) == 59
    nan_curve = [0.1, 0.2] + [math.nan] * 58  # curve_fit raises on NaN: handled as a failed fit
    assert selection.elr(_log(agreement=nan_curve), 50) == 59
    # causal: the decision at epoch t does not change when later epochs are appended
    fast = list(0.9 * (1 - np.exp(-0.3 * s)))
    assert selection.elr(_log(agreement=fast[:9], n=9), 50) == 8
    assert selection.select("last", _log(), 50) == 59
    with pytest.raises(ValueError, match="unknown rule"):
        selection.select("median", _log(), 50)


def test_plan_follows_the_protocols_order():
    runs = horizon.plan(list(horizon.DATASETS))
    assert len(runs) == 60
    assert runs[:10] == [(d, "a0.7b0.7", a, 0) for d in horizon.DATASETS for a in ("dice_ce", "tloss")]
    assert [r[1] for r in runs[10:30:10]] == ["a0.5b0.7", "clean"]
    assert {r[2] for r in runs[30:50]} == {"gce", "gce_q04"} and {r[1] for r in runs[30:50]} == set(horizon.HEADLINE)
    assert {r[1] for r in runs[50:]} == {"a0.3b0.7"}
    assert not [r for r in runs if r[2].startswith("gce") and r[1] not in horizon.HEADLINE]
    assert horizon.DATASETS["101-201"] == (101, 201, 910) and horizon.DATASETS["105-205"] == (105, 205, 950)
    assert horizon.summary_path(horizon.DEFAULT_OUT).name == "horizon.json"


def test_store_keys_by_the_declared_fields_and_old_files_still_load(tmp_path):
    base = {"engine": "e", "config": "c", "setting": "clean", "loss": "tloss", "seed": 0}
    store = ResultStore(tmp_path / "h.json", (), key_fields=horizon.KEY_FIELDS)
    store.add({**base, "dataset": "101-201"})
    store.add({**base, "dataset": "102-202"})
    assert len(ResultStore.open(store.path, (), True, key_fields=horizon.KEY_FIELDS).done()) == 2
    with pytest.raises(ValueError, match="dataset"):
        store.add(dict(base))
    old = ResultStore(tmp_path / "old.json", ())
    old.add(dict(base))
    assert ResultStore.open(old.path, (), True).done() == {tuple(base[k] for k in KEY_FIELDS)}
    assert load_runs(old.path) == [base]


def test_validation_split_is_nnunets_fold_0():
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    from benchmarks.studykit.data import validation_split

    ids = [f"ISIC_{i:07d}" for i in range(20)]
    train, val = validation_split(ids[::-1])
    assert len(train) == 16 and len(val) == 4 and not set(train) & set(val)
    assert set(val) == set(generate_crossval_split(ids, seed=12345, n_splits=5)[0]["val"])


def test_evaluate_adds_validation_and_agreement_only_when_asked():
    import torch

    from benchmarks.studykit.inprocess import SettingData, evaluate
    from benchmarks.studykit.metrics import dice_pooled

    class Trainer:  # what evaluate uses of an nnU-Net trainer
        network = torch.nn.Conv2d(3, 2, 1)

        def set_deep_supervision_enabled(self, enabled):
            pass

    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 3, 8, 8)).astype(np.float32)
    labels = (rng.random((5, 1, 8, 8)) < 0.5).astype(np.int16)
    corrupted = np.array([True, False, False, True, False])
    plain = SettingData(images, labels, labels, corrupted, images[:2], labels[:2])
    record = evaluate(Trainer(), plain, None)
    assert "val_dice_noisy" not in record
    with torch.no_grad():
        pred = (torch.softmax(Trainer.network(torch.from_numpy(images)), 1)[:, 1:] > 0.5).numpy().astype(np.int16)
    assert record["train_agreement"] == pytest.approx(dice_pooled(pred, labels))
    with_val = SettingData(images, labels, labels, corrupted, images[:2], labels[:2], images[2:], labels[2:])
    record = evaluate(Trainer(), with_val, None)
    assert record["val_dice_noisy"] == pytest.approx(dice_pooled(pred[2:], labels[2:]))
    assert set(record) >= {"val_dice_noisy_mean", "test_dice", "memorisation"}


def _record(dataset, setting, arm, level, val_level, iterations=3000, per_epoch=50):
    """A run whose test Dice rises to ``level`` and validation Dice to ``val_level``, M rising to the end."""
    log = []
    for i in range(iterations // per_epoch):
        t = (i + 1) / (iterations // per_epoch)
        log.append({"iteration": per_epoch * (i + 1), "test_dice": level * t, "test_dice_mean": level * t - 0.01,
                    "val_dice_noisy": val_level * t, "train_agreement": 0.9 * (1 - math.exp(-0.3 * (i + 1))),
                    "memorisation": None if setting == "clean" else 0.1 * t})
    return {"engine": "nnunet-inprocess", "config": "horizon", "dataset": dataset, "setting": setting, "loss": arm,
            "seed": 0, "log": log}


def test_report_from_partial_hand_made_records(tmp_path):
    runs = [_record(d, "a0.7b0.7", arm, level + shift, val + shift)
            for d, shift in (("101-201", 0.0), ("102-202", 0.02))
            for arm, level, val in (("dice_ce", 0.6, 0.5), ("tloss", 0.7, 0.55), ("gce", 0.5, 0.45),
                                    ("gce_q04", 0.55, 0.5))]
    runs.append(_record("101-201", "clean", "dice_ce", 0.8, 0.8))
    expected = horizon.plan(["101-201", "102-202"])
    out = tmp_path / "horizon.json"
    written = horizon_report.write_summary(runs, out, horizon.CONFIGS["horizon"], expected)
    assert {p.name for p in written} == {"horizon.json", "horizon.md", "horizon_a0.7b0.7.png", "horizon_clean.png"}
    entries = json.loads(out.read_text())["runs"]
    arms = {e["arm"] for e in entries if e["setting"] == "a0.7b0.7"}
    assert arms == {"dice_ce", "dice_ce_best", "dice_ce_elr", "tloss", "tloss_best", "tloss_elr", "gce",
                    "gce_q04", "gce_q07"}
    for entry in entries:
        assert set(entry) >= {"dataset", "setting", "arm", "seed", "curve", "final"}
        assert set(entry["final"]) == {"iteration", "test_dice_pooled", "test_dice_mean", "val_dice_noisy"}
        assert len(entry["curve"][0]) == 4
    gce = [e for e in entries if e["arm"] == "gce"]
    assert {e["q"] for e in gce} == {0.4} and len(gce) == 2  # q 0.4 has the higher validation Dice
    by = {(e["dataset"], e["arm"]): e for e in entries if e["setting"] == "a0.7b0.7"}
    assert by[("101-201", "tloss")]["final"]["iteration"] == 3000
    assert by[("101-201", "tloss_elr")]["final"]["iteration"] == 450  # the agreement curve's elr epoch 9
    assert by[("101-201", "tloss_best")]["final"]["iteration"] == 3000  # validation Dice rises to the end
    md = out.with_suffix(".md").read_text()
    assert "version 1" in md and "Partial results" in md and "a0.5b0.7 dice_ce: 101-201/0, 102-202/0" in md
    assert "| tloss | 2 | 71.0 [" in md  # mean of 70 and 72 over two datasets, with an interval
    assert "still memorising" in md and "Winner by the protocol's rule: **tloss**" in md
    assert "q = 0.4" in md


def test_report_with_only_one_run_does_not_crash(tmp_path):
    runs = [_record("101-201", "a0.5b0.7", "dice_ce", 0.6, 0.5)]
    written = horizon_report.write_summary(runs, tmp_path / "h.json", horizon.CONFIGS["horizon"],
                                           horizon.plan(list(horizon.DATASETS)))
    md = written[1].read_text()
    assert "| dice_ce | 1 | 60.0 (n=1)" in md and "no decision" in md


def test_summarize_cites_version_2_and_lists_its_missing_runs_once_a_variant_has_run(tmp_path):
    def stored(run: dict) -> dict:  # the fields a record of the study has beyond what the report reads
        final = run["log"][-1]["test_dice"]
        return {"alpha": 0.7, "beta": 0.7, "trainer": run["loss"], "test_dice_final": final, "dice_pooled": final,
                "dice_mean": final, "memorisation_final": 0.1, "curve": [], "iterations": 3000, "wall_s": 1.0,
                "machine": "test", "release_seed": 101, "noise_seed": 201, **run}

    out = tmp_path / "runs.json"
    store = ResultStore.open(out, horizon.FIELDS, resume=False, key_fields=horizon.KEY_FIELDS)
    store.add(stored(_record("101-201", "a0.7b0.7", "tloss", 0.7, 0.55)))
    horizon.summarize(out, "horizon")
    md = horizon.summary_path(out).with_suffix(".md").read_text()
    assert "version 1 (frozen" in md and "version 2" not in md and "tloss_freeze" not in md
    store.add(stored(_record("101-201", "a0.7b0.7", "tloss_freeze", 0.72, 0.56)))
    horizon.summarize(out, "horizon")
    md = horizon.summary_path(out).with_suffix(".md").read_text()
    assert "version 1 and version 2" in md and "a0.5b0.7 tloss_freeze: 101-201/0" in md
    # tloss_freeze has a0.7b0.7 only, tloss too: same datasets, a decision; then a0.5b0.7 for tloss alone
    assert "Winner by the protocol's rule: **tloss_freeze" in md
    store.add(stored(_record("101-201", "a0.5b0.7", "tloss", 0.7, 0.55)))
    horizon.summarize(out, "horizon")
    md = horizon.summary_path(out).with_suffix(".md").read_text()
    assert "No decision yet" in md and "(fewer: tloss_freeze, tloss_freeze_best)" in md and "Winner" not in md


@pytest.mark.slow
def test_smoke_study_end_to_end_resume_and_summarize(tmp_path, capsys):
    out = tmp_path / "h_runs.json"
    common = ["--config", "smoke", "--out", str(out), "--work-dir", str(tmp_path / "work")]
    assert horizon.main([*common, "--workers", "1"]) == 0
    records = json.loads(out.read_text())["runs"]
    assert len(records) == len(horizon.plan(list(horizon.CONFIG_DATASETS["smoke"])))
    assert {r["dataset"] for r in records} == {"101-201"}
    assert all("val_dice_noisy" in e and "train_agreement" in e for r in records for e in r["log"])
    capsys.readouterr()
    assert horizon.main([*common, "--workers", "1", "--resume"]) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["runs"]) == len(records)
    assert horizon.main(["--config", "smoke", "--out", str(out), "--summarize"]) == 0
    summary = json.loads((tmp_path / "h.json").read_text())["runs"]
    assert {e["arm"] for e in summary} >= {"dice_ce", "dice_ce_best", "dice_ce_elr", "tloss_elr", "gce"}
    assert "All 12 planned runs are in." in (tmp_path / "h.md").read_text()


def test_gce_q04_arm_trains_gce_with_q_04_and_nnunet_can_find_it():
    from benchmarks.studykit.arms import trainer_class
    from tloss_nnunet.repro.ext_trainer import tloss_nnunet_repro_trainers as shim
    from tloss_nnunet.repro.study_trainers import nnUNetTrainerGCELoss

    cls = trainer_class("gce_q04")
    assert issubclass(cls, nnUNetTrainerGCELoss) and cls.gce_q == 0.4 and trainer_class("gce").gce_q == 0.7
    assert cls.__name__ in shim.__all__ and getattr(shim, cls.__name__) is cls
    trainer = object.__new__(cls)  # what _build_loss reads, without plans
    trainer.label_manager = type("Labels", (), {"has_regions": False, "ignore_label": None})()
    trainer.enable_deep_supervision = False
    assert trainer._build_loss().q == 0.4
