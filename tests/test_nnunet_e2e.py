"""The stock nnU-Net v2 commands on CPU with the T-Loss trainer found through ``nnUNet_extTrainer``.

tiny 2D dataset -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train -tr nnUNetTrainerTLoss_tiny -> --c (nu restored
exactly) -> nnUNetv2_predict -> nnUNetv2_evaluate_folder; then ``tloss-nnunet export-stock`` and stock
nnUNetv2_predict WITHOUT the plugin on the export (identical predictions). ``--val`` goes through the same
``load_checkpoint`` as ``--c`` and is not run again here (each nnU-Net command costs ~20 s on 2 cores).
``-num_gpus`` cannot run here: nnU-Net forces CUDA + NCCL for it (the DDP step logic is tested with gloo in
test_nnunet_ddp.py). The ``tloss-nnunet`` commands run in process through ``tloss_nnunet.cli.main``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tloss_nnunet.cli import main
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

pytestmark = pytest.mark.slow

DATASET_ID = 621
TRAINER = "nnUNetTrainerTLoss_tiny"
BIN = os.path.dirname(sys.executable)


def _cli(argv: list[str]) -> str:
    """Run ``tloss-nnunet ARGV`` in process; return its stdout (exit code must be 0)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def _run(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    exe = os.path.join(BIN, args[0]) if os.path.exists(os.path.join(BIN, args[0])) else args[0]
    result = subprocess.run([exe, *args[1:]], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet_cli")
    paths = {k: root / k for k in ("raw", "preprocessed", "results")}
    for p in paths.values():
        p.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(nnUNet_raw=str(paths["raw"]), nnUNet_preprocessed=str(paths["preprocessed"]),
               nnUNet_results=str(paths["results"]), nnUNet_compile="0", nnUNet_def_n_proc="1",
               nnUNet_n_proc_DA="1", OMP_NUM_THREADS="1")
    raw = write_synthetic_dataset(str(paths["raw"]), DATASET_ID, "2d", num_train=8, num_test=2, size=32)
    _run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "--verify_dataset_integrity",
          "-np", "1", "-npfp", "1"], env)
    ext = _cli(["ext-path"]).strip()
    train_env = dict(env, nnUNet_extTrainer=ext, nnUNet_n_proc_DA="0")
    _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"], train_env)
    model = os.path.join(paths["results"], os.path.basename(raw), f"{TRAINER}__nnUNetPlans__2d")
    return {"root": root, "raw": raw, "env": env, "train_env": train_env, "model": model, "ext": ext}


def _load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_ext_path_holds_exactly_one_shim_module(pipeline):
    assert os.path.isabs(pipeline["ext"])
    assert [n for n in os.listdir(pipeline["ext"]) if not n.startswith("__")] == ["tloss_nnunet_ext_trainers.py"]


def test_training_writes_nu_everywhere(pipeline):
    fold = os.path.join(pipeline["model"], "fold_0")
    checkpoint = _load(os.path.join(fold, "checkpoint_final.pth"))
    state = checkpoint["tloss_state"]
    assert checkpoint["trainer_name"] == TRAINER
    assert state["nu"] == pytest.approx(float(torch.exp(state["loss"]["log_nu"])), rel=1e-6)
    assert state["nu"] != pytest.approx(1.0, abs=1e-4)  # it was learned
    assert len(checkpoint["logging"]["nu"]) == 2 and checkpoint["logging"]["nu"][-1] == state["nu"]
    with Image.open(os.path.join(fold, "progress.png")) as image:
        assert image.height > 5400  # nnU-Net's 3 panels (5400 px) + the nu panel
    assert os.path.isfile(os.path.join(fold, "validation", "summary.json"))


def test_continue_restores_nu_exactly(pipeline):
    fold = os.path.join(pipeline["model"], "fold_0")
    before = _load(os.path.join(fold, "checkpoint_final.pth"))["tloss_state"]
    result = _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu", "--c"],
                  pipeline["train_env"])
    assert "T-Loss state restored" in result.stdout
    after = _load(os.path.join(fold, "checkpoint_final.pth"))["tloss_state"]
    # --c on a finished run trains 0 epochs and re-saves: anything not restored would be back at its initial value.
    assert torch.equal(after["loss"]["log_nu"], before["loss"]["log_nu"])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(after["nu_optimizer"]["state"][0][key], before["nu_optimizer"]["state"][0][key])


def _predict(pipeline, env: dict, trainer: str, out: str) -> dict[str, np.ndarray]:
    _run(["nnUNetv2_predict", "-i", os.path.join(pipeline["raw"], "imagesTs"), "-o", out, "-d", str(DATASET_ID),
          "-c", "2d", "-f", "0", "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return {n: np.asarray(Image.open(os.path.join(out, n))) for n in sorted(os.listdir(out)) if n.endswith(".png")}


def test_predict_evaluate_and_stock_export(pipeline):
    pred_dir = str(pipeline["root"] / "pred")
    ours = _predict(pipeline, pipeline["train_env"], TRAINER, pred_dir)
    assert sorted(ours) == ["test_000.png", "test_001.png"]
    _run(["nnUNetv2_evaluate_folder", os.path.join(pipeline["raw"], "labelsTs"), pred_dir,
          "-djfile", os.path.join(pipeline["model"], "dataset.json"),
          "-pfile", os.path.join(pipeline["model"], "plans.json")], pipeline["env"])
    with open(os.path.join(pred_dir, "summary.json")) as f:
        summary = json.load(f)
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0 and len(summary["metric_per_case"]) == 2

    # A colleague's results folder, without the plugin: stock nnUNetTrainer predicts identically.
    colleague = pipeline["root"] / "colleague_results"
    out_parent = colleague / os.path.basename(pipeline["raw"])
    assert "exported 2 checkpoint(s)" in _cli(["export-stock", pipeline["model"], str(out_parent), "--quiet"])
    exported = out_parent / "nnUNetTrainer__nnUNetPlans__2d"
    checkpoint = _load(str(exported / "fold_0" / "checkpoint_final.pth"))
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and "tloss_state" not in checkpoint
    stock_env = dict(pipeline["env"], nnUNet_results=str(colleague))
    assert "nnUNet_extTrainer" not in stock_env
    stock = _predict(pipeline, stock_env, "nnUNetTrainer", str(pipeline["root"] / "pred_stock"))
    assert sorted(stock) == sorted(ours)
    for name in ours:
        np.testing.assert_array_equal(stock[name], ours[name])
