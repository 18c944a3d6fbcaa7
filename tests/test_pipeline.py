"""Unit tests of tloss_nnunet.repro.pipeline on hand-made folders; nnU-Net commands are replaced by small scripts
(``pipeline._executable`` is patched) so that the skip/resume logic is checked without training anything."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tloss_nnunet.nnunet import ext_trainer_path
from tloss_nnunet.repro import kit_trainer_path, pipeline


# ----------------------------------------------------------------------------- helpers
def _fake_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """Make every nnU-Net command run a Python script with ``body``; its argv goes to calls.jsonl."""
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "fake_nnunet.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "args = sys.argv[1:]\n" + body + "\n")
    launcher = tmp_path / "fake_nnunet"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(pipeline, "_executable", lambda name, env: str(launcher))
    return calls


def _calls(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.is_file() else []


def _raw_dataset(env: dict[str, str], dataset_id: int = 501, n_train: int = 3, n_test: int = 2) -> Path:
    folder = Path(env["nnUNet_raw"]) / f"Dataset{dataset_id:03d}_Toy"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_test):
        cv2.imwrite(str(folder / "imagesTs" / f"case_{i}_0000.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "dataset.json").write_text(json.dumps({"numTraining": n_train, "file_ending": ".png",
                                                     "labels": {"background": 0, "lesion": 1},
                                                     "channel_names": {"0": "R", "1": "G", "2": "B"}}))
    return folder


# ----------------------------------------------------------------------------- pooled Dice
def test_pooled_dice_pools_pixels_over_cases() -> None:
    # case 1: gt 4 px, pred 2 px inside it -> TP 2; case 2: gt 0 px, pred 2 px -> FP 2
    gt1 = np.zeros((4, 4), np.uint8)
    gt1[:2, :2] = 1
    pr1 = np.zeros((4, 4), np.uint8)
    pr1[0, :2] = 1
    gt2 = np.zeros((4, 4), np.uint8)
    pr2 = np.zeros((4, 4), np.uint8)
    pr2[3, 2:] = 1
    # pooled: 2*2 / (4 + 4) = 0.5, while the per-case mean would be (2*2/6 + 0) / 2 = 0.333
    assert pipeline.pooled_dice([(pr1, gt1), (pr2, gt2)]) == pytest.approx(0.5)
    assert pipeline.pooled_dice([(gt1, gt1)]) == 1.0


def test_pooled_dice_counts_only_the_requested_label() -> None:
    gt = np.array([[1, 2], [2, 0]])
    pred = np.array([[1, 1], [2, 2]])
    assert pipeline.pooled_dice([(pred, gt)], label=1) == pytest.approx(2 * 1 / (2 + 1))
    assert pipeline.pooled_dice([(pred, gt)], label=2) == pytest.approx(2 * 1 / (2 + 2))


def test_pooled_dice_empty_everywhere_is_nan_and_shapes_must_match() -> None:
    empty = np.zeros((3, 3), np.uint8)
    assert math.isnan(pipeline.pooled_dice([(empty, empty)]))
    with pytest.raises(ValueError, match="shape"):
        pipeline.pooled_dice([(np.zeros((3, 3)), np.zeros((3, 4)))])


# ----------------------------------------------------------------------------- environment
def test_nnunet_env_sets_folders_shim_and_cpu_settings(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "nnUNet_extTrainer": f"/other/trainers{os.pathsep}{ext_trainer_path()}",
            "nnUNet_def_n_proc": "3"}
    env = pipeline.nnunet_env(tmp_path / "work", device="cpu", base=base)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        assert Path(env[variable]) == (tmp_path / "work" / variable).resolve()
        assert Path(env[variable]).is_dir()
    # the library's shim first, then the kit's, other folders kept, no duplicate
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [ext_trainer_path(), kit_trainer_path(), "/other/trainers"]
    assert env["nnUNet_compile"] == "0"
    assert env["nnUNet_def_n_proc"] == "3"  # the user's choice wins
    assert int(env["nnUNet_n_proc_DA"]) >= 0
    assert env["PATH"] == "/usr/bin"
    assert "nnUNet_raw" not in base  # the base mapping is copied, not changed


def test_nnunet_env_takes_given_folders_and_can_leave_our_trainers_out(tmp_path: Path) -> None:
    raw = tmp_path / "family_raw"
    env = pipeline.nnunet_env(tmp_path / "work", base={"nnUNet_extTrainer": "/other"}, raw=raw,
                              results=tmp_path / "work" / "results_seed1", find_trainers=False)
    assert env["nnUNet_raw"] == str(raw.resolve()) and raw.is_dir()
    assert env["nnUNet_results"] == str((tmp_path / "work" / "results_seed1").resolve())
    assert env["nnUNet_preprocessed"] == str((tmp_path / "work" / "nnUNet_preprocessed").resolve())
    assert not (tmp_path / "work" / "nnUNet_raw").exists() and not (tmp_path / "work" / "nnUNet_results").exists()
    assert "nnUNet_extTrainer" not in env  # stock nnU-Net's view, as a colleague without this package has it


def test_nnunet_env_on_gpu_leaves_compile_alone(tmp_path: Path) -> None:
    env = pipeline.nnunet_env(tmp_path, device="cuda", base={})
    assert "nnUNet_compile" not in env
    assert int(env["nnUNet_n_proc_DA"]) >= 1


# ----------------------------------------------------------------------------- run_nnunet
def test_run_nnunet_logs_output_and_reports_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_command(tmp_path, monkeypatch, "print('\\n'.join(f'line {i}' for i in range(100)))\nsys.exit(3)")
    log = tmp_path / "logs" / "step.log"
    seen: list[str] = []
    with pytest.raises(RuntimeError) as info:
        pipeline.run_nnunet(["nnUNetv2_train", "501", "2d", "0"], {"PATH": os.environ["PATH"]}, log,
                            on_line=seen.append)
    message = str(info.value)
    assert "nnUNetv2_train 501 2d 0 failed with exit code 3" in message
    assert str(log) in message and "line 99" in message and "line 10\n" not in message  # only the tail
    assert "line 0" in log.read_text() and "line 99" in log.read_text()
    assert seen[:2] == ["line 0", "line 1"] and len(seen) == 100


# ----------------------------------------------------------------------------- skipping finished work
def test_preprocessing_done_needs_plans_and_every_case(tmp_path: Path) -> None:
    env = pipeline.nnunet_env(tmp_path, base={})
    _raw_dataset(env, n_train=3)
    assert not pipeline.preprocessing_done(501, env)
    folder = Path(env["nnUNet_preprocessed"]) / "Dataset501_Toy"
    (folder / "nnUNetPlans_2d").mkdir(parents=True)
    (folder / "nnUNetPlans.json").write_text(json.dumps(
        {"configurations": {"2d": {"data_identifier": "nnUNetPlans_2d"}}}))
    for i in range(2):
        (folder / "nnUNetPlans_2d" / f"case_{i}.pkl").write_bytes(b"x")
    assert not pipeline.preprocessing_done(501, env)  # 2 of 3 cases
    (folder / "nnUNetPlans_2d" / "case_2.pkl").write_bytes(b"x")
    assert pipeline.preprocessing_done(501, env)
    assert not pipeline.preprocessing_done(501, env, configurations=("2d", "3d_fullres"))


def test_planner_gets_at_least_one_thread_and_the_environments_process_count(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_command(tmp_path, monkeypatch, "import os\nprint('DA=' + os.environ['nnUNet_n_proc_DA'])")
    env = pipeline.nnunet_env(tmp_path / "w", base={"nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "2"})
    _raw_dataset(env)
    log = tmp_path / "pp.log"
    pipeline.plan_and_preprocess(501, env, log_file=log)
    assert _calls(calls) == [["-d", "501", "-c", "2d", "-np", "2", "-npfp", "2", "--verify_dataset_integrity"]]
    assert "DA=1" in log.read_text()
    assert env["nnUNet_n_proc_DA"] == "0"  # the caller's environment is unchanged


def test_train_skips_finished_and_resumes_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pipeline.nnunet_env(tmp_path / "w", base={})
    _raw_dataset(env)
    fold = pipeline.model_folder(501, "nnUNetTrainerTLoss", env) / "fold_0"
    calls = _fake_command(tmp_path, monkeypatch,
                          "import pathlib\n"
                          "print('2026-01-01 00:00:00.000000: Epoch 0')\nprint('2026-01-01 00:00:01.000000: Epoch 1')\n"
                          f"pathlib.Path({str(fold)!r}).mkdir(parents=True, exist_ok=True)\n"
                          f"pathlib.Path({str(fold / 'checkpoint_final.pth')!r}).write_bytes(b'x')")
    epochs: list[int] = []
    folder = pipeline.train(501, "nnUNetTrainerTLoss", env, log_file=tmp_path / "t.log", on_epoch=epochs.append)
    assert folder == fold.parent and folder.name == "nnUNetTrainerTLoss__nnUNetPlans__2d"
    assert _calls(calls) == [["501", "2d", "0", "-tr", "nnUNetTrainerTLoss", "-device", "cpu"]]
    assert epochs == [0, 1]

    pipeline.train(501, "nnUNetTrainerTLoss", env)  # finished: nothing runs
    assert len(_calls(calls)) == 1

    (fold / "checkpoint_final.pth").unlink()
    (fold / "checkpoint_latest.pth").write_bytes(b"x")
    pipeline.train(501, "nnUNetTrainerTLoss", env, device="cuda")
    assert _calls(calls)[-1] == ["501", "2d", "0", "-tr", "nnUNetTrainerTLoss", "-device", "cuda", "--c"]


def test_train_fails_when_no_final_checkpoint_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pipeline.nnunet_env(tmp_path / "w", base={})
    _raw_dataset(env)
    _fake_command(tmp_path, monkeypatch, "pass")
    with pytest.raises(RuntimeError, match="without writing .*checkpoint_final.pth"):
        pipeline.train(501, "nnUNetTrainerTLoss", env)


def test_predict_skips_when_done_and_continues_when_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pipeline.nnunet_env(tmp_path / "w", base={})
    raw = _raw_dataset(env, n_test=2)
    out = tmp_path / "pred"
    calls = _fake_command(tmp_path, monkeypatch,
                          "import pathlib\n"
                          f"out = pathlib.Path({str(out)!r}); out.mkdir(exist_ok=True)\n"
                          "[(out / f'case_{i}.png').write_bytes(b'x') for i in range(2)]")
    assert not pipeline.predictions_done(raw / "imagesTs", out, 501, env)
    pipeline.predict(raw / "imagesTs", out, 501, "nnUNetTrainerTLoss", env)
    first = _calls(calls)[0]
    assert first[:2] == ["-i", str(raw / "imagesTs")] and "--continue_prediction" not in first
    assert first[first.index("-npp") + 1] == "0" and first[first.index("-nps") + 1] == "0"  # CPU: in-process
    assert pipeline.predictions_done(raw / "imagesTs", out, 501, env)

    pipeline.predict(raw / "imagesTs", out, 501, "nnUNetTrainerTLoss", env)
    assert len(_calls(calls)) == 1  # all there: skipped

    (out / "case_1.png").unlink()
    pipeline.predict(raw / "imagesTs", out, 501, "nnUNetTrainerTLoss", env)
    assert "--continue_prediction" in _calls(calls)[-1]


# ----------------------------------------------------------------------------- evaluation
def _evaluation_fixture(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """Ground truth and predictions of 2 cases plus nnU-Net's summary.json for them (newer than the files)."""
    env = pipeline.nnunet_env(tmp_path / "w", base={})
    raw = _raw_dataset(env)
    model = pipeline.model_folder(501, "T", env)
    model.mkdir(parents=True)
    (model / "dataset.json").write_text((raw / "dataset.json").read_text())
    (model / "plans.json").write_text("{}")
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    gt_a = np.zeros((6, 6), np.uint8)
    gt_a[1:4, 1:4] = 1   # 9 px
    pr_a = np.zeros((6, 6), np.uint8)
    pr_a[1:4, 1:3] = 1   # 6 px, all inside
    gt_b = np.zeros((6, 6), np.uint8)
    gt_b[0, :] = 1       # 6 px
    pr_b = np.zeros((6, 6), np.uint8)
    pr_b[5, :] = 1       # 6 px, none inside
    for name, gt, pred in (("case_a", gt_a, pr_a), ("case_b", gt_b, pr_b)):
        cv2.imwrite(str(gt_dir / f"{name}.png"), gt)
        cv2.imwrite(str(pred_dir / f"{name}.png"), pred)
    summary = {
        "metric_per_case": [
            {"metrics": {"1": {"Dice": 0.8}}, "prediction_file": str(pred_dir / "case_a.png"),
             "reference_file": str(gt_dir / "case_a.png")},
            {"metrics": {"1": {"Dice": 0.0}}, "prediction_file": str(pred_dir / "case_b.png"),
             "reference_file": str(gt_dir / "case_b.png")},
        ],
        "mean": {"1": {"Dice": 0.4}},
        "foreground_mean": {"Dice": 0.4},
    }
    time.sleep(0.01)
    (pred_dir / "summary.json").write_text(json.dumps(summary))
    return env, gt_dir, pred_dir


def test_evaluate_reads_nnunet_summary_and_pools_pixels_from_the_files(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env, gt_dir, pred_dir = _evaluation_fixture(tmp_path)
    calls = _fake_command(tmp_path, monkeypatch, "raise SystemExit('must not run')")
    result = pipeline.evaluate(gt_dir, pred_dir, 501, "T", env)
    assert _calls(calls) == []  # summary.json is newer than the predictions: reused
    assert result.per_case == {"case_a": 0.8, "case_b": 0.0}
    assert result.dice_mean == 0.4
    assert result.dice_pooled == pytest.approx(2 * 6 / (9 + 6 + 6 + 6))  # from the PNG files, not the summary
    assert result.summary_path == pred_dir / "summary.json"


def test_evaluate_reruns_for_newer_predictions_and_requires_every_case(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env, gt_dir, pred_dir = _evaluation_fixture(tmp_path)
    summary_text = (pred_dir / "summary.json").read_text()
    calls = _fake_command(tmp_path, monkeypatch,
                          f"import pathlib\npathlib.Path(args[args.index('-o') + 1]).write_text({summary_text!r})")
    future = time.time() + 5
    os.utime(pred_dir / "case_a.png", (future, future))
    assert not pipeline.evaluation_current(pred_dir)
    pipeline.evaluate(gt_dir, pred_dir, 501, "T", env)
    (command,) = _calls(calls)
    assert command[:2] == [str(gt_dir), str(pred_dir)] and "-djfile" in command and "-pfile" in command
    assert not list(pred_dir.glob(".summary*"))  # the temporary summary was renamed
    (pred_dir / "case_b.png").unlink()
    with pytest.raises(RuntimeError, match="no prediction"):
        pipeline.evaluate(gt_dir, pred_dir, 501, "T", env)


def test_read_summary_maps_file_names_to_case_ids(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"metric_per_case": [
        {"metrics": {"1": {"Dice": None}}, "prediction_file": "/x/ISIC_0000001.nii.gz"},
        {"metrics": {"1": {"Dice": 0.5}}, "prediction_file": "/x/ISIC_0000002.nii.gz"}],
        "mean": {"1": {"Dice": 0.5}}}))
    per_case, mean = pipeline.read_summary(path, ".nii.gz")
    assert set(per_case) == {"ISIC_0000001", "ISIC_0000002"} and math.isnan(per_case["ISIC_0000001"])
    assert mean == 0.5
