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

import json
import shutil
import time
from collections.abc import Callable
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
        splits: raw dataset folder -> the ``splits_final.json`` content to install instead of the converter's
            (e.g. a validation split of training cases whose labels stay noisy); None: the converter's file.
    """

    def __init__(self, family: Family, config: StudyConfig, work_dir: Path, device: str = "cpu",
                 splits: Callable[[Path], list[dict]] | None = None) -> None:
        self.family = family
        self.config = config
        self.work_dir = Path(work_dir).resolve()
        self.device = device.split(":")[0]
        self.logs = self.work_dir / "logs"
        self.splits = splits

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
        installed = preprocessed / dataset_dir.name / "splits_final.json"
        if self.splits is not None:
            wanted = self.splits(dataset_dir)
            converter = dataset_dir / "splits_final.json"  # nnU-Net's planner copies it over: replaced by ours
            current = json.loads(installed.read_text()) if installed.exists() else None
            if current is None or (converter.exists() and current == json.loads(converter.read_text())):
                installed.write_text(json.dumps(wanted, indent=1))
            elif current != wanted:  # never train one study on two splits
                raise RuntimeError(f"{installed} holds another split than this study's; remove it or use "
                                   "another work folder")
        elif (dataset_dir / "splits_final.json").exists() and not installed.exists():
            install_splits(dataset_dir, preprocessed)

    def run(self, setting: str, arm: str, seed: int, extra_checkpoints: tuple[str, ...] = ()) -> dict:
        """Train, predict and evaluate one run; return its record.

        ``extra_checkpoints`` (e.g. ``checkpoint_best.pth``): also predicted and evaluated, into the record's
        ``checkpoints`` ({name: {"dice_mean", "dice_pooled"}}), with nnU-Net's own training log (``nnunet_log``:
        per epoch the pseudo Dice on the validation split and its moving average)."""
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
        extra: dict = {}
        if extra_checkpoints:
            extra["checkpoints"] = {name: self._score_checkpoint(name, dataset_id, dataset_dir, trainer, env,
                                                                 predictions, logs)
                                    for name in extra_checkpoints}
            extra["nnunet_log"] = training_log(checkpoint)
        return {**extra,
            "setting": setting, "alpha": alpha, "beta": beta, "loss": arm, "seed": seed,
            "dice_mean": scores.dice_mean, "dice_pooled": scores.dice_pooled, "nu_final": read_nu(checkpoint),
            "wall_s": round(time.perf_counter() - start, 2), "engine": ENGINE, "config": self.config.name,
            "iterations": self.config.iterations, "trainer": trainer, "seeded": False, "model_reused": reused,
            "machine": machine_description(self.device),
        }


    def _score_checkpoint(self, name: str, dataset_id: int, dataset_dir: Path, trainer: str, env: dict[str, str],
                          final_predictions: Path, logs: Path) -> dict:
        """Clean-test Dice of the run's checkpoint ``name`` (predicted beside the final checkpoint's predictions)."""
        folder = pipeline.model_folder(dataset_id, trainer, env, CONFIGURATION) / f"fold_{FOLD}"
        checkpoint = folder / name
        if not checkpoint.is_file():
            raise RuntimeError(f"{checkpoint} does not exist (nnU-Net writes it during training)")
        predictions = final_predictions.with_name(f"{final_predictions.name}__{Path(name).stem}")
        if _older_than(predictions, checkpoint):
            shutil.rmtree(predictions)
        stem = Path(name).stem
        pipeline.predict(dataset_dir / "imagesTs", predictions, dataset_id, trainer, env, fold=FOLD,
                         configuration=CONFIGURATION, device=self.device, log_file=logs / f"predict_{stem}.log",
                         checkpoint=name)
        scores = pipeline.evaluate(dataset_dir / "labelsTs", predictions, dataset_id, trainer, env,
                                   configuration=CONFIGURATION, log_file=logs / f"evaluate_{stem}.log")
        return {"dice_mean": scores.dice_mean, "dice_pooled": scores.dice_pooled}


def training_log(checkpoint: Path) -> dict[str, list[float]]:
    """nnU-Net's per-epoch log kept in a checkpoint: ``mean_fg_dice`` (pseudo Dice on the validation split) and
    ``ema_fg_dice`` (its moving average, which picks ``checkpoint_best.pth``)."""
    import torch

    logging = torch.load(checkpoint, map_location="cpu", weights_only=False).get("logging", {})
    return {key: [float(v) for v in logging.get(key, [])] for key in ("mean_fg_dice", "ema_fg_dice")}


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
