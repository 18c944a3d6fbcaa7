"""Shim for nnU-Net's external-trainer lookup (``nnUNet_extTrainer``): the reproduction kit's trainers.

Like the library's shim (``tloss_nnunet/nnunet/ext_trainer``), nnU-Net imports this module as a TOP-LEVEL
module, so it is uniquely named, alone in its folder, and uses absolute imports only. The demo and the
robustness study put this folder after the library's (see :func:`tloss_nnunet.repro.trainer_search_path`).
"""

from tloss_nnunet.repro.demo_trainers import nnUNetTrainer_demo, nnUNetTrainerTLoss_demo
from tloss_nnunet.repro.study_trainers import (
    nnUNetTrainerCELoss_50epochs,
    nnUNetTrainerCELoss_tiny,
    nnUNetTrainerDiceCE_tiny,
    nnUNetTrainerDiceLoss_50epochs,
    nnUNetTrainerDiceLoss_tiny,
    nnUNetTrainerGCELoss,
    nnUNetTrainerGCELoss_50epochs,
    nnUNetTrainerGCELoss_tiny,
)

__all__ = [
    "nnUNetTrainerTLoss_demo",
    "nnUNetTrainer_demo",
    "nnUNetTrainerDiceCE_tiny",
    "nnUNetTrainerGCELoss",
    "nnUNetTrainerGCELoss_50epochs",
    "nnUNetTrainerGCELoss_tiny",
    "nnUNetTrainerCELoss_50epochs",
    "nnUNetTrainerCELoss_tiny",
    "nnUNetTrainerDiceLoss_50epochs",
    "nnUNetTrainerDiceLoss_tiny",
]
