"""The nnU-Net engine: one run = nnU-Net's own commands on one dataset of the family.

Per dataset (once): ``nnUNetv2_plan_and_preprocess -d ID -c 2d`` and the converter's ``splits_final.json``
(fold 0 = train on the training cases, validate on the clean validation cases) copied into
``nnUNet_preprocessed``. Per run: ``nnUNetv2_train ID 2d 0 -tr <trainer>``, ``nnUNetv2_predict`` on
``imagesTs`` and ``nnUNetv2_evaluate_folder`` against the clean ``labelsTs``. The trainer per loss and
schedule comes from ``tloss_nnunet.nnunet.baseline_trainers.STUDY_TRAINERS``.

Seeds: nnU-Net does not seed its training, so "seed" k is the k-th independent repetition; each one gets
its own ``nnUNet_results`` folder. dice_mean is nnU-Net's ``foreground_mean`` Dice (mean over cases),
dice_pooled is computed from the per-case TP/FP/FN counts of the same summary: 2 TP / (2 TP + FP + FN)
summed over all test cases. nu_final is read from the T-Loss checkpoint's ``tloss_state``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import torch

from tloss_nnunet.nnunet import ext_trainer_path
from tloss_nnunet.nnunet.baseline_trainers import STUDY_TRAINERS

from .data import Family
from .grid import StudyConfig, parse_setting

#: Module written into the study's own external-trainer folder: nnU-Net imports it as a top-level module
#: (hence the unique name and the absolute import) and finds the baseline trainers in it.
_SHIM_NAME = "tloss_nnunet_robustness_trainers.py"
_SHIM_TEXT = '"""Baseline trainers of the robustness study, for nnU-Net\'s nnUNet_extTrainer lookup."""\n' \
             "from tloss_nnunet.nnunet.baseline_trainers import *  # noqa: F401,F403\n"


class NnUNetStudy:
    """Runs of one study on one dataset family through nnU-Net's command-line tools.

    Args:
        family: the converted datasets (from :func:`~.data.prepare_family`).
        config: its ``nnunet_schedule`` picks the trainers (``"tiny"``, ``"50epochs"`` or ``"default"``).
        work_dir: holds ``nnUNet_preprocessed``, ``results_seed<k>``, ``predictions`` and the trainer shim.
        device: ``cpu`` or ``cuda`` (nnU-Net's ``-device``).
    """

    def __init__(self, family: Family, config: StudyConfig, work_dir: Path, device: str = "cpu") -> None:
        self.family = family
        self.config = config
        self.work_dir = Path(work_dir)
        self.device = device.split(":")[0]
        self.preprocessed = self.work_dir / "nnUNet_preprocessed"
        shim_dir = self.work_dir / "ext_trainers"
        shim_dir.mkdir(parents=True, exist_ok=True)
        (shim_dir / _SHIM_NAME).write_text(_SHIM_TEXT)
        self.ext_trainer = os.pathsep.join([ext_trainer_path(), str(shim_dir)])

    def env(self, seed: int) -> dict[str, str]:
        """Environment of nnU-Net's commands for repetition ``seed``."""
        env = dict(os.environ)
        env.update({
            "nnUNet_raw": str(self.family.raw),
            "nnUNet_preprocessed": str(self.preprocessed),
            "nnUNet_results": str(self.work_dir / f"results_seed{seed}"),
            "nnUNet_extTrainer": self.ext_trainer,
        })
        if self.device == "cpu":
            env.setdefault("nnUNet_compile", "0")
            env.setdefault("nnUNet_n_proc_DA", "1")
            env.setdefault("nnUNet_def_n_proc", "1")
        return env

    def _command(self, args: list[str], env: dict[str, str]) -> None:
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                               f"{result.stderr[-3000:]}")

    def ensure_preprocessed(self, dataset_id: int, dataset_dir: Path) -> None:
        """Plan and preprocess once per dataset; install the converter's split file."""
        target = self.preprocessed / dataset_dir.name
        if not (target / "nnUNetPlans.json").exists() or not (target / "nnUNetPlans_2d").exists():
            processes = str(max(1, (os.cpu_count() or 2) // 2))
            self._command(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "2d", "-np", processes,
                           "--verify_dataset_integrity"], self.env(0))
        splits = dataset_dir / "splits_final.json"
        if splits.exists() and not (target / "splits_final.json").exists():
            shutil.copyfile(splits, target / "splits_final.json")

    def trainer_name(self, loss: str) -> str:
        return STUDY_TRAINERS[loss][self.config.nnunet_schedule]

    def run(self, setting: str, loss: str, seed: int) -> dict:
        """Train, predict and evaluate one run; return its record (everything but ``machine``)."""
        start = time.perf_counter()
        alpha, beta = parse_setting(setting)
        dataset_id, dataset_dir = self.family.dataset(setting)
        self.ensure_preprocessed(dataset_id, dataset_dir)
        trainer = self.trainer_name(loss)
        env = self.env(seed)
        self._command(["nnUNetv2_train", str(dataset_id), "2d", "0", "-tr", trainer, "-device", self.device], env)
        model_dir = (Path(env["nnUNet_results"]) / dataset_dir.name / f"{trainer}__nnUNetPlans__2d")
        predictions = self.work_dir / "predictions" / f"seed{seed}" / dataset_dir.name / trainer
        if predictions.exists():
            shutil.rmtree(predictions)
        self._command(["nnUNetv2_predict", "-i", str(dataset_dir / "imagesTs"), "-o", str(predictions),
                       "-d", str(dataset_id), "-c", "2d", "-f", "0", "-tr", trainer, "-device", self.device,
                       "-npp", "1", "-nps", "1", "--disable_progress_bar"], env)
        self._command(["nnUNetv2_evaluate_folder", str(dataset_dir / "labelsTs"), str(predictions),
                       "-djfile", str(model_dir / "dataset.json"), "-pfile", str(model_dir / "plans.json")], env)
        dice_mean, dice_pooled = read_summary(predictions / "summary.json")
        return {
            "setting": setting, "alpha": alpha, "beta": beta, "loss": loss, "seed": seed,
            "dice_mean": dice_mean, "dice_pooled": dice_pooled,
            "nu_final": read_nu(model_dir / "fold_0" / "checkpoint_final.pth") if loss == "tloss" else None,
            "wall_s": round(time.perf_counter() - start, 2),
            "engine": "nnunet", "config": self.config.name, "trainer": trainer, "seeded": False,
        }


def read_summary(summary_json: Path) -> tuple[float, float]:
    """(mean of per-case foreground Dice, pooled Dice) from nnU-Net's evaluation ``summary.json``."""
    summary = json.loads(Path(summary_json).read_text())
    dice_mean = float(summary["foreground_mean"]["Dice"])
    tp = fp = fn = 0.0
    for case in summary["metric_per_case"]:
        for metrics in case["metrics"].values():  # one entry per foreground label (one here: the lesion)
            tp, fp, fn = tp + metrics["TP"], fp + metrics["FP"], fn + metrics["FN"]
    pooled = float("nan") if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return dice_mean, pooled


def read_nu(checkpoint: Path) -> float | None:
    """nu at the end of training from a T-Loss trainer's checkpoint (``tloss_state['nu']``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get("tloss_state")
    return None if state is None else float(state["nu"])
