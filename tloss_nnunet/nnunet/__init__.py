"""nnU-Net v2 integration of the T-Loss: trainers, discovery shim, export to the stock trainer.

Public names (imported lazily, so ``tloss-nnunet`` subcommands that do not train stay fast)::

    from tloss_nnunet.nnunet import nnUNetTrainerTLoss            # subclass it for your own variants
    from tloss_nnunet.nnunet import nnUNetTrainerTLoss_5epochs, nnUNetTrainerTLoss_50epochs
    from tloss_nnunet.nnunet import nnUNetTrainerTLoss_tiny, nnUNetTrainerTLoss_nuPlateau
    from tloss_nnunet.nnunet import NnUNetTLoss, ext_trainer_path

Every trainer of :data:`~tloss_nnunet.nnunet.trainer_names.TRAINER_NAMES` is exported.
``nnUNetv2_train -tr nnUNetTrainerTLoss`` finds the trainers through ``nnUNet_extTrainer`` set to
``tloss-nnunet ext-path`` (see :func:`ext_trainer_path`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes
from tloss_nnunet.nnunet.trainer_names import BASE_TRAINER, TRAINER_NAMES, VARIANT_NAMES

if TYPE_CHECKING:  # what the lazy attributes below resolve to, for type checkers and IDEs ("as": re-exported)
    from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss as NnUNetTLoss
    from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss as nnUNetTrainerTLoss
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_5epochs as nnUNetTrainerTLoss_5epochs
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_50epochs as nnUNetTrainerTLoss_50epochs
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_absolute as nnUNetTrainerTLoss_absolute
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_Adam1en3 as nnUNetTrainerTLoss_Adam1en3
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_cap20 as nnUNetTrainerTLoss_cap20
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_freeze as nnUNetTrainerTLoss_freeze
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_nuPlateau as nnUNetTrainerTLoss_nuPlateau
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_relative as nnUNetTrainerTLoss_relative
    from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_tiny as nnUNetTrainerTLoss_tiny

__all__ = [*TRAINER_NAMES, "NnUNetTLoss", "ext_trainer_path"]

_LAZY = {
    BASE_TRAINER: "tloss_nnunet.nnunet.trainer",
    **dict.fromkeys(VARIANT_NAMES, "tloss_nnunet.nnunet.variants"),
    "NnUNetTLoss": "tloss_nnunet.nnunet.loss_adapter",
}


def ext_trainer_path() -> str:
    """Absolute path of the folder to put in ``nnUNet_extTrainer``: it holds one uniquely named shim module."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
