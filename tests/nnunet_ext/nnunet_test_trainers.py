"""Trainers only the tests use; nnU-Net finds them through ``nnUNet_extTrainer`` (a path list) after the library's.

``nnUNetTrainerTLoss_tiny`` trains 8 iterations: enough for the stock commands' plumbing, not for a model whose
predictions mean anything (nnU-Net's SGD has momentum 0.99, so 8 steps barely move the network). A test that needs
the audit to find a wrong label trains with :class:`nnUNetTrainerTLoss_audit` instead.
"""

from __future__ import annotations

from tloss_nnunet.nnunet.schedules import Schedule, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss


@on_schedule(Schedule(2, 50, 2))
class nnUNetTrainerTLoss_audit(nnUNetTrainerTLoss):
    """The T-Loss trainer for 2 epochs x 50 iterations (~6 s of training at 32 x 32 on one CPU thread)."""
