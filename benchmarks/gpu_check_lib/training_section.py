"""Section "training": the stock nnU-Net commands with both trainers on a synthetic 2D dataset.

(The smoke run trains the T-Loss trainer's chain only: ``Settings.train_stock``.)

A synthetic 2D dataset (256^2; tiny in the smoke run) is planned in process (nnU-Net's own planning functions),
then, for ``nnUNetTrainer_demo`` (nnU-Net's stock trainer and loss) and ``nnUNetTrainerTLoss_demo`` (the T-Loss),
both on the same short schedule (``TLOSS_DEMO_EPOCHS`` x ``TLOSS_DEMO_ITERATIONS``), in two parallel chains:
``nnUNetv2_train`` -> (T-Loss only) ``nnUNetv2_train --c`` on the finished run -> ``nnUNetv2_predict`` ->
``nnUNetv2_evaluate_folder``, each the real command line (:mod:`tloss_nnunet.repro.pipeline`). On CUDA nnU-Net
trains with AMP and, by default, torch.compile of the network; on CPU with neither.

Checks: every logged training loss is finite; nu moved and is logged once per epoch; ``--c`` restores nu and its
Adam state exactly (the re-saved checkpoint equals the first); predict and evaluate ran (a Dice per case).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tloss_nnunet.nnunet.checkpoint_keys import LOG_NU_KEY, TLOSS_STATE_KEY, TLossState
from tloss_nnunet.repro import pipeline
from tloss_nnunet.repro.demo_trainers import EPOCHS_VARIABLE, ITERATIONS_VARIABLE
from tloss_nnunet.repro.inprocess import plan_and_preprocess_in_process
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

__all__ = ["TRAINERS", "run_training_section"]

DATASET_ID = 991
TRAINERS = ("nnUNetTrainer_demo", "nnUNetTrainerTLoss_demo")
_NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def _environment(work: Path, device: torch.device, settings) -> dict[str, str]:
    """The commands' environment: this process's nnU-Net folders, nnU-Net's compile default on CUDA, the
    demo trainers' schedule, and data-augmentation workers sized for the device (not this process's 0)."""
    base = {k: v for k, v in os.environ.items() if k not in ("nnUNet_n_proc_DA", "nnUNet_def_n_proc", "nnUNet_compile")}
    env = nnunet_env(work, device.type, base=base)
    env.update({k: os.environ[k] for k in _NNUNET_FOLDERS})
    env.update({EPOCHS_VARIABLE: str(settings.train_epochs), ITERATIONS_VARIABLE: str(settings.train_iterations)})
    return env


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _chain(trainer: str, raw: Path, env: dict, device: str, logs: Path) -> dict:
    """Train, (T-Loss) continue, predict and evaluate one trainer; what the checks need."""
    model = pipeline.train(DATASET_ID, trainer, env, device=device, log_file=logs / f"train_{trainer}.log")
    final = model / "fold_0" / pipeline.FINAL_CHECKPOINT
    checkpoint = _load(final)
    logging = checkpoint["logging"]
    found = {"train_losses": [float(v) for v in logging["train_losses"]],
             "amp": checkpoint.get("grad_scaler_state") is not None,
             "compiled": "Using torch.compile" in (logs / f"train_{trainer}.log").read_text()}
    entry = checkpoint.get(TLOSS_STATE_KEY)
    if entry is not None:
        state = TLossState.from_dict(entry)
        found.update(nu=state.nu, log_nu=state.log_nu, nu_logged=list(logging["nu"]))
        log = logs / f"continue_{trainer}.log"
        pipeline.run_nnunet(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", device, "--c"],
                            env, log)
        after = TLossState.from_dict(_load(final)[TLOSS_STATE_KEY])
        found["continue_restored_nu_exactly"] = (
            "T-Loss state restored" in log.read_text()
            and torch.equal(after.loss[LOG_NU_KEY], state.loss[LOG_NU_KEY])
            and all(torch.equal(after.nu_optimizer["state"][0][k], state.nu_optimizer["state"][0][k])
                    for k in ("exp_avg", "exp_avg_sq", "step")))
    predictions = logs.parent / f"pred_{trainer}"
    pipeline.predict(raw / "imagesTs", predictions, DATASET_ID, trainer, env, device=device,
                     log_file=logs / f"predict_{trainer}.log")
    evaluation = pipeline.evaluate(raw / "labelsTs", predictions, DATASET_ID, trainer, env,
                                   log_file=logs / f"evaluate_{trainer}.log")
    found.update(dice_mean=evaluation.dice_mean, dice_per_case=evaluation.per_case)
    return found


def run_training_section(device: torch.device, settings, work: Path) -> dict:
    raw = Path(write_synthetic_dataset(os.environ["nnUNet_raw"], DATASET_ID, "2d", num_train=settings.train_cases,
                                       num_test=settings.test_cases, size=settings.train_size))
    plan_and_preprocess_in_process(DATASET_ID, ("2d",), foreground_samples=settings.fingerprint_samples)
    env = _environment(work, device, settings)
    logs = work / "training_logs"
    logs.mkdir(parents=True, exist_ok=True)
    trainers = TRAINERS if settings.train_stock else TRAINERS[1:]
    with ThreadPoolExecutor(len(trainers)) as pool:  # the two chains share the device; neither is timed
        futures = {t: pool.submit(_chain, t, raw, env, device.type, logs) for t in trainers}
        found = {t: f.result() for t, f in futures.items()}
    ours = found["nnUNetTrainerTLoss_demo"]
    checks = {
        "losses_finite": all(v == v and math.isfinite(v) for r in found.values() for v in r["train_losses"]),
        "nu_moved": ours["log_nu"] != 0.0,  # nu starts at 1 (log nu 0)
        "nu_logged_every_epoch": (len(ours["nu_logged"]) == settings.train_epochs
                                  and math.isclose(ours["nu_logged"][-1], ours["nu"], rel_tol=1e-6)),
        "continue_restores_nu_exactly": ours["continue_restored_nu_exactly"],
        "predict_and_evaluate_ran": all(len(r["dice_per_case"]) == settings.test_cases for r in found.values()),
    }
    if device.type == "cuda":
        checks["amp_on"] = all(r["amp"] for r in found.values())
    result = {"epochs": settings.train_epochs, "iterations": settings.train_iterations, "size": settings.train_size,
              "trainers": found, "logs": str(logs)}
    return {"result": result, "checks": checks}


def training_markdown(result: dict) -> list[str]:
    if not result.get("trainers"):
        return []
    lines = [f"{result['epochs']} epochs x {result['iterations']} iterations, {result['size']}^2", "",
             "| trainer | AMP | compiled | last train loss | final nu | --c exact | test Dice (mean) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in result["trainers"].items():
        nu = f"{r['nu']:.4f}" if "nu" in r else "-"
        exact = r.get("continue_restored_nu_exactly", "-")
        lines.append(f"| {name} | {r['amp']} | {r['compiled']} | {r['train_losses'][-1]:.4f} | {nu} | {exact} | "
                     f"{r['dice_mean']:.3f} |")
    return lines
