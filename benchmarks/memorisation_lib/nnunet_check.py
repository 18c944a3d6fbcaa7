"""The study's check inside nnU-Net: the stock commands (plan, ``nnUNetv2_train``, predict, evaluate) on the same
converted datasets, stock ``nnUNetTrainer`` against the default ``nnUNetTrainerTLoss``, both on the study's
schedule and network width (the trainers of ``ext_trainer/``, found through ``nnUNet_extTrainer``).

It is :class:`robustness_lib.nnunet_engine.NnUNetStudy` (one ``nnUNet_results`` per repetition, resumable
steps, clean-test Dice from ``nnUNetv2_evaluate_folder``) with this study's trainers; nnU-Net does not seed
its training, so "seed" k is the k-th repetition and the comparison is unpaired.
"""

from __future__ import annotations

import os
from pathlib import Path

from robustness_lib.data import Family
from robustness_lib.nnunet_engine import NnUNetStudy

from .config import CONFIG_VARIABLE, MemoConfig

#: Arm -> trainer of ``ext_trainer/tloss_memorisation_trainers.py``.
NNUNET_ARMS: dict[str, str] = {"dice_ce": "nnUNetTrainer_memorisation", "tloss": "nnUNetTrainerTLoss_memorisation"}
SHIM_FOLDER = Path(__file__).resolve().parent / "ext_trainer"


class MemorisationNnUNetCheck(NnUNetStudy):
    """:class:`NnUNetStudy` with the memorisation study's trainers on top of the package's trainer shim."""

    def __init__(self, family: Family, config: MemoConfig, work_dir: Path, device: str = "cpu") -> None:
        super().__init__(family, config, work_dir, device)
        self._env["nnUNet_extTrainer"] = os.pathsep.join([self._env["nnUNet_extTrainer"], str(SHIM_FOLDER)])
        self._env[CONFIG_VARIABLE] = config.name

    def trainer_name(self, loss: str) -> str:
        return NNUNET_ARMS[loss]

    def run(self, setting: str, loss: str, seed: int) -> dict:
        record = super().run(setting, loss, seed)
        record.update(engine="nnunet-commands", config=self.config.name, iterations=self.config.iterations)
        return record
