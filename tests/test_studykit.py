"""The study framework (benchmarks/studykit): grid labels, metrics, intervals, the store, the driver (keeps going
past a failed run, resumes), and every committed study table re-made byte for byte from its raw records."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import label_audit, memorisation, robustness
from benchmarks.studykit import cli, grid, stats
from benchmarks.studykit.driver import Job, run_jobs
from benchmarks.studykit.metrics import dice_mean, dice_per_case, dice_pooled
from benchmarks.studykit.store import KEY_FIELDS, ResultStore, load_runs
from tloss_nnunet.errors import InputError
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS, NoiseSetting

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
T2 = 4.302652729911275  # t_{0.975, 2}


# ------------------------------------------------------------------ grid and metrics
def test_grid_is_the_noise_settings_grid_with_one_label_scheme():
    assert grid.SETTINGS == ("clean", "a0.3b0.5", "a0.3b0.7", "a0.5b0.5", "a0.5b0.7", "a0.7b0.5", "a0.7b0.7")
    assert [(s.alpha, s.beta) for s in grid.GRID.values()] == [(a, b) for a in PAPER_ALPHAS for b in PAPER_BETAS]
    assert grid.parse_setting("a0.7b0.5") == (0.7, 0.5) and grid.parse_setting("clean") == (0.0, 0.0)
    assert grid.setting_of_dataset(f"Dataset881_ISIC2017_{NoiseSetting(0.3, 0.5).short}") == "a0.3b0.5"
    assert grid.setting_of_dataset("Dataset880_ISIC2017_clean") == "clean"
    for bad in ("a0.7", "a1.5b0.5", "a0.4b0.5", "noisy"):
        with pytest.raises(InputError, match="unknown noise setting"):
            grid.parse_setting(bad)
    with pytest.raises(ValueError):
        grid.setting_of_dataset("Dataset881_ISIC2017_a04b05")
    assert grid.ordered({"b", "clean", "a0.7b0.7", "a"}, grid.SETTINGS) == ["clean", "a0.7b0.7", "a", "b"]


def test_dice_metrics_against_hand_values():
    pred, ref = np.zeros((2, 1, 2, 2), int), np.zeros((2, 1, 2, 2), int)
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


# ------------------------------------------------------------------ statistics
def test_t_interval_paired_over_datasets_and_clipping():
    cell = stats.t_interval([0.80, 0.84, 0.88])
    assert cell.n == 3 and cell.mean == pytest.approx(0.84)
    assert cell.half_width == pytest.approx(T2 * 0.04 / math.sqrt(3))
    assert stats.t_interval([0.5]).half_width is None and stats.t_interval([0.5, None, float("nan")]).n == 1
    assert stats.t_interval([]).n == 0 and stats.format_cell(stats.t_interval([])) == "not run"
    # a Dice near 1 with spread seeds: the t-interval passes 1, the clipped one stops there
    wide = stats.t_interval([0.90, 0.99, 0.99], bounds=(0.0, 1.0))
    assert wide.mean + wide.half_width > 1 and wide.high == 1.0 and wide.low == wide.mean - wide.half_width
    diff = stats.paired({0: 0.80, 1: 0.82, 2: 0.79, 3: 0.5}, {0: 0.75, 1: 0.78, 2: 0.73}, bounds=(-1.0, 1.0))
    assert diff.n == 3 and diff.mean == pytest.approx(0.05)  # seed 3 has no pair
    assert diff.half_width == pytest.approx(T2 * np.std([0.05, 0.04, 0.06], ddof=1) / math.sqrt(3))
    datasets = stats.over_datasets({"isic": [0.8, 0.9], "shenzhen": [0.7], "empty": [None]})
    assert datasets.n == 2 and datasets.mean == pytest.approx((0.85 + 0.7) / 2)
    delta, half = stats.welch([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert delta == pytest.approx(1.0) and half == pytest.approx(T2 / math.sqrt(3))
    assert stats.welch([1.0], [2.0]) == (-1.0, None)
    assert stats.format_cell(stats.t_interval([0.5, 0.7]), scale=1.0, digits=2).startswith("0.60 [")


# ------------------------------------------------------------------ store and driver
def _record(setting: str, arm: str, seed: int, value: float) -> dict:
    return {"engine": "e", "config": "c", "setting": setting, "loss": arm, "seed": seed, "value": value}


def test_store_checks_the_declared_fields_and_stores_nan_as_null(tmp_path):
    store = ResultStore(tmp_path / "r.json", fields=("value",))
    with pytest.raises(ValueError, match=r"lacks \['value'\]"):
        store.add({k: 1 for k in KEY_FIELDS})
    with pytest.raises(ValueError, match="lacks"):
        store.add({"value": 1.0})  # the run key is every study's
    store.add(_record("clean", "tloss", 0, float("nan")))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == {"runs": [{**_record("clean", "tloss", 0, 0), "value": None}]}
    with pytest.raises(InputError, match="pass --resume"):
        ResultStore.open(tmp_path / "r.json", ("value",), resume=False)
    with pytest.raises(InputError, match="lacks"):
        load_runs(tmp_path / "r.json", ("value", "other"))
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(InputError, match="no 'runs' list"):
        load_runs(tmp_path / "bad.json")


@pytest.mark.parametrize("workers", [1, 2])
def test_driver_keeps_going_past_a_failed_run_and_resume_retries_only_it(tmp_path, workers, capsys):
    out = tmp_path / "r.json"
    todo = [("e", "c", "clean", arm, seed) for seed in (0, 1) for arm in ("tloss", "dice_ce")]

    def jobs(keys, broken=("dice_ce", 0)):
        # dict(pairs) makes the record in any process; a pair list with a 3-tuple makes dict() raise
        return [Job(key, dict, ([*zip(KEY_FIELDS, key), ("value", 1.0)] + ([(1, 2, 3)] if key[3:] == broken else []),))
                for key in keys]

    store = ResultStore.open(out, ("value",), resume=False)
    code = cli.execute(store, todo, jobs, workers, "test", lambda: [])
    assert code == 1 and "1 run(s) failed" in capsys.readouterr().err
    saved = json.loads(out.read_text())
    assert [tuple(r[k] for k in KEY_FIELDS) for r in saved["runs"]] == [k for k in todo if k[3:] != ("dice_ce", 0)]
    assert [f["run"] for f in saved["failed"]] == [["e", "c", "clean", "dice_ce", 0]]
    assert "ValueError" in saved["failed"][0]["error"]

    store = ResultStore.open(out, ("value",), resume=True)
    ran = []
    code = cli.execute(store, todo, lambda keys: ran.extend(keys) or jobs(keys, broken=None), workers, "test",
                       lambda: [])
    assert code == 0 and ran == [("e", "c", "clean", "dice_ce", 0)]
    assert "failed" not in json.loads(out.read_text()) and len(load_runs(out)) == 4


def test_run_jobs_restores_the_callers_thread_count(tmp_path):
    import torch

    before = torch.get_num_threads()
    store = ResultStore(tmp_path / "r.json", fields=("value",))
    assert run_jobs([Job(_record("clean", "tloss", 0, 0)["setting"] and ("e", "c", "clean", "tloss", 0), dict,
                         (_record("clean", "tloss", 0, 1.0),))], store, threads=1) == []
    assert torch.get_num_threads() == before and store.runs == [_record("clean", "tloss", 0, 1.0)]


# ------------------------------------------------------------------ committed tables from committed records
@pytest.mark.parametrize("study, name", [
    (memorisation, "memorisation"), (memorisation, "memorisation_nnunet"), (robustness, "robustness"),
    (label_audit, "label_audit"),
])
def test_summarize_remakes_the_committed_table_byte_for_byte(study, name, tmp_path):
    out = tmp_path / f"{name}.json"
    shutil.copy(RESULTS / f"{name}.json", out)
    assert study.main(["--summarize", "--out", str(out)]) == 0
    assert out.with_suffix(".md").read_bytes() == (RESULTS / f"{name}.md").read_bytes()


def test_the_finished_long_horizon_tables_come_out_byte_for_byte(tmp_path):
    """The long-horizon study (versions 1 and 2, complete) and, beside it, its stock-command check, which reads
    the in-process summary for its comparison column."""
    from benchmarks import horizon, horizon_nnunet

    for name in ("horizon_runs.json", "horizon_nnunet_runs.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    assert horizon.main(["--summarize", "--out", str(tmp_path / "horizon_runs.json")]) == 0
    assert horizon_nnunet.main(["--summarize", "--out", str(tmp_path / "horizon_nnunet_runs.json")]) == 0
    for table in ("horizon.md", "horizon.json", "horizon_nnunet.md", "horizon_nnunet.json"):
        assert (tmp_path / table).read_bytes() == (RESULTS / table).read_bytes(), table


def test_the_memorisation_grid_view_remakes_the_committed_grid(tmp_path):
    out = tmp_path / "memorisation.json"
    shutil.copy(RESULTS / "memorisation.json", out)
    grid_out = tmp_path / "grid" / "robustness.json"
    assert memorisation.main(["--summarize", "--out", str(out), "--grid-out", str(grid_out)]) == 0
    for suffix in (".json", ".md"):
        assert grid_out.with_suffix(suffix).read_bytes() == (RESULTS / f"robustness{suffix}").read_bytes()


def test_the_repair_tables_come_out_byte_for_byte(tmp_path):
    """The label-repair study (in process; its stock-command confirmation beside it) re-made from the committed
    records, with the long-horizon records they share."""
    from benchmarks import repair, repair_nnunet

    for name in ("repair_runs.json", "repair_nnunet_runs.json"):
        shutil.copy(RESULTS / name, tmp_path / name)
    assert repair.main(["--summarize", "--out", str(tmp_path / "repair_runs.json")]) == 0
    assert repair_nnunet.main(["--summarize", "--out", str(tmp_path / "repair_nnunet_runs.json")]) == 0
    for table in ("repair.md", "repair.json", "repair_audit.md", "repair_nnunet.md", "repair_nnunet.json"):
        assert (tmp_path / table).read_bytes() == (RESULTS / table).read_bytes(), table
