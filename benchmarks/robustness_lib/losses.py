"""Every loss of the study as a module on (logits (B, 2, H, W), label map (B, 1, H, W)) for the MONAI engine.

The baselines are nnU-Net's own classes with the arguments nnU-Net's trainers give them for 2D label maps
(batch Dice, no background, smooth 1e-5), so the in-process engine compares the same losses nnU-Net trains with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from tloss_nnunet import TLoss
from tloss_nnunet.repro.baselines import GeneralizedCrossEntropyLoss
from tloss_nnunet.errors import InputError

from .grid import LOSSES

#: nnU-Net's 2D configuration uses batch Dice; the soft-Dice arguments of its trainers for label maps.
_DICE_KWARGS = {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}


@dataclass
class StudyLoss:
    """A loss module and, for the T-Loss, the module holding nu (its parameters need their own optimiser)."""

    name: str
    module: torch.nn.Module
    tloss: TLoss | None = None

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.module(logits, labels)

    @property
    def nu(self) -> float | None:
        return None if self.tloss is None else self.tloss.nu


def build_study_loss(name: str, gce_q: float = 0.7) -> StudyLoss:
    """Return the study loss ``name`` (one of :data:`~.grid.LOSSES`)."""
    if name == "tloss":
        tloss = TLoss(softmax=True, to_onehot_y=True, include_background=False)
        return StudyLoss(name, tloss, tloss)
    if name == "dice_ce":
        return StudyLoss(name, DC_and_CE_loss(dict(_DICE_KWARGS), {}, weight_ce=1, weight_dice=1,
                                              ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss))
    if name == "ce":
        return StudyLoss(name, RobustCrossEntropyLoss())
    if name == "dice":
        return StudyLoss(name, MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, **_DICE_KWARGS))
    if name == "gce":
        return StudyLoss(name, GeneralizedCrossEntropyLoss(q=gce_q))
    raise InputError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}.")
