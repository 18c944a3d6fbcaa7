"""The label-audit evaluation (``python -m benchmarks.label_audit``): a smoke run end to end (real nnU-Net trainers,
2-fold cross-fitting, the library's scores), resume, and its AUROC / precision@k maths on hand-made cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import label_audit
from benchmarks.label_audit_report import KINDS, auroc, precision_at_k, run_metrics


@pytest.fixture(scope="module")
def smoke_evaluation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label_audit")
    argv = ["--config", "smoke", "--settings", "a0.7b0.7", "--out", str(tmp / "audit.json"),
            "--work-dir", str(tmp / "work")]
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            patch.setenv(variable, str(tmp / "unused"))  # main() points them at --work-dir; restored afterwards
        codes = [label_audit.main(argv), label_audit.main([*argv, "--resume"])]
    return tmp, codes


@pytest.mark.slow
def test_every_case_is_scored_once_by_the_fold_that_held_it_out(smoke_evaluation):
    tmp, codes = smoke_evaluation
    assert codes == [0, 0]
    runs = json.loads((tmp / "audit.json").read_text())["runs"]
    assert sorted(r["loss"] for r in runs) == ["dice_ce", "tloss"]  # the resumed call added nothing
    for run in runs:
        assert "dice_mean" not in run and "CPUs" in run["machine"]  # the fields this study declares, no fillers
        cases = run["cases"]
        assert len({c["case"] for c in cases}) == len(cases) == run["n_train"]
        assert sorted(c["fold"] for c in cases) == [0] * (run["n_train"] // 2) + [1] * (run["n_train"] // 2)
        assert sum(c["corrupted"] for c in cases) == run["n_corrupted"] >= 1
        assert all((c["kind"] in KINDS) == c["corrupted"] for c in cases)
        assert all(0 <= c["one_minus_dice"] <= 1 and 0 <= c["mse"] <= 1 for c in cases)
        if run["loss"] == "tloss":  # each fold's own nu scores its held-out cases
            assert len(run["nu_final"]) == 2 and all(math.isfinite(nu) for nu in run["nu_final"])
            assert all(math.isfinite(c["tloss_nll"]) and c["tloss_weight"] > 0 for c in cases)
        else:
            assert run["nu_final"] == [None, None] and all(c["tloss_nll"] is None for c in cases)
    markdown = (tmp / "audit.md").read_text()
    tloss_run = next(r for r in runs if r["loss"] == "tloss")
    expected = run_metrics(tloss_run)["one_minus_dice"]["auroc"]
    assert f"| a0.7b0.7 | tloss | one_minus_dice | 1 | {tloss_run['n_corrupted']} | {expected:.2f} (n=1) |" in markdown
    assert (tmp / "audit.png").read_bytes()[:4] == b"\x89PNG"


def test_auroc_and_precision_at_k_on_hand_made_cases():
    corrupted = np.array([True, True, False, False, False])
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), corrupted) == 1.0  # every corrupted case ranks first
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8, 0.7]), corrupted) == 0.0
    # one corrupted case above all clean ones, the other below two of three: (3 + 1) / 6
    assert auroc(np.array([0.9, 0.5, 0.6, 0.7, 0.1]), corrupted) == pytest.approx(4 / 6)
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5, 0.5]), corrupted) == 0.5  # ties count half
    assert math.isnan(auroc(np.array([0.1, 0.2]), np.array([False, False])))
    assert precision_at_k(np.array([0.9, 0.5, 0.6, 0.7, 0.1]), corrupted) == 0.5  # top 2: one corrupted
    assert precision_at_k(np.array([0.9, 0.5, 0.6, 0.7, 0.1]), corrupted, k=1) == 1.0
