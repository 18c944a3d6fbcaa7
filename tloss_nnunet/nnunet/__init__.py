"""nnU-Net v2 integration of the T-Loss: trainers, discovery shim, export to the stock trainer.

Public names (imported lazily, so ``tloss-nnunet`` subcommands that do not train stay fast)::

    from tloss_nnunet.nnunet import nnUNetTrainerTLoss            # subclass it for your own variants
    from tloss_nnunet.nnunet import nnUNetTrainerTLoss_5epochs, nnUNetTrainerTLoss_50epochs
    from tloss_nnunet.nnunet import nnUNetTrainerTLoss_tiny, nnUNetTrainerTLoss_nuPlateau
    from tloss_nnunet.nnunet import NnUNetTLoss, ext_trainer_path

``nnUNetv2_train -tr nnUNetTrainerTLoss`` finds the trainers through ``nnUNet_extTrainer`` set to
``tloss-nnunet ext-path`` (see :func:`ext_trainer_path`).
"""

from __future__ import annotations

import os

from tloss_nnunet.lazy import lazy_attributes

__all__ = [
    "nnUNetTrainerTLoss",
    "nnUNetTrainerTLoss_5epochs",
    "nnUNetTrainerTLoss_50epochs",
    "nnUNetTrainerTLoss_tiny",
    "nnUNetTrainerTLoss_nuPlateau",
    "NnUNetTLoss",
    "ext_trainer_path",
]

_LAZY = {
    "nnUNetTrainerTLoss": "tloss_nnunet.nnunet.trainer",
    "nnUNetTrainerTLoss_5epochs": "tloss_nnunet.nnunet.variants",
    "nnUNetTrainerTLoss_50epochs": "tloss_nnunet.nnunet.variants",
    "nnUNetTrainerTLoss_tiny": "tloss_nnunet.nnunet.variants",
    "nnUNetTrainerTLoss_nuPlateau": "tloss_nnunet.nnunet.variants",
    "NnUNetTLoss": "tloss_nnunet.nnunet.loss_adapter",
}


def ext_trainer_path() -> str:
    """Absolute path of the folder to put in ``nnUNet_extTrainer``: it holds one uniquely named shim module."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
