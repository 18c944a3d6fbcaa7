"""Helpers of the tests that run the stock nnU-Net commands: the ``tloss-nnunet`` CLI in process, nnU-Net's
console scripts in a subprocess, and one tiny trained T-Loss model shared by the whole session (conftest.py).

The model: a synthetic 2D dataset (8 training cases of 32 x 32, 2 test cases) -> nnUNetv2_plan_and_preprocess ->
nnUNetv2_train fold 0 with ``nnUNetTrainerTLoss_tiny`` found through ``nnUNet_extTrainer`` (~1 min on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tloss_nnunet.cli import main
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

DATASET_ID = 621
TRAINER = "nnUNetTrainerTLoss_tiny"
DATASET_NAME = "Synthetic2D"  # write_synthetic_dataset names a 2D dataset so
BIN = os.path.dirname(sys.executable)


def cli(argv: list[str]) -> str:
    """Run ``tloss-nnunet ARGV`` in process; return its stdout (exit code must be 0)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def run(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run an installed console script (``nnUNetv2_train`` ...) with ``env``; it must exit 0."""
    exe = os.path.join(BIN, args[0]) if os.path.exists(os.path.join(BIN, args[0])) else args[0]
    result = subprocess.run([exe, *args[1:]], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def tiny_model_layout(root: Path) -> dict:
    """The folders, environments and model folder of the tiny model under ``root`` (nothing is trained here).

    ``env`` is stock nnU-Net's view (no ``nnUNet_extTrainer``); ``train_env`` adds the user's recipe,
    ``nnUNet_extTrainer="$(tloss-nnunet ext-path)"``. Built from this process's environment, so each pytest-xdist
    worker gets its own view of a model another worker may have trained.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    # nnU-Net's planner refuses nnUNet_n_proc_DA=0 (torch.set_num_threads); training uses 0 (no augmentation worker).
    base.update(nnUNet_def_n_proc="1", nnUNet_n_proc_DA="1", OMP_NUM_THREADS="1")
    env = nnunet_env(root, device="cpu", base=base, find_trainers=False)
    paths = {k: Path(env[f"nnUNet_{k}"]) for k in ("raw", "preprocessed", "results")}
    raw = os.path.join(paths["raw"], f"Dataset{DATASET_ID:03d}_{DATASET_NAME}")
    ext = cli(["ext-path"]).strip()
    train_env = dict(env, nnUNet_extTrainer=ext, nnUNet_n_proc_DA="0")
    model = os.path.join(paths["results"], os.path.basename(raw), f"{TRAINER}__nnUNetPlans__2d")
    return {"root": root, "raw": raw, "env": env, "train_env": train_env, "model": model, "ext": ext,
            "paths": paths}


def train_tiny_tloss_model(layout: dict) -> None:
    """Write the synthetic dataset, plan and preprocess it, and train fold 0 (the folders of ``layout``)."""
    raw = write_synthetic_dataset(str(layout["paths"]["raw"]), DATASET_ID, "2d", num_train=8, num_test=2, size=32)
    assert raw == layout["raw"], (raw, layout["raw"])
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "--verify_dataset_integrity",
         "-np", "1", "-npfp", "1"], layout["env"])
    run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"], layout["train_env"])


def private_results(model: dict, root: Path) -> dict:
    """A copy of the shared model's results folder under ``root``, for a test that trains into it (``--c``, another
    fold): the other workers keep reading the shared model unchanged. Raw and preprocessed data stay shared."""
    results = root / "nnUNet_results"
    shutil.copytree(model["paths"]["results"], results)
    folder = results / Path(model["model"]).parent.name / Path(model["model"]).name
    env = dict(model["env"], nnUNet_results=str(results))
    train_env = dict(model["train_env"], nnUNet_results=str(results))
    return {**model, "model": str(folder), "env": env, "train_env": train_env,
            "paths": {**model["paths"], "results": results}}
