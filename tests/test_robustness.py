"""The robustness study: smoke run of the MONAI engine end to end, resume, metrics, interval math, table, plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import robustness
from robustness_lib import monai_engine
from robustness_lib.grid import parse_setting, setting_name
from robustness_lib.metrics import dice_mean, dice_per_case, dice_pooled
from robustness_lib.store import REQUIRED_KEYS, ResultStore, load_runs
from robustness_lib.summary import markdown_table, render_markdown, t_interval, tloss_vs_baseline

from tloss_nnunet.errors import InputError


# ------------------------------------------------------------------ end to end (smoke configuration)
@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """One smoke study (1 setting x 2 losses), with the engine's test predictions captured per run."""
    tmp = tmp_path_factory.mktemp("robustness")
    captured = []
    original = monai_engine.predict

    def capturing_predict(network, images, device, batch=32):
        out = original(network, images, device, batch)
        captured.append(out)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(monai_engine, "predict", capturing_predict)
        code = robustness.main(["--config", "smoke", "--settings", "a0.7b0.7", "--losses", "tloss", "dice_ce",
                                "--out", str(tmp / "r.json"), "--work-dir", str(tmp / "work")])
    return tmp, code, captured


def test_smoke_study_writes_one_well_formed_record_per_run(smoke_study):
    tmp, code, _ = smoke_study
    assert code == 0
    runs = json.loads((tmp / "r.json").read_text())["runs"]
    assert [(r["setting"], r["loss"], r["seed"]) for r in runs] == [("a0.7b0.7", "tloss", 0), ("a0.7b0.7", "dice_ce", 0)]
    for run in runs:
        assert set(REQUIRED_KEYS) <= set(run)
        assert (run["alpha"], run["beta"]) == (0.7, 0.7)
        assert 0 <= run["dice_mean"] <= 1 and 0 <= run["dice_pooled"] <= 1
        assert run["wall_s"] > 0 and "CPUs" in run["machine"] and run["engine"] == "monai"
        # a0.7 corrupts training cases: the memorisation measure exists.
        assert 0 <= run["train_dice_noisy"] <= 1 and 0 <= run["train_dice_clean"] <= 1
    tloss, dice_ce = runs
    assert tloss["nu_final"] > 0 and tloss["nu_trace"][-1] == [6, pytest.approx(tloss["nu_final"])]
    assert tloss["nu_final"] != 1.0  # nu has its own optimiser and moved
    assert dice_ce["nu_final"] is None and dice_ce["nu_trace"] == []
    assert (tmp / "r.md").read_text().startswith("# Robustness study")
    assert (tmp / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_dice_values_are_recomputed_from_the_predictions(smoke_study):
    tmp, _, captured = smoke_study
    runs = json.loads((tmp / "r.json").read_text())["runs"]
    test_dir = next((tmp / "work" / "nnUNet_raw").glob("Dataset*_a07b07"))
    labels = [np.array(__import__("cv2").imread(str(f), -1)) for f in sorted((test_dir / "labelsTs").glob("*.png"))]
    reference = np.stack(labels)[:, None]
    # Each run predicts the test set first, then its corrupted training cases: 2 captures per run.
    assert len(runs) == 2 and len(captured) == 2 * len(runs)
    for run, prediction in zip(runs, captured[0::2]):
        assert prediction.shape == reference.shape
        tp = ((prediction == 1) & (reference == 1)).sum()
        pooled = 2 * tp / ((prediction == 1).sum() + (reference == 1).sum())
        assert run["dice_pooled"] == pytest.approx(pooled)
        per_case = [2 * ((p == 1) & (r == 1)).sum() / ((p == 1).sum() + (r == 1).sum()) for p, r in zip(prediction, reference)]
        assert run["dice_mean"] == pytest.approx(np.mean(per_case))


def test_resume_skips_finished_runs_and_refuses_to_overwrite(smoke_study, capsys):
    tmp, _, _ = smoke_study
    before = (tmp / "r.json").read_text()
    args = ["--config", "smoke", "--settings", "a0.7b0.7", "--losses", "tloss", "dice_ce", "--out", str(tmp / "r.json"),
            "--work-dir", str(tmp / "work")]
    assert robustness.main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert robustness.main(args + ["--resume"]) == 0
    assert "0 run(s) to do (2 already" in capsys.readouterr().out
    assert (tmp / "r.json").read_text() == before


def test_cli_rejects_unknown_setting_and_loss(tmp_path, capsys):
    assert robustness.main(["--config", "smoke", "--settings", "a0.4", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown noise setting 'a0.4'" in capsys.readouterr().err
    assert robustness.main(["--config", "smoke", "--losses", "focal", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown loss(es) ['focal']" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_plan_runs_puts_the_headline_comparison_first():
    plan = robustness.plan_runs(["clean", "a0.7b0.7"], ["gce", "dice_ce", "tloss"], [0, 1])
    assert [p[1] for p in plan[:8]] == ["tloss"] * 4 + ["dice_ce"] * 4
    assert plan[:4] == [("clean", "tloss", 0), ("a0.7b0.7", "tloss", 0), ("clean", "tloss", 1), ("a0.7b0.7", "tloss", 1)]
    assert len(plan) == 12 and len(set(plan)) == 12


# ------------------------------------------------------------------ metrics and names
def test_dice_metrics_against_hand_values():
    pred = np.zeros((2, 1, 2, 2), int)
    ref = np.zeros((2, 1, 2, 2), int)
    pred[0, 0, 0] = 1          # case 0: pred 2 px, ref 1 px, overlap 1 -> 2/3
    ref[0, 0, 0, 0] = 1
    pred[1, 0, 1, 1] = 1       # case 1: pred 1 px, ref 3 px, overlap 1 -> 2/4
    ref[1, 0, 1] = 1
    ref[1, 0, 0, 1] = 1
    np.testing.assert_allclose(dice_per_case(pred, ref), [2 / 3, 1 / 2])
    assert dice_mean(pred, ref) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert dice_pooled(pred, ref) == pytest.approx(2 * 2 / (3 + 4))
    empty = np.zeros((1, 1, 2, 2), int)
    assert math.isnan(dice_per_case(empty, empty)[0])  # both empty: undefined, as in nnU-Net
    assert dice_mean(np.concatenate([pred, empty]), np.concatenate([ref, empty])) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_setting_names_round_trip():
    assert setting_name(0.7, 0.5) == "a0.7b0.5" and parse_setting("a0.7b0.5") == (0.7, 0.5)
    assert setting_name(0, 0) == "clean" and parse_setting("clean") == (0.0, 0.0)
    for bad in ("a0.7", "a1.5b0.5", "noisy"):
        with pytest.raises(InputError):
            parse_setting(bad)


# ------------------------------------------------------------------ summary from a hand-made JSON
def _run(setting, loss, seed, dice, pooled=None, nu=None):
    alpha, beta = parse_setting(setting)
    return {"setting": setting, "alpha": alpha, "beta": beta, "loss": loss, "seed": seed, "dice_mean": dice,
            "dice_pooled": dice if pooled is None else pooled, "nu_final": nu, "wall_s": 1.0,
            "machine": "test", "engine": "monai", "config": "cpu"}


def test_t_interval_math():
    cell = t_interval([0.80, 0.84, 0.88])
    # mean 0.84, s = 0.04, t_{0.975, 2} = 4.302652729911275 -> half width 4.3027 * 0.04 / sqrt(3)
    assert cell.n == 3 and cell.mean == pytest.approx(0.84)
    assert cell.half_width == pytest.approx(4.302652729911275 * 0.04 / math.sqrt(3))
    assert t_interval([0.5]).half_width is None and t_interval([0.5]).n == 1
    assert t_interval([0.5, None, float("nan")]).n == 1
    assert t_interval([]).n == 0


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
    store = ResultStore(path)
    for run in runs:
        store.add(run)
    assert load_runs(path) == runs
    md, png = robustness.summarize(path)
    text = md.read_text()
    assert "| a0.7b0.7 | 85.0 (n=1) | 80.0 (n=1) |" in text
    assert "a0.3b0.5/tloss" in text.split("### Not run")[1]  # cells with no run are listed, not invented
    assert "| clean | 2 (2-2) | not traced |" in text  # final nu summary
    assert png.stat().st_size > 1000
    assert render_markdown(runs).count("## engine `monai`, config `cpu`") == 1


def test_store_rejects_incomplete_records_and_bad_files(tmp_path):
    store = ResultStore(tmp_path / "r.json")
    with pytest.raises(ValueError, match="lacks"):
        store.add({"setting": "clean"})
    assert not (tmp_path / "r.json").exists()
    store.add({**_run("clean", "ce", 0, float("nan"))})
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["dice_mean"] is None  # NaN stored as null
    (tmp_path / "bad.json").write_text('{"runs": [{"setting": "clean"}]}')
    with pytest.raises(InputError, match="lacks"):
        load_runs(tmp_path / "bad.json")
