"""The inputs of each command the fault harness hits, and its clean (reference) run: :func:`prepare`.

``suspects`` needs a trained model: a really tiny one, trained with the stock commands (a synthetic 2D dataset of
8 training cases of 32 x 32, ``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train`` fold 0 with
``nnUNetTrainerTLoss_tiny`` found through ``nnUNet_extTrainer``; about a minute on two cores), or one trained
elsewhere (the tests' shared model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.fault_lib import Scenario, digest

DATASET_ID = 623
REPAIRED_ID = 624
TRAINER = "nnUNetTrainerTLoss_tiny"


def _stock(args: list[str], env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / args[0]
    done = subprocess.run([str(script) if script.is_file() else args[0], *args[1:]], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr[-2000:]}")


def train_tiny_model(root: Path) -> tuple[str, dict[str, str]]:
    """Train the model under ``root``; return its folder and the nnU-Net variables (``nnUNet_raw`` ...)."""
    from tloss_nnunet.repro.nnunet_env import nnunet_env
    from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

    base = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    base.update(nnUNet_def_n_proc="1", nnUNet_n_proc_DA="1", OMP_NUM_THREADS="1")
    env = nnunet_env(root, device="cpu", base=base)
    raw = write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, "2d", num_train=8, num_test=2, size=32)
    _stock(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "-npfp", "1"], env)
    _stock(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu"],
           dict(env, nnUNet_n_proc_DA="0"))
    model = Path(env["nnUNet_results"]) / Path(raw).name / f"{TRAINER}__nnUNetPlans__2d"
    return str(model), {k: v for k, v in env.items() if k.startswith("nnUNet_")}


def _write_masks(folder: Path, n: int = 24) -> None:
    import cv2
    import numpy as np

    from tloss_nnunet.noise.synthetic import lesion_like_mask

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"ISIC_{i:07d}.png"), lesion_like_mask(rng, (64, 80)).astype(np.uint8) * 255)


def _write_model(root: Path) -> Path:
    import torch

    folder = root / "Dataset777_X" / "nnUNetTrainerTLoss_5epochs__nnUNetPlans__2d"
    folder.mkdir(parents=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        (folder / name).write_text(json.dumps({"name": name}))
    for fold in range(3):
        (folder / f"fold_{fold}").mkdir()
        for kind in ("final", "best"):
            torch.save({"network_weights": {"w": torch.full((64, 64), float(fold))},
                        "trainer_name": "nnUNetTrainerTLoss_5epochs", "init_args": {"configuration": "2d"},
                        "logging": {"train_losses": [1.0], "nu": [1.5]}, "tloss_state": {"nu": 1.5}},
                       folder / f"fold_{fold}" / f"checkpoint_{kind}.pth")
    return folder


def prepare(command: str, work: Path, workers: int = 2, verify: bool = False,
            model: tuple[str, dict] | None = None) -> Scenario:
    """Write the inputs of ``command`` under ``work`` and measure one clean run (the reference).

    ``model``: for ``suspects`` and ``repair`` (which repairs an audit of it), (model folder, nnU-Net variables) of
    a trained model; default: train a tiny one.
    """
    work.mkdir(parents=True, exist_ok=True)
    if command == "noise":
        _write_masks(work / "masks")
        scenario = Scenario(command, work / "masks", ["noise", str(work / "masks"), "{out}", "--alpha", "0.3",
                                                      "0.7", "--beta", "0.5", "--workers", str(workers),
                                                      "--overwrite", "--quiet"])
    elif command == "convert":
        from tloss_nnunet.converters import write_synthetic_isic2017

        release = write_synthetic_isic2017(work / "release", n_train=6, n_val=1, n_test=1, seed=3,
                                           min_size=100, max_size=160)
        scenario = Scenario(command, release, ["convert", "isic2017", str(release), "--out", "{out}", "--alpha",
                                               "0.5", "--beta", "0.5", "--workers", str(workers), "--quiet",
                                               *([] if verify else ["--no-verify"])])
    elif command == "export":
        stock = _write_model(work / "results")
        scenario = Scenario(command, stock.parent, ["export-stock", str(stock), "{out}", "--overwrite", "--quiet"])
    elif command == "suspects":
        folder, env = model or train_tiny_model(work / "nnunet")
        scenario = Scenario(command, Path(folder), suspects_args(folder), env={**env, "OMP_NUM_THREADS": "1"},
                            foreign_inside=True)
    elif command == "repair":  # an audit of the tiny model, then a new dataset from it
        folder, env = model or train_tiny_model(work / "nnunet")
        env = {**env, "OMP_NUM_THREADS": "1"}
        audit = work / "audit"
        done = subprocess.run(Scenario("suspects", Path(folder), suspects_args(folder)).argv(audit),
                              capture_output=True, text=True, timeout=600, env={**os.environ, **env})
        if done.returncode != 0:
            raise RuntimeError(f"the audit for repair failed: {done.stderr[-2000:]}")
        scenario = Scenario(command, audit, ["repair", str(audit), "--out-id", str(REPAIRED_ID), "--out", "{out}",
                                             "--mode", "ignore", "--fraction", "0.5"], env=env)
    else:
        raise ValueError(f"unknown command {command!r}")
    # Two clean runs: the faster one's duration scales the delays (the first can pay for a cold cache), and
    # their outputs must agree (else "changed" would mean nothing).
    for out in (work / "reference-2", work / "reference"):
        started = time.perf_counter()
        done = subprocess.run(scenario.argv(out), capture_output=True, text=True, timeout=600,
                              env={**os.environ, **scenario.env})
        seconds = time.perf_counter() - started
        scenario.seconds = min(seconds, scenario.seconds or seconds)
        if done.returncode != 0:
            raise RuntimeError(f"clean {command} run failed: {done.stderr}")
    if digest(out) != digest(work / "reference-2"):
        raise RuntimeError(f"two clean {command} runs wrote different outputs")
    scenario.reference = digest(out)
    return scenario


def suspects_args(model: str) -> list[str]:
    """``suspects`` on CPU with one preprocessing and two export processes (what a fault can hit: nnU-Net's
    manager, its spawned preprocessing process, its export pool, the resource tracker)."""
    return ["suspects", model, "-o", "{out}", "-device", "cpu", "-npp", "1", "-nps", "2", "--quiet"]
