"""The demo (``python -m tloss_nnunet.repro.demo``, behind ``scripts/demo.sh``): options, schedules, and one end-to-end
run of the stock nnU-Net commands in the smallest configuration whose report numbers are checked against Dice
recomputed here from the prediction files."""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from tloss_nnunet.repro import demo, demo_trainers

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- fast checks
def test_bad_options_are_all_reported_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = demo.main(["--work", str(tmp_path / "w"), "--schedule", "tiny", "--epochs", "3", "--size", "8",
                      "--alpha", "1.5", "--test-cases", "0"])
    err = capsys.readouterr().err
    assert code == 2
    for fragment in ("--epochs/--iterations customise the demo schedule", "--size must be at least 16",
                     "--alpha must be in [0, 1]", "--test-cases must be at least 1"):
        assert fragment in err
    assert not (tmp_path / "w").exists()  # nothing was started


def test_custom_epochs_and_iterations_get_their_own_results_folder() -> None:
    args = demo.build_parser().parse_args(["--epochs", "3", "--iterations", "7"])
    schedule = demo._validate(args)
    assert (schedule.tloss_trainer, schedule.stock_trainer) == ("nnUNetTrainerTLoss_demo", "nnUNetTrainer_demo")
    assert (schedule.epochs, schedule.iterations, schedule.key) == (3, 7, "demo_e3_i7")
    assert demo.SCHEDULES["demo"].key == f"demo_e{demo_trainers.DEMO_EPOCHS}_i{demo_trainers.DEMO_ITERATIONS}"


def test_tiny_schedule_matches_the_trainer_variants() -> None:
    from tloss_nnunet.nnunet import schedules, variants
    from tloss_nnunet.repro import study_trainers

    tiny = demo.SCHEDULES["tiny"]
    assert (tiny.epochs, tiny.iterations) == (schedules.TINY_EPOCHS, schedules.TINY_ITERATIONS)
    assert hasattr(variants, tiny.tloss_trainer) and hasattr(study_trainers, tiny.stock_trainer)


def test_demo_trainers_read_their_schedule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo_trainers.EPOCHS_VARIABLE, raising=False)
    monkeypatch.delenv(demo_trainers.ITERATIONS_VARIABLE, raising=False)
    assert demo_trainers.demo_schedule() == (demo_trainers.DEMO_EPOCHS, demo_trainers.DEMO_ITERATIONS,
                                             max(2, demo_trainers.DEMO_ITERATIONS // 4))
    monkeypatch.setenv(demo_trainers.EPOCHS_VARIABLE, "3")
    monkeypatch.setenv(demo_trainers.ITERATIONS_VARIABLE, "40")
    trainer = SimpleNamespace()
    demo_trainers._apply_demo_schedule(trainer)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (3, 40, 10)
    monkeypatch.setenv(demo_trainers.EPOCHS_VARIABLE, "zero")
    with pytest.raises(ValueError, match="TLOSS_DEMO_EPOCHS must be a positive integer"):
        demo_trainers.demo_schedule()


def test_demo_trainers_are_twins_that_differ_only_in_the_loss() -> None:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

    assert demo_trainers.nnUNetTrainerTLoss_demo.__mro__[1] is nnUNetTrainerTLoss
    assert demo_trainers.nnUNetTrainer_demo.__mro__[1] is nnUNetTrainer
    # nnU-Net records init args from the subclass signature: it must be nnUNetTrainer's, spelled out
    expected = list(inspect.signature(nnUNetTrainer.__init__).parameters)
    for cls in (demo_trainers.nnUNetTrainerTLoss_demo, demo_trainers.nnUNetTrainer_demo):
        assert list(inspect.signature(cls.__init__).parameters) == expected


def test_nnunet_finds_the_demo_trainers_through_the_shim(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from tloss_nnunet.nnunet import ext_trainer_path
    from tloss_nnunet.repro import trainer_search_path

    # The library's shim exposes library trainers only; the kit's shim, which the demo adds, has the demo's.
    monkeypatch.setenv("nnUNet_extTrainer", ext_trainer_path())
    with pytest.raises(RuntimeError, match="Could not find"):
        recursive_find_trainer_class_by_name("nnUNetTrainerTLoss_demo")
    monkeypatch.setenv("nnUNet_extTrainer", trainer_search_path())
    for name in ("nnUNetTrainerTLoss_demo", "nnUNetTrainer_demo"):
        assert recursive_find_trainer_class_by_name(name).__name__ == name


# ----------------------------------------------------------------------------- end to end
def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    p, t = prediction == 1, truth == 1
    denominator = p.sum() + t.sum()
    return 2.0 * (p & t).sum() / denominator if denominator else math.nan


@pytest.mark.slow
def test_demo_end_to_end_smallest_configuration(tmp_path: Path) -> None:
    work, report = tmp_path / "work", tmp_path / "report"
    command = [sys.executable, "-m", "tloss_nnunet.repro.demo", "--schedule", "tiny", "--train-cases", "8",
               "--val-cases", "2", "--test-cases", "3", "--size", "32", "--device", "cpu", "--grid-cases", "3",
               "--work", str(work), "--report", str(report)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"report: {report / 'report.md'}" in run.stdout

    results = json.loads((report / "results.json").read_text())
    labels_ts = Path(results["data"]["noisy_dataset"]) / "labelsTs"
    truths = {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(labels_ts.glob("*.png"))}
    assert len(truths) == 3
    markdown, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert [t["trainer"] for t in results["trainers"]] == ["nnUNetTrainerTLoss_tiny", "nnUNetTrainerDiceCE_tiny"]
    for trainer in results["trainers"]:
        assert trainer["trainer"] in markdown and trainer["trainer"] in html
        predictions = Path(trainer["predictions"])
        pairs = {}
        for case, truth in truths.items():
            prediction = cv2.imread(str(predictions / f"{case}.png"), cv2.IMREAD_UNCHANGED)
            assert prediction is not None and prediction.shape == truth.shape, case
            pairs[case] = (prediction, truth)
        recomputed = {case: _dice(*pair) for case, pair in pairs.items()}
        for case, value in recomputed.items():
            reported = trainer["per_case"][case]
            assert (reported is None and math.isnan(value)) or reported == pytest.approx(value, abs=1e-9), case
            assert f"| {case} |" in markdown
        assert trainer["dice_mean"] == pytest.approx(np.nanmean(list(recomputed.values())), abs=1e-9)
        tp = sum(int(((p == 1) & (t == 1)).sum()) for p, t in pairs.values())
        total = sum(int((p == 1).sum() + (t == 1).sum()) for p, t in pairs.values())
        assert trainer["dice_pooled"] == pytest.approx(2 * tp / total, abs=1e-9)
        assert f"{trainer['dice_mean']:.4f}" in markdown and f"{trainer['dice_pooled']:.4f}" in html
        assert trainer["epochs"] == demo.SCHEDULES["tiny"].epochs
    assert results["trainers"][0]["final_nu"] is not None and results["trainers"][1]["final_nu"] is None
    for png in ("curves.png", "cases.png"):
        with Image.open(report / png) as image:
            image.verify()
        assert png in markdown and f'src="{png}"' in html

    # A second run with the same options redoes nothing and reports the same numbers.
    checkpoint = Path(results["trainers"][0]["model_folder"]) / "fold_0" / "checkpoint_final.pth"
    before = checkpoint.stat().st_mtime_ns
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for step in ("nnUNetv2_plan_and_preprocess", "nnUNetv2_train nnUNetTrainerTLoss_tiny",
                 "nnUNetv2_predict nnUNetTrainerDiceCE_tiny"):
        assert any(step in line and "done in an earlier run" in line for line in again.stdout.splitlines()), step
    assert checkpoint.stat().st_mtime_ns == before
    assert json.loads((report / "results.json").read_text())["trainers"] == results["trainers"]
