"""Shim for nnU-Net's external-trainer lookup (``nnUNet_extTrainer``); not meant to be imported directly.

nnU-Net imports every module of a folder listed in ``nnUNet_extTrainer`` as a TOP-LEVEL module and looks up
the ``-tr`` class name in it. This folder therefore holds only this uniquely named module, and it imports the
trainers with absolute imports from the installed package (a relative import would abort nnU-Net's lookup).
It exposes the library's trainers only; the reproduction kit's (demo, study baselines) have their own shim,
``tloss_nnunet/repro/ext_trainer``.
"""

from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss  # noqa: F401
from tloss_nnunet.nnunet.trainer_names import TRAINER_NAMES
from tloss_nnunet.nnunet.variants import *  # noqa: F401,F403  (every variant, as listed in variants.__all__)

__all__ = list(TRAINER_NAMES)
