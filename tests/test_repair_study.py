"""The label-repair study: repaired labels and the rule choice on hand-made arrays and records, the give-back
share and its near-zero rule, cleanlab's scores beside ours, the report from hand-made records, and one smoke
study (sharing the horizon smoke study's data and runs) with the ignore label reaching nnU-Net's loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import repair, repair_audit_report, repair_report
from benchmarks.repair_audit import cleanlab_scores, data_digest
from benchmarks.repair_retrain import IGNORE_VALUE, KEY_FIELDS, chosen_rule, ranking, repair_labels
from benchmarks.studykit.store import ResultStore


def _probabilities(foreground: np.ndarray) -> np.ndarray:
    return np.stack([1 - foreground, foreground], axis=1)


def test_repair_labels_per_mode_on_hand_made_cases():
    labels = np.zeros((3, 1, 2, 2), dtype=np.int16)
    labels[0, 0, 0, 0] = 1  # case a: one foreground pixel the model confidently calls background
    fg = np.zeros((3, 2, 2))
    fg[0, 0, 1] = 0.95  # ... and one confident foreground pixel the label lacks
    fg[0, 1, 0] = 0.6  # not confident: kept by ignore, taken by replace
    probs = _probabilities(fg)
    ids, ranked = ["a", "b", "c"], ["a", "c", "b"]
    out, keep, changed = repair_labels(labels, probs, ids, ranked, "ignore", 0.25)  # ceil(0.75) = 1 case
    assert keep == [0, 1, 2] and changed == {"a": 2}
    assert out[0, 0].tolist() == [[IGNORE_VALUE, IGNORE_VALUE], [0, 0]] and (out[1:] == 0).all()
    out, keep, changed = repair_labels(labels, probs, ids, ranked, "replace", 0.25)
    assert out[0, 0].tolist() == [[0, 1], [1, 0]] and changed == {"a": 3}
    out, keep, changed = repair_labels(labels, probs, ids, ranked, "drop", 0.5)  # 2 cases: a and c
    assert keep == [1] and changed == {"a": 4, "c": 4}
    assert (labels[0, 0, 0, 0], labels[0, 0, 0, 1]) == (1, 0)  # the given labels are not touched


def test_ranking_is_most_suspect_first_by_softmin_stable_on_ties_and_reads_older_records():
    audit = {"cases": [{"case": "c", "one_minus_softmin": 0.2}, {"case": "a", "one_minus_softmin": 0.5},
                       {"case": "b", "one_minus_softmin": 0.2}]}
    assert ranking(audit) == ["a", "b", "c"]
    # a record made before one_minus_softmin existed: 1 - cleanlab's softmin of the same probabilities
    older = {"cases": [{"case": "a", "cleanlab_softmin": 0.9, "one_minus_dice": 0.9},
                       {"case": "b", "cleanlab_softmin": 0.4, "one_minus_dice": 0.1}]}
    assert ranking(older) == ["b", "a"] and ranking(older, "one_minus_dice") == ["a", "b"]


def _repair_record(dataset, setting, arm, val, test=0.8, config="horizon", **extra):
    mode, rule, loss = arm.split("_", 2)
    return {"engine": repair.ENGINE, "config": config, "dataset": dataset, "setting": setting, "arm": arm,
            "seed": 0, "stage": "repair", "mode": mode, "rule": rule, "trained_loss": loss, "val_dice_noisy": val,
            "dice_pooled": test, "dice_mean": test - 0.01, "log": [{"val_dice_noisy": val}], "repaired_cases": ["x"],
            "repaired_corrupted": 1, "iterations": 3000, "data_digest": "0", "wall_s": 10.0, "machine": "m", **extra}


def test_chosen_rule_needs_every_headline_cell_and_takes_the_higher_validation_dice(tmp_path):
    out = tmp_path / "r.json"
    store = ResultStore.open(out, repair.FIELDS, resume=False, key_fields=KEY_FIELDS)
    cells = [("d1", "a0.7b0.7"), ("d1", "a0.5b0.7")]
    store.add(_repair_record("d1", "a0.7b0.7", "ignore_f0.25_tloss", 0.70))
    store.add(_repair_record("d1", "a0.7b0.7", "ignore_f0.5_tloss", 0.80))
    store.add(_repair_record("d1", "a0.5b0.7", "ignore_f0.25_tloss", 0.80))
    with pytest.raises(ValueError, match="ignore_f0.5_tloss has not run"):
        chosen_rule(out, "ignore", "tloss", "horizon", cells)
    store.add(_repair_record("d1", "a0.5b0.7", "ignore_f0.5_tloss", 0.70))
    assert chosen_rule(out, "ignore", "tloss", "horizon", cells) == "f0.25"  # a tie: the smaller fraction
    with pytest.raises(ValueError, match="no headline setting"):
        chosen_rule(out, "ignore", "tloss", "horizon", [])


def test_share_given_back_leaves_out_a_near_zero_gap():
    values, left_out = repair_report.shares({"d1": 0.8, "d2": 0.9, "d3": 0.7}, {"d1": 0.6, "d2": 0.895, "d3": 0.6},
                                           {"d1": 0.9, "d2": 0.9, "d3": 0.7})
    assert values == pytest.approx([2 / 3, 1.0]) and left_out == 1


def test_cleanlab_scores_and_ours_orient_alike_on_the_same_probabilities():
    rng = np.random.default_rng(0)
    truth = np.zeros((6, 16, 16), dtype=np.int64)
    truth[:, 4:12, 4:12] = 1
    fg = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0.01, 0.99)
    given = truth.copy()
    given[:2, 4:12, 4:12] = 0  # two labels lost their object
    theirs = cleanlab_scores(given, _probabilities(fg))
    cases = [{"case": str(i), "one_minus_dice": float(i < 2), "corrupted": i < 2, "kind": "erode" if i < 2 else "clean",
              **{k: float(v[i]) for k, v in theirs.items()}} for i in range(6)]
    metrics = repair_audit_report.record_metrics({"cases": cases, "n_corrupted": 2})
    for score in ("one_minus_dice", "cleanlab_softmin", "cleanlab_num_pixel_issues"):
        assert metrics[score]["auroc"] == 1.0 and metrics[score]["ap"] == 1.0, score
    assert data_digest(given) != data_digest(truth) and data_digest(truth) == data_digest(truth.copy())


def _shared(dataset, setting, loss, test):
    return {"dataset": dataset, "setting": setting, "loss": loss, "seed": 0, "config": "horizon",
            "dice_pooled": test, "dice_mean": test, "log": [{"val_dice_noisy": 0.5}], "wall_s": 100.0}


def test_report_from_hand_made_records_gives_the_issue_format_and_the_share(tmp_path):
    runs, shared = [], []
    for d, noisy, clean in (("d1", 0.6, 0.9), ("d2", 0.7, 0.9)):
        for loss in ("dice_ce", "tloss"):
            shared += [_shared(d, "a0.7b0.7", loss, noisy), _shared(d, "clean", loss, clean)]
            for rule, val in (("f0.25", 0.5), ("f0.5", 0.6)):
                test = noisy + 0.1 * (rule == "f0.5")
                runs.append(_repair_record(d, "a0.7b0.7", f"drop_{rule}_{loss}", val, test=test))
    cases = [{"case": str(i), "one_minus_dice": i / 4, "mse": i / 4, "tloss_nll": None, "tloss_weight": None,
              "cleanlab_softmin": 1 - i / 8, "cleanlab_num_pixel_issues": 1 - i / 8, "corrupted": i > 1,
              "one_minus_softmin": i / 8 + 2e-3, "kind": "affine" if i > 1 else "clean"} for i in range(4)]
    runs += [{"stage": "audit", "config": "horizon", "dataset": d, "setting": "a0.7b0.7", "arm": "audit_tloss",
              "seed": 0, "cases": cases, "n_corrupted": 2, "n_train": 4, "iterations": 800, "wall_s": 50.0,
              "folds": [{"kept_iteration": 400}]} for d in ("d1", "d2")]
    paths = repair_report.write_summary(runs, shared, tmp_path / "repair.json")
    summary = json.loads(paths[0].read_text())
    assert summary["choices"] == {"drop_dice_ce": "f0.5", "drop_tloss": "f0.5"}
    arms = {(e["dataset"], e["arm"], e.get("loss")) for e in summary["runs"]}
    assert {("d1", "noisy_tloss", None), ("d1", "clean_oracle", "tloss"), ("d2", "repaired_drop_tloss", None),
            ("d1", "candidate_drop_f0.25_dice_ce", None)} <= arms
    assert all({"dataset", "setting", "arm", "seed", "test_dice_pooled", "test_dice_mean"} <= set(e)
               for e in summary["runs"])
    md = paths[1].read_text()
    # shares 0.1 / 0.3 and 0.1 / 0.2: mean 41.7 %
    assert "| repaired_drop_tloss | f0.5 | 2 |" in md and "42 % [" in md and "Winner" in md
    audit_md = paths[2].read_text()
    assert "| a0.7b0.7 | one_minus_dice | 2 | 2.0 / 4 | 1.00" in audit_md
    assert "| a0.7b0.7 | 2 | 0.00" in audit_md  # paired AUROC difference: both rank perfectly
    assert "on the 8 audited cases whose records hold both" in audit_md and "difference 2.0e-03." in audit_md
    # the plan has 2 datasets x 2 headline settings per candidate: only drop has run, and on one setting
    md = repair_report.write_summary(runs, shared, tmp_path / "repair.json", planned_datasets=2)[1].read_text()
    assert "No winner yet: 12 of 12 candidates have fewer than the 4 headline runs" in md
    assert "leading so far: drop, f0.5" in md and "Winner by" not in md


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The horizon smoke study's runs of one dataset (a0.7b0.7 and clean), then the repair smoke study on the
    same work folder (the same prepared data)."""
    from benchmarks import horizon

    root = tmp_path_factory.mktemp("repair_smoke")
    work, h_out, r_out = root / "work", root / "h_runs.json", root / "repair_runs.json"
    assert horizon.main(["--config", "smoke", "--datasets", "101-201", "--settings", "a0.7b0.7", "clean",
                         "--arms", "dice_ce", "tloss", "--out", str(h_out), "--work-dir", str(work)]) == 0
    common = ["--config", "smoke", "--datasets", "101-201", "--settings", "a0.7b0.7", "clean", "--out", str(r_out),
              "--horizon-runs", str(h_out), "--work-dir", str(work)]
    code = repair.main(common)
    return {"code": code, "common": common, "out": r_out, "work": work, "root": root}


@pytest.mark.slow
def test_smoke_study_end_to_end_resume_and_summarize(smoke, capsys):
    assert smoke["code"] == 0
    records = json.loads(smoke["out"].read_text())["runs"]
    assert len(records) == len(repair.plan(["101-201"], ["a0.7b0.7", "clean"])) == 2 + 12 + 6
    audit = next(r for r in records if r["arm"] == "audit_tloss" and r["setting"] == "a0.7b0.7")
    assert sorted(c["fold"] for c in audit["cases"]) == sorted(list(range(4)) * 2)  # each case held out once
    assert all({"one_minus_dice", "tloss_nll", "cleanlab_softmin", "cleanlab_num_pixel_issues"} <= set(c)
               for c in audit["cases"])
    assert (smoke["work"] / "repair_audit" / "101-201_a0.7b0.7.npz").is_file()
    ignore = [r for r in records if r.get("mode") == "ignore"]
    assert ignore and all(sum(r["changed_pixels"].values()) > 0 for r in ignore)  # ignore pixels were trained on
    assert {r["rule"] for r in records if r["arm"].endswith(("_chosen_tloss", "_chosen_dice_ce"))} <= {"f0.25", "f0.5"}
    capsys.readouterr()
    assert repair.main([*smoke["common"], "--resume"]) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert repair.main(["--config", "smoke", "--out", str(smoke["out"]), "--horizon-runs",
                        str(smoke["root"] / "h_runs.json"), "--summarize"]) == 0
    summary = json.loads((smoke["root"] / "repair.json").read_text())
    arms = {e["arm"] for e in summary["runs"]}
    assert {"noisy_dice_ce", "noisy_tloss", "clean_oracle", "repaired_ignore_tloss"} <= arms
    assert "cleanlab_softmin" in (smoke["root"] / "repair_audit.md").read_text()


@pytest.mark.slow
def test_ignore_pixels_need_the_ignore_label_in_the_trainer(smoke):
    from dataclasses import replace

    from benchmarks.studykit.inprocess import SettingData, train

    clean = next((smoke["work"] / "nnUNet_raw").glob("Dataset*_clean"))
    data = SettingData.load(clean, clean, validation=True)
    labels = data.labels.copy()
    labels[:, :, :4, :4] = IGNORE_VALUE
    marked = replace(data, labels=labels)
    config = replace(repair.CONFIGS["smoke"], iterations=4)
    with pytest.raises(Exception):  # noqa: B017 - nnU-Net's CE fails on a class index it does not have
        train("dice_ce", 0, marked, config, clean.name)
    for arm in ("dice_ce", "tloss"):
        trainer = train(arm, 0, marked, config, clean.name, ignore_label=IGNORE_VALUE)
        assert trainer.label_manager.ignore_label == IGNORE_VALUE


@pytest.mark.slow
def test_gallery_of_the_smoke_audit_names_each_cases_truth(smoke, capsys):
    from PIL import Image

    from benchmarks import repair_gallery

    argv = ["--dataset", "101-201", "--setting", "a0.7b0.7", "--config", "smoke", "--results", str(smoke["out"]),
            "--work-dir", str(smoke["work"]), "--cases", "3"]
    assert repair_gallery.main(argv) == 0
    png = smoke["root"] / "repair_gallery_101-201_a0.7b0.7_ignore.png"
    assert f"wrote {png}" in capsys.readouterr().out
    with Image.open(png) as picture:
        assert picture.size == (5 * 240, 3 * 240)  # 5 panels x 3 cases, 3 inches at 80 dpi each
    assert repair_gallery.main([*argv[:-2], "--cases", "9"]) == 2
    assert "--cases must be in 1..8" in capsys.readouterr().err
    assert repair_gallery.main([*argv[:3], "a0.3b0.7", *argv[4:]]) == 2  # no audit of that setting
    assert "no audit of 101-201 a0.3b0.7" in capsys.readouterr().err


@pytest.mark.slow
def test_a_resumed_study_re_creates_a_lost_audit_file_from_its_record(smoke, tmp_path, capsys):
    """A study resumed on another machine lacks the work folder's audit files: the audit is re-run and must
    reproduce its record before the pending repair runs use it."""
    from benchmarks.repair_audit import audit_file

    payload = json.loads(smoke["out"].read_text())
    pending = next(r for r in payload["runs"] if r["arm"] == "replace_f0.25_tloss" and r["setting"] == "a0.7b0.7")
    payload["runs"].remove(pending)
    out = tmp_path / "repair_runs.json"
    out.write_text(json.dumps(payload))
    kept = audit_file(smoke["work"], "101-201", "a0.7b0.7")
    aside = tmp_path / "kept.npz"
    kept.rename(aside)
    common = [*smoke["common"][:smoke["common"].index("--out")], "--out", str(out),
              *smoke["common"][smoke["common"].index("--out") + 2:]]
    capsys.readouterr()
    assert repair.main([*common, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) to do" in printed and "re-created the audit file of 101-201 a0.7b0.7" in printed
    with np.load(kept) as again, np.load(aside) as before:
        assert np.allclose(again["probabilities"], before["probabilities"], atol=1e-5)
    redone = next(r for r in json.loads(out.read_text())["runs"] if r["arm"] == pending["arm"]
                  and r["setting"] == "a0.7b0.7")
    assert redone["repaired_cases"] == pending["repaired_cases"]


@pytest.mark.slow
def test_an_audit_that_does_not_reproduce_its_record_is_refused(smoke, tmp_path):
    from benchmarks.repair_audit import audit_file
    from benchmarks.repair_audit_rebuild import AuditMismatch, difference, rebuild_audit

    record = next(r for r in json.loads(smoke["out"].read_text())["runs"]
                  if r["arm"] == "audit_tloss" and r["setting"] == "clean")
    assert difference(record, record) == (0.0, [])
    tampered = json.loads(json.dumps(record))
    tampered["cases"][0]["tloss_nll"] *= 1.5
    tampered["folds"][1]["kept_iteration"] += 1
    clean = next((smoke["work"] / "nnUNet_raw").glob("Dataset*_clean"))
    config = repair.audit_config(repair.CONFIGS["smoke"])
    with pytest.raises(AuditMismatch, match=r"101-201 clean does not reproduce its record: largest relative score "
                                            r"difference 3\.3\de-01 .*fold 1 kept iteration"):
        rebuild_audit(tampered, str(clean), str(clean), config, str(tmp_path))
    assert not audit_file(tmp_path, "101-201", "clean").exists()
    line, rebuilt = rebuild_audit(record, str(clean), str(clean), config, str(tmp_path))
    assert line.startswith("re-created the audit file of 101-201 clean") and rebuilt is None


@pytest.mark.slow
def test_an_unreproducible_audit_no_repair_run_used_is_superseded_only_when_asked(smoke, tmp_path, capsys):
    """Another kind of CPU rounds differently: an unused audit may then be replaced by its re-run (old record set
    aside, nothing lost); a used one never."""
    from benchmarks.repair_audit import audit_file

    payload = json.loads(smoke["out"].read_text())
    payload["runs"] = [r for r in payload["runs"] if not (r["setting"] == "clean" and r["stage"] == "repair")]
    record = next(r for r in payload["runs"] if r["setting"] == "clean")
    honest = record["cases"][0]["tloss_nll"]
    record["cases"][0]["tloss_nll"] *= 1.5  # as if recorded on another CPU
    pending = next(r for r in payload["runs"] if r["arm"] == "drop_f0.5_tloss")  # a0.7b0.7: its audit is used
    payload["runs"].remove(pending)
    next(r for r in payload["runs"] if r["setting"] == "a0.7b0.7")["cases"][0]["mse"] *= 1.5
    out = tmp_path / "repair_runs.json"
    out.write_text(json.dumps(payload))
    for setting in ("clean", "a0.7b0.7"):
        audit_file(smoke["work"], "101-201", setting).rename(tmp_path / f"{setting}.npz")
    common = ["--config", "smoke", "--datasets", "101-201", "--out", str(out), "--horizon-runs",
              str(smoke["root"] / "h_runs.json"), "--work-dir", str(smoke["work"]), "--resume", "--settings"]
    capsys.readouterr()
    assert repair.main([*common, "a0.7b0.7", "--supersede-unreproducible-audits"]) == 2
    assert "101-201 a0.7b0.7 does not reproduce" in (err := capsys.readouterr().err)
    assert "repair runs have used it, so it cannot be replaced" in err and out.read_text() == json.dumps(payload)
    (tmp_path / "a0.7b0.7.npz").rename(audit_file(smoke["work"], "101-201", "a0.7b0.7"))
    common += ["a0.7b0.7"]  # a chosen rule is read from the headline setting's runs
    assert repair.main([*common, "clean"]) == 2
    assert "no repair run has used it yet: --supersede-unreproducible-audits" in capsys.readouterr().err
    assert not audit_file(smoke["work"], "101-201", "clean").exists()
    # as if a study had been killed after setting the old record aside but before replacing it
    repair.set_aside_path(out).write_text(json.dumps({"runs": [record]}))
    assert repair.main([*common, "clean", "--supersede-unreproducible-audits"]) == 0
    assert "the re-run audit becomes its record (the old one set aside)" in capsys.readouterr().out
    runs = json.loads(out.read_text())["runs"]
    new = next(r for r in runs if r["setting"] == "clean" and r["stage"] == "audit")
    assert new["cases"][0]["tloss_nll"] == pytest.approx(honest, rel=1e-6) and "supersedes" in new
    assert len([r for r in runs if r["setting"] == "clean"]) == 1 + 6  # the audit, then every clean repair run
    aside = json.loads(repair.set_aside_path(out).read_text())["runs"]
    assert aside == [record] and audit_file(smoke["work"], "101-201", "clean").is_file()
