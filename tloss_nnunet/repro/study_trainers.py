"""nnU-Net trainers for the robustness study's baselines, on the study's schedules (reproduction kit).

Every loss of the study must train on the same schedule, so each baseline exists in the two schedules the
study uses, named as nnU-Net names its variants (``-tr`` matches class names only):

============  ==============================  ==============================  ==============================
loss          default schedule (1000 epochs)  ``_50epochs`` (GPU study)       ``_tiny`` (smoke, 2 x 4 iters)
============  ==============================  ==============================  ==============================
tloss         nnUNetTrainerTLoss              nnUNetTrainerTLoss_50epochs     nnUNetTrainerTLoss_tiny
dice_ce       nnUNetTrainer                   nnUNetTrainer_50epochs          nnUNetTrainerDiceCE_tiny
ce            nnUNetTrainerCELoss             nnUNetTrainerCELoss_50epochs    nnUNetTrainerCELoss_tiny
dice          nnUNetTrainerDiceLoss           nnUNetTrainerDiceLoss_50epochs  nnUNetTrainerDiceLoss_tiny
gce           nnUNetTrainerGCELoss            nnUNetTrainerGCELoss_50epochs   nnUNetTrainerGCELoss_tiny
============  ==============================  ==============================  ==============================

The T-Loss, Dice+CE, CE and Dice classes of the first two columns are nnU-Net's own or the T-Loss trainer's
(:mod:`tloss_nnunet.nnunet.variants`); this module adds the GCE trainer and the missing schedule twins
(:func:`~tloss_nnunet.nnunet.schedules.on_schedule`), the stock Dice+CE ``_tiny`` twin included.
:data:`STUDY_TRAINERS` is that table as a dict.
"""

from __future__ import annotations

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerCELoss import nnUNetTrainerCELoss
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerDiceLoss import nnUNetTrainerDiceLoss

from tloss_nnunet.nnunet.loss_adapter import deep_supervision_weights
from tloss_nnunet.nnunet.schedules import FIFTY_EPOCHS, TINY, on_schedule
from tloss_nnunet.repro.baselines import GeneralizedCrossEntropyLoss

#: The classes this module defines, for the kit's nnU-Net shim.
TRAINER_NAMES = (
    "nnUNetTrainerDiceCE_tiny",
    "nnUNetTrainerGCELoss",
    "nnUNetTrainerGCELoss_50epochs",
    "nnUNetTrainerGCELoss_tiny",
    "nnUNetTrainerCELoss_50epochs",
    "nnUNetTrainerCELoss_tiny",
    "nnUNetTrainerDiceLoss_50epochs",
    "nnUNetTrainerDiceLoss_tiny",
)
__all__ = ["STUDY_TRAINERS", "TRAINER_NAMES", *TRAINER_NAMES]

#: loss name -> schedule -> trainer class name (see the module docstring).
STUDY_TRAINERS: dict[str, dict[str, str]] = {
    "tloss": {"default": "nnUNetTrainerTLoss", "50epochs": "nnUNetTrainerTLoss_50epochs",
              "tiny": "nnUNetTrainerTLoss_tiny"},
    "dice_ce": {"default": "nnUNetTrainer", "50epochs": "nnUNetTrainer_50epochs",
                "tiny": "nnUNetTrainerDiceCE_tiny"},
    "ce": {"default": "nnUNetTrainerCELoss", "50epochs": "nnUNetTrainerCELoss_50epochs",
           "tiny": "nnUNetTrainerCELoss_tiny"},
    "dice": {"default": "nnUNetTrainerDiceLoss", "50epochs": "nnUNetTrainerDiceLoss_50epochs",
             "tiny": "nnUNetTrainerDiceLoss_tiny"},
    "gce": {"default": "nnUNetTrainerGCELoss", "50epochs": "nnUNetTrainerGCELoss_50epochs",
            "tiny": "nnUNetTrainerGCELoss_tiny"},
}


class nnUNetTrainerGCELoss(nnUNetTrainer):
    """nnU-Net's default trainer with the generalised cross-entropy (q = ``gce_q``) as its loss.

    Label maps only (like nnU-Net's CE variant); the ignore label is honoured and every deep-supervision
    scale gets nnU-Net's weights.
    """

    gce_q: float = 0.7

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise RuntimeError("nnUNetTrainerGCELoss supports label maps only, not region-based training.")
        loss = GeneralizedCrossEntropyLoss(q=self.gce_q, ignore_index=self.label_manager.ignore_label)
        if self.enable_deep_supervision:
            weights = deep_supervision_weights(len(self._get_deep_supervision_scales()),
                                               is_ddp=self.is_ddp, compiled=self._do_i_compile())
            loss = DeepSupervisionWrapper(loss, weights)
        return loss


@on_schedule(TINY)
class nnUNetTrainerDiceCE_tiny(nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE loss) on the ``_tiny`` schedule: the T-Loss ``_tiny`` trainer's twin."""


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerGCELoss_50epochs(nnUNetTrainerGCELoss): ...


@on_schedule(TINY)
class nnUNetTrainerGCELoss_tiny(nnUNetTrainerGCELoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerCELoss_50epochs(nnUNetTrainerCELoss): ...


@on_schedule(TINY)
class nnUNetTrainerCELoss_tiny(nnUNetTrainerCELoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerDiceLoss_50epochs(nnUNetTrainerDiceLoss): ...


@on_schedule(TINY)
class nnUNetTrainerDiceLoss_tiny(nnUNetTrainerDiceLoss): ...
