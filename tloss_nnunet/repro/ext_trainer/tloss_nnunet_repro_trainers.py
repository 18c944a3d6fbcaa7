"""Shim for nnU-Net's external-trainer lookup (``nnUNet_extTrainer``): the reproduction kit's trainers.

Like the library's shim (``tloss_nnunet/nnunet/ext_trainer``), nnU-Net imports this module as a TOP-LEVEL
module, so it is uniquely named, alone in its folder, and uses absolute imports only. The demo and the
robustness study put this folder after the library's (see :func:`tloss_nnunet.repro.trainer_search_path`).
"""

from tloss_nnunet.repro import study_trainers
from tloss_nnunet.repro.demo_trainers import nnUNetTrainer_demo, nnUNetTrainerTLoss_demo
from tloss_nnunet.repro.study_trainers import *  # noqa: F401,F403  (every study trainer)

__all__ = [nnUNetTrainerTLoss_demo.__name__, nnUNetTrainer_demo.__name__, *study_trainers.TRAINER_NAMES]
