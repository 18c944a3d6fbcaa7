"""The stock-command engine: one run = nnU-Net's own commands on one dataset of the family.

The commands run through :mod:`tloss_nnunet.repro.pipeline` (resumable steps, logs) in the environment of
:func:`tloss_nnunet.repro.nnunet_env.nnunet_env`. Per dataset (once): ``nnUNetv2_plan_and_preprocess -d ID -c 2d``
and the converter's ``splits_final.json`` (fold 0 = the training cases; the clean validation cases validate)
installed in ``nnUNet_preprocessed``. Per run: ``nnUNetv2_train ID 2d 0 -tr <trainer>``, ``nnUNetv2_predict`` on
``imagesTs`` and ``nnUNetv2_evaluate_folder`` against the clean ``labelsTs``. The trainer is the arm's twin on the
configuration's schedule (:func:`~.arms.trainer_name`); schedule ``"study"`` trains the configuration's own sizes
(``TLOSS_STUDY_SIZES``, read by the kit's ``_study`` trainers). Each command's output goes to a log file under
``<work_dir>/logs``.

Seeds: nnU-Net does not seed its training, so "seed" k is the k-th independent repetition (the comparison is
unpaired); each gets its own ``nnUNet_results`` (``results_seed<k>``). A model or prediction finished by an
interrupted study is reused, as the pipeline's steps do (``model_reused`` in the record). dice_mean is nnU-Net's
mean of the per-case foreground Dice, dice_pooled 2 TP / (|prediction| + |ground truth|) over all test pixels.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tloss_nnunet.converters.publish import install_splits
from tloss_nnunet.repro import pipeline
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.study_trainers import STUDY_SIZES_VARIABLE, study_sizes

from .arms import trainer_name
from .config import StudyConfig
from .data import Family
from .grid import parse_setting
from .store import machine_description

__all__ = ["ENGINE", "CommandEngine", "read_nu"]

ENGINE = "nnunet-commands"
CONFIGURATION = "2d"
FOLD = 0


class CommandEngine:
    """Runs of one study on one dataset family through nnU-Net's command-line tools.

    Args:
        family: the converted datasets (:func:`~.data.prepare_family`).
        config: its ``schedule`` picks the trainers.
        work_dir: holds ``nnUNet_preprocessed``, ``results_seed<k>``, ``predictions`` and ``logs``.
        device: ``cpu`` or ``cuda`` (nnU-Net's ``-device``).
    """

    def __init__(self, family: Family, config: StudyConfig, work_dir: Path, device: str = "cpu") -> None:
        self.family = family
        self.config = config
        self.work_dir = Path(work_dir).resolve()
        self.device = device.split(":")[0]
        self.logs = self.work_dir / "logs"

    def env(self, seed: int) -> dict[str, str]:
        """Environment of nnU-Net's commands for repetition ``seed`` (its own ``nnUNet_results``)."""
        env = nnunet_env(self.work_dir, self.device, raw=self.family.raw,
                         results=self.work_dir / f"results_seed{seed}")
        if self.config.schedule == "study":
            env[STUDY_SIZES_VARIABLE] = study_sizes(self.config.iterations, self.config.iterations_per_epoch,
                                                    self.config.batch_size, self.config.features)
        return env

    def ensure_preprocessed(self, dataset_id: int, dataset_dir: Path, env: dict[str, str]) -> None:
        """Plan and preprocess once per dataset; install the converter's split file."""
        pipeline.plan_and_preprocess(dataset_id, env, configurations=(CONFIGURATION,),
                                     log_file=self.logs / f"{dataset_dir.name}.plan_and_preprocess.log")
        preprocessed = Path(env["nnUNet_preprocessed"])
        if (dataset_dir / "splits_final.json").exists() and not (preprocessed / dataset_dir.name
                                                                   / "splits_final.json").exists():
            install_splits(dataset_dir, preprocessed)

    def run(self, setting: str, arm: str, seed: int) -> dict:
        """Train, predict and evaluate one run; return its record."""
        start = time.perf_counter()
        alpha, beta = parse_setting(setting)
        dataset_id, dataset_dir = self.family.dataset(setting)
        env = self.env(seed)
        self.ensure_preprocessed(dataset_id, dataset_dir, env)
        trainer = trainer_name(arm, self.config.schedule)
        logs = self.logs / f"seed{seed}" / dataset_dir.name / trainer
        checkpoint = (pipeline.model_folder(dataset_id, trainer, env, CONFIGURATION) / f"fold_{FOLD}"
                      / pipeline.FINAL_CHECKPOINT)
        reused = checkpoint.is_file()  # then its training time is not part of wall_s, which the record says
        pipeline.train(dataset_id, trainer, env, fold=FOLD, configuration=CONFIGURATION, device=self.device,
                       log_file=logs / "train.log")
        predictions = self.work_dir / "predictions" / f"seed{seed}" / dataset_dir.name / trainer
        if _older_than(predictions, checkpoint):  # left by an earlier model of this run: predict afresh
            shutil.rmtree(predictions)
        pipeline.predict(dataset_dir / "imagesTs", predictions, dataset_id, trainer, env, fold=FOLD,
                         configuration=CONFIGURATION, device=self.device, log_file=logs / "predict.log")
        scores = pipeline.evaluate(dataset_dir / "labelsTs", predictions, dataset_id, trainer, env,
                                   configuration=CONFIGURATION, log_file=logs / "evaluate.log")
        return {
            "setting": setting, "alpha": alpha, "beta": beta, "loss": arm, "seed": seed,
            "dice_mean": scores.dice_mean, "dice_pooled": scores.dice_pooled, "nu_final": read_nu(checkpoint),
            "wall_s": round(time.perf_counter() - start, 2), "engine": ENGINE, "config": self.config.name,
            "iterations": self.config.iterations, "trainer": trainer, "seeded": False, "model_reused": reused,
            "machine": machine_description(self.device),
        }


def _older_than(folder: Path, reference: Path) -> bool:
    """True when ``folder`` holds a file older than ``reference``."""
    if not folder.is_dir():
        return False
    limit = reference.stat().st_mtime
    return any(p.stat().st_mtime < limit for p in folder.iterdir() if p.is_file())


def read_nu(checkpoint: Path) -> float | None:
    """nu at the end of training from a T-Loss trainer's checkpoint (None for other trainers)."""
    import torch

    from tloss_nnunet.nnunet.checkpoint_keys import TLOSS_STATE_KEY, TLossState

    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get(TLOSS_STATE_KEY)
    return None if state is None else TLossState.from_dict(state).nu
