"""The repair study's stock-command confirmation (``benchmarks/repair_nnunet.py``): what it confirms, its audit split,
the training subset it writes, and the report and verdict from hand-made records (a run takes the stock commands
minutes; the smoke configuration is run by hand, see the module)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks import repair, repair_nnunet, repair_nnunet_loop, repair_nnunet_report, repair_report
from benchmarks.repair_retrain import HEADLINE, KEY_FIELDS, RULES
from benchmarks.studykit.data import corrupted_cases
from benchmarks.studykit.store import ResultStore
from tloss_nnunet.audit.repair_rules import REPAIR_MODES
from tloss_nnunet.errors import InputError


def test_combination_is_parsed_strictly_and_each_repaired_dataset_gets_its_own_id():
    combination = repair_nnunet_loop.Combination.parse("replace:f0.5:dice_ce")
    assert (combination.mode, combination.rule, combination.loss) == ("replace", "f0.5", "dice_ce")
    assert combination.arm == "repaired_replace_dice_ce"
    for text in ("replace:f0.5", "mend:f0.5:tloss", "ignore:f0.3:tloss", "ignore:f0.25:gce"):
        with pytest.raises(InputError, match="MODE:RULE:LOSS"):
            repair_nnunet_loop.Combination.parse(text)
    offsets = {repair_nnunet_loop.Combination(m, r, "tloss").dataset_offset for m in REPAIR_MODES for r in RULES}
    assert len(offsets) == len(REPAIR_MODES) * len(RULES)
    assert repair_nnunet_loop.Combination("drop", "f0.5", "tloss").dataset_offset == \
        repair_nnunet_loop.Combination("drop", "f0.5", "dice_ce").dataset_offset  # one repaired dataset for both losses
    # the horizon family's noisy ids (910-959): every subset and repaired id distinct and one of nnU-Net's (<= 9999)
    noisy = range(910, 960)
    ids = [n + repair_nnunet_loop.SUBSET_OFFSET for n in noisy] + [n + o for n in noisy for o in offsets]
    assert len(set(ids)) == len(ids) and max(ids) <= 9999 and not set(ids) & set(noisy)


def _study_record(dataset: str, setting: str, mode: str, rule: str, loss: str, val: float) -> dict:
    return {"engine": repair.ENGINE, "config": "horizon", "dataset": dataset, "setting": setting,
            "arm": f"{mode}_{rule}_{loss}", "seed": 0, "stage": "repair", "mode": mode, "rule": rule,
            "trained_loss": loss, "val_dice_noisy": val}


def test_the_winner_is_read_only_from_a_complete_headline(tmp_path):
    out = tmp_path / "repair_runs.json"
    store = ResultStore.open(out, (), resume=False, key_fields=KEY_FIELDS)
    for dataset in ("d1", "d2"):
        for setting in HEADLINE:
            for mode in REPAIR_MODES:
                for rule in RULES:
                    for loss in repair_report.LOSSES:
                        best = (mode, rule, loss) == ("drop", "f0.5", "dice_ce")
                        store.add(_study_record(dataset, setting, mode, rule, loss, 0.8 if best else 0.7))
    assert repair_nnunet.study_winner(out, "horizon", 2) == repair_nnunet_loop.Combination("drop", "f0.5", "dice_ce")
    with pytest.raises(InputError, match="not complete .*without 6 runs.*pass --combination"):
        repair_nnunet.study_winner(out, "horizon", 3)  # a third dataset is planned and has not run
    for setting in HEADLINE:  # a third dataset for one rule only: the rules would compare different datasets
        store.add(_study_record("d3", setting, "drop", "f0.5", "dice_ce", 0.8))
    with pytest.raises(InputError, match="not complete .*e.g. ignore_f0.25_dice_ce"):
        repair_nnunet.study_winner(out, "horizon", 3)


def test_audits_only_refuses_a_combination_in_one_line(tmp_path, capsys):
    argv = ["--audits-only", "--combination", "ignore:f0.25:tloss", "--out", str(tmp_path / "r.json")]
    assert repair_nnunet.main(argv) == 2
    assert "--audits-only runs no combination" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_audit_split_is_nnunets_own_and_holds_out_every_case_once():
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    cases = [f"ISIC_{i:07d}" for i in range(16)]
    splits = repair_nnunet_loop.audit_splits(cases[::-1])
    assert len(splits) == 4
    assert sorted(c for s in splits for c in s["val"]) == cases
    for split in splits:
        assert sorted(split["train"] + split["val"]) == cases and len(split["val"]) == 4
    assert [set(s["val"]) for s in splits] == [set(s["val"]) for s in generate_crossval_split(cases, 12345, 4)]


def _raw_dataset(root, name: str, train: list[str], test: list[str]):
    folder = root / name
    for part in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / part).mkdir(parents=True)
    for case in train:
        (folder / "imagesTr" / f"{case}_0000.png").write_bytes(case.encode())
        (folder / "labelsTr" / f"{case}.png").write_bytes(b"label " + case.encode())
    for case in test:
        (folder / "imagesTs" / f"{case}_0000.png").write_bytes(case.encode())
        (folder / "labelsTs" / f"{case}.png").write_bytes(b"clean " + case.encode())
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "R"}, "labels": {"background": 0,
                                                     "lesion": 1}, "numTraining": len(train), "file_ending": ".png"}))
    return folder


def test_training_subset_links_the_chosen_cases_and_all_test_cases(tmp_path):
    source = _raw_dataset(tmp_path / "raw", "Dataset916_ISIC2017_a07b07", ["a", "b", "c"], ["t1", "t2"])
    target = tmp_path / "confirm"
    folder = repair_nnunet_loop.write_training_subset(source, target, 1916, ["a", "c"])
    assert folder.name == "Dataset1916_ISIC2017_a07b07_train2"
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["a.png", "c.png"]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["a_0000.png", "c_0000.png"]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == ["t1.png", "t2.png"]
    assert os.path.samefile(folder / "labelsTr" / "c.png", source / "labelsTr" / "c.png")  # a link, not a copy
    meta = json.loads((folder / "dataset.json").read_text())
    assert (meta["numTraining"], meta["file_ending"], meta["labels"]) == (2, ".png", {"background": 0, "lesion": 1})
    assert [p.name for p in target.iterdir()] == [folder.name]  # no staging folder left behind
    assert repair_nnunet_loop.write_training_subset(source, target, 1916, ["c", "a"]) == folder  # reused
    with pytest.raises(RuntimeError, match="other training cases"):
        repair_nnunet_loop.write_training_subset(source, target, 1916, ["a", "b"])


def test_installed_split_is_kept_and_a_foreign_one_refused(tmp_path):
    splits = [{"train": ["a"], "val": ["b"]}, {"train": ["b"], "val": ["a"]}]
    repair_nnunet_loop.install_splits(tmp_path, splits)
    repair_nnunet_loop.install_splits(tmp_path, splits)
    assert json.loads((tmp_path / "splits_final.json").read_text()) == splits
    with pytest.raises(RuntimeError, match="another split"):
        repair_nnunet_loop.install_splits(tmp_path, splits[::-1])


def test_corrupted_cases_compares_the_noisy_and_clean_labels_as_images(tmp_path):
    import cv2

    for name, second in (("noisy", 1), ("clean", 0)):
        (tmp_path / name / "labelsTr").mkdir(parents=True)
        (tmp_path / name / "dataset.json").write_text(json.dumps({"file_ending": ".png", "channel_names": {"0": "R"},
                                                                  "labels": {"background": 0, "lesion": 1}}))
        for case, label in (("a", np.zeros((4, 4))), ("b", np.eye(4) * second)):
            cv2.imwrite(str(tmp_path / name / "labelsTr" / f"{case}.png"), label.astype(np.uint8))
    assert set(corrupted_cases(tmp_path / "noisy", tmp_path / "clean", ["a", "b"])) == {"b"}


def test_ranking_quality_reads_the_audits_own_score_with_ties_counting_half(tmp_path):
    (tmp_path / "audit.json").write_text(json.dumps({"rank_by": "one_minus_softmin"}))
    (tmp_path / "suspects.csv").write_text("rank,case,one_minus_softmin,one_minus_dice\n1,b,0.9,0.1\n2,a,0.5,0.9\n"
                                           "3,c,0.5,0.2\n4,d,0.1,0.3\n")
    quality = repair_nnunet_loop.ranking_quality(tmp_path, {"b", "c"})
    assert quality["ranking"] == ["b", "a", "c", "d"] and quality["corrupted"] == ["b", "c"]
    # pairs (corrupted, clean): b>a, b>d, c=a (half), c>d -> 3.5 / 4
    assert quality["auroc"] == pytest.approx(0.875) and quality["precision_at_k"] == 0.5
    assert quality["rank_by"] == "one_minus_softmin"


def _shared(dataset: str, setting: str, loss: str, pooled: float) -> dict:
    return {"dataset": dataset, "setting": setting, "loss": loss, "seed": 0, "dice_pooled": pooled,
            "dice_mean": pooled - 0.02, "wall_s": 400.0}


def _confirmation(dataset: str, pooled: float) -> dict:
    return {"dataset": dataset, "setting": "a0.7b0.7", "arm": "repaired_ignore_tloss", "seed": 0, "stage": "repair",
            "mode": "ignore", "rule": "f0.25", "trained_loss": "tloss", "dice_pooled": pooled,
            "dice_mean": pooled - 0.02, "repaired_cases": ["x", "y", "z", "w"], "repaired_corrupted": 3,
            "n_corrupted": 9, "retrain_s": 450.0, "wall_s": 460.0, "audit_reused": True, "model_reused": False,
            "audit_auroc": 0.85, "audit_precision_at_k": 0.75}


def _audit(dataset: str, auroc: float, reused: bool = False) -> dict:
    return {"dataset": dataset, "setting": "a0.7b0.7", "arm": "audit", "seed": 0, "stage": "audit",
            "rank_by": "one_minus_softmin", "ranking": [f"c{i}" for i in range(16)], "auroc": auroc,
            "precision_at_k": auroc - 0.1, "n_corrupted": 9, "audit_s": 600.0, "audit_reused": reused}


def test_report_of_the_audits_alone_says_no_repaired_run_yet(tmp_path):
    paths = repair_nnunet_report.write_summary([_audit("d1", 0.9)], [_shared("d1", "a0.7b0.7", "tloss", 0.7)],
                                               tmp_path / "repair_nnunet_runs.json", ["d1"])
    text = paths[1].read_text()
    assert "No repaired run yet" in text and "## Per dataset" not in text
    assert "| d1 | one_minus_softmin | 0.90 | 0.80 | 9 of 16 | 600 |" in text
    assert json.loads(paths[0].read_text())["arms"] == []


def test_report_pairs_by_dataset_gives_the_share_and_waits_for_every_dataset(tmp_path):
    shared = [_shared(d, s, loss, v) for d, base in (("d1", 0.70), ("d2", 0.60), ("d3", 0.65))
              for s, loss, v in (("a0.7b0.7", "dice_ce", base), ("a0.7b0.7", "tloss", base + 0.02),
                                 ("clean", "dice_ce", 0.9), ("clean", "tloss", base + 0.12))]
    runs = [_confirmation("d1", 0.77), _confirmation("d2", 0.67)]  # +5 points on both; gaps 10: shares 50 %
    runs += [_audit("d1", 0.8), _audit("d2", 0.9), _audit("d3", 0.7, reused=True)]
    out = tmp_path / "repair_nnunet_runs.json"
    paths = repair_nnunet_report.write_summary(runs, shared, out, ["d1", "d2", "d3"])
    assert [p.name for p in paths] == ["repair_nnunet.json", "repair_nnunet.md", "repair_nnunet.png"]
    summary = json.loads(paths[0].read_text())
    assert summary["arms"] == [{"arm": "repaired_ignore_tloss", "loss": "tloss", "gain": pytest.approx(0.05),
                                "missing": ["d3 (repaired_ignore_tloss)"], "confirmed": None}]
    assert {e["arm"] for e in summary["runs"]} == {"noisy_dice_ce", "noisy_tloss", "clean_oracle",
                                                   "repaired_ignore_tloss"}
    text = paths[1].read_text()
    assert "waiting for d3 (repaired_ignore_tloss)" in text
    row = next(line for line in text.splitlines() if line.startswith("| repaired_ignore_tloss |"))
    assert "| 2 | 72.0 [" in row and "| 5.0 [5.0, 5.0] |" in row and "| 50 % [50, 50] (n=2) |" in row
    assert "| d2 | repaired_ignore_tloss (f0.25) | 62.0 | 67.0 | 72.0 | 4 (3 / 9) | 0.85, 0.75 | 450 |" in text
    assert "the whole loop = 2.6 x one training" in text  # (600 + 450) / 400
    assert "| d1 | one_minus_softmin | 0.80 | 0.70 | 9 of 16 | 600 |" in text
    assert "| d3 | one_minus_softmin | 0.70 | 0.60 | 9 of 16 | reused |" in text
    assert "Over datasets: AUROC 0.80 [0.55, 1.00]" in text  # mean 0.8, sd 0.1, t(2) = 4.30: +-0.25, clipped
    assert [a["auroc"] for a in summary["audits"]] == [0.8, 0.9, 0.7]
    runs.append(_confirmation("d3", 0.60))  # -7 points: the mean gain (5 + 5 - 7) / 3 = +1 stays above 0
    summary = json.loads(repair_nnunet_report.write_summary(runs, shared, out, ["d1", "d2", "d3"])[0].read_text())
    assert summary["arms"][0]["confirmed"] is True and summary["arms"][0]["gain"] == pytest.approx(0.01)
    runs[-1] = _confirmation("d3", 0.50)
    summary = json.loads(repair_nnunet_report.write_summary(runs, shared, out, ["d1", "d2", "d3"])[0].read_text())
    assert summary["arms"][0]["confirmed"] is False
    assert "**not confirmed**" in out.with_name("repair_nnunet.md").read_text()
