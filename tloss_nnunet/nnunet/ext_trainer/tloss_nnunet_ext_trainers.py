"""Shim for nnU-Net's external-trainer lookup (``nnUNet_extTrainer``); not meant to be imported directly.

nnU-Net imports every module of a folder listed in ``nnUNet_extTrainer`` as a TOP-LEVEL module and looks up
the ``-tr`` class name in it. This folder therefore holds only this uniquely named module, and it imports the
trainers with absolute imports from the installed package (a relative import would abort nnU-Net's lookup).
"""

from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
from tloss_nnunet.nnunet.variants import (
    nnUNetTrainerDiceCE_tiny,
    nnUNetTrainerTLoss_absolute,
    nnUNetTrainerTLoss_Adam1en3,
    nnUNetTrainerTLoss_cap20,
    nnUNetTrainerTLoss_cap100,
    nnUNetTrainerTLoss_relative,
    nnUNetTrainerTLoss_5epochs,
    nnUNetTrainerTLoss_50epochs,
    nnUNetTrainerTLoss_nuPlateau,
    nnUNetTrainerTLoss_tiny,
)

__all__ = [
    "nnUNetTrainerTLoss",
    "nnUNetTrainerTLoss_5epochs",
    "nnUNetTrainerTLoss_50epochs",
    "nnUNetTrainerTLoss_tiny",
    "nnUNetTrainerTLoss_nuPlateau",
    "nnUNetTrainerDiceCE_tiny",
    "nnUNetTrainerTLoss_absolute",
    "nnUNetTrainerTLoss_relative",
    "nnUNetTrainerTLoss_cap20",
    "nnUNetTrainerTLoss_cap100",
    "nnUNetTrainerTLoss_Adam1en3",
]

# The demo schedule of scripts/demo.sh (tloss_nnunet.demo), T-Loss and stock-loss twins.
from tloss_nnunet.demo_trainers import nnUNetTrainer_demo, nnUNetTrainerTLoss_demo  # noqa: E402,F401
from tloss_nnunet.nnunet.baseline_trainers import *  # noqa: F401,F403  (robustness study's baseline trainers)
