"""The nnU-Net engine: one run = nnU-Net's own commands on one dataset of the family.

The commands are run through :mod:`tloss_nnunet.repro.pipeline` (its environment, resumable steps and logs).
Per dataset (once): :func:`~tloss_nnunet.repro.pipeline.plan_and_preprocess` (``nnUNetv2_plan_and_preprocess -d ID
-c 2d``) and the converter's ``splits_final.json`` (fold 0 = train on the training cases, validate on the
clean validation cases) copied into ``nnUNet_preprocessed``. Per run: :func:`~tloss_nnunet.repro.pipeline.train`
(``nnUNetv2_train ID 2d 0 -tr <trainer>``), :func:`~tloss_nnunet.repro.pipeline.predict` on ``imagesTs`` and
:func:`~tloss_nnunet.repro.pipeline.evaluate` (``nnUNetv2_evaluate_folder``) against the clean ``labelsTs``. The
trainer per loss and schedule comes from ``tloss_nnunet.repro.study_trainers.STUDY_TRAINERS``; nnU-Net
finds the baseline trainers through the reproduction kit's ``nnUNet_extTrainer`` shim. Each command's output goes
to a log file under ``<work_dir>/logs``.

Seeds: nnU-Net does not seed its training, so "seed" k is the k-th independent repetition; each one gets
its own ``nnUNet_results`` folder (``results_seed<k>``). A run whose training or prediction already finished
(an interrupted study run again) reuses them, as the pipeline's steps do. dice_mean is nnU-Net's mean of the
per-case foreground Dice (``summary.json``), dice_pooled the Dice over all test pixels pooled:
2 TP / (|prediction| + |ground truth|) summed over all test cases. nu_final is read from the T-Loss
checkpoint's ``tloss_state``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import torch

from tloss_nnunet.repro import pipeline
from tloss_nnunet.converters.publish import install_splits
from tloss_nnunet.repro.study_trainers import STUDY_TRAINERS

from .data import Family
from .grid import StudyConfig, parse_setting

CONFIGURATION = "2d"
FOLD = 0


class NnUNetStudy:
    """Runs of one study on one dataset family through nnU-Net's command-line tools.

    Args:
        family: the converted datasets (from :func:`~.data.prepare_family`).
        config: its ``nnunet_schedule`` picks the trainers (``"tiny"``, ``"50epochs"`` or ``"default"``).
        work_dir: holds ``nnUNet_preprocessed``, ``results_seed<k>``, ``predictions`` and ``logs``.
        device: ``cpu`` or ``cuda`` (nnU-Net's ``-device``).
    """

    def __init__(self, family: Family, config: StudyConfig, work_dir: Path, device: str = "cpu") -> None:
        self.family = family
        self.config = config
        self.work_dir = Path(work_dir).resolve()
        self.device = device.split(":")[0]
        self.logs = self.work_dir / "logs"
        # nnU-Net's folders under work_dir, the package's trainer shim, worker counts for this machine; the raw
        # datasets are the family's.
        self._env = pipeline.nnunet_env(self.work_dir, device=self.device)
        self._env["nnUNet_raw"] = str(Path(family.raw).resolve())
        for unused in ("nnUNet_raw", "nnUNet_results"):  # made by nnunet_env; results go to results_seed<k>
            with contextlib.suppress(OSError):
                (self.work_dir / unused).rmdir()

    def env(self, seed: int) -> dict[str, str]:
        """Environment of nnU-Net's commands for repetition ``seed`` (its own ``nnUNet_results``)."""
        results = self.work_dir / f"results_seed{seed}"
        results.mkdir(parents=True, exist_ok=True)
        return {**self._env, "nnUNet_results": str(results)}

    def ensure_preprocessed(self, dataset_id: int, dataset_dir: Path) -> None:
        """Plan and preprocess once per dataset; install the converter's split file."""
        pipeline.plan_and_preprocess(dataset_id, self._env, configurations=(CONFIGURATION,),
                                     log_file=self.logs / f"{dataset_dir.name}.plan_and_preprocess.log")
        preprocessed = Path(self._env["nnUNet_preprocessed"])
        installed = preprocessed / dataset_dir.name / "splits_final.json"
        if (dataset_dir / "splits_final.json").exists() and not installed.exists():
            install_splits(dataset_dir, preprocessed)

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
        logs = self.logs / f"seed{seed}" / dataset_dir.name / trainer
        # A model finished by an interrupted earlier study is reused (that is the resume); its training time is
        # then not part of wall_s, which the record says.
        reused = (pipeline.model_folder(dataset_id, trainer, env, CONFIGURATION) / f"fold_{FOLD}"
                  / pipeline.FINAL_CHECKPOINT).is_file()
        model_dir = pipeline.train(dataset_id, trainer, env, fold=FOLD, configuration=CONFIGURATION,
                                   device=self.device, log_file=logs / "train.log")
        checkpoint = model_dir / f"fold_{FOLD}" / pipeline.FINAL_CHECKPOINT
        predictions = self.work_dir / "predictions" / f"seed{seed}" / dataset_dir.name / trainer
        if _older_than(predictions, checkpoint):  # left by an earlier model of this run: predict afresh
            shutil.rmtree(predictions)
        pipeline.predict(dataset_dir / "imagesTs", predictions, dataset_id, trainer, env, fold=FOLD,
                         configuration=CONFIGURATION, device=self.device, log_file=logs / "predict.log")
        scores = pipeline.evaluate(dataset_dir / "labelsTs", predictions, dataset_id, trainer, env,
                                   configuration=CONFIGURATION, log_file=logs / "evaluate.log")
        return {
            "setting": setting, "alpha": alpha, "beta": beta, "loss": loss, "seed": seed,
            "dice_mean": scores.dice_mean, "dice_pooled": scores.dice_pooled,
            "nu_final": read_nu(checkpoint) if loss == "tloss" else None,
            "wall_s": round(time.perf_counter() - start, 2),
            "engine": "nnunet", "config": self.config.name, "trainer": trainer, "seeded": False,
            "model_reused": reused,
        }


def _older_than(folder: Path, reference: Path) -> bool:
    """True when ``folder`` holds a file older than ``reference``."""
    if not folder.is_dir():
        return False
    limit = reference.stat().st_mtime
    return any(p.stat().st_mtime < limit for p in folder.iterdir() if p.is_file())


def read_nu(checkpoint: Path) -> float | None:
    """nu at the end of training from a T-Loss trainer's checkpoint (``tloss_state['nu']``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get("tloss_state")
    return None if state is None else float(state["nu"])
