"""The library's public nnU-Net trainers, by name: the one list the package, the nnU-Net shim and the export read.

Names only (this module imports nothing), so ``tloss_nnunet.nnunet`` and ``export-stock`` can read the list
without loading torch or nnU-Net. ``BASE_TRAINER`` lives in :mod:`.trainer`, the rest in :mod:`.variants`
(``tests/test_nnunet_export_cli.py`` checks both modules and the shim against this list). The reproduction
kit's trainers (demo, study baselines) are not here: they have their own shim.
"""

from __future__ import annotations

__all__ = ["BASE_TRAINER", "TRAINER_NAMES", "VARIANT_NAMES"]

BASE_TRAINER = "nnUNetTrainerTLoss"
#: The subclasses of :mod:`.variants`, in its order.
VARIANT_NAMES = (
    "nnUNetTrainerTLoss_5epochs",
    "nnUNetTrainerTLoss_50epochs",
    "nnUNetTrainerTLoss_tiny",
    "nnUNetTrainerTLoss_absolute",
    "nnUNetTrainerTLoss_relative",
    "nnUNetTrainerTLoss_cap20",
    "nnUNetTrainerTLoss_nuPlateau",
    "nnUNetTrainerTLoss_Adam1en3",
    "nnUNetTrainerTLoss_freeze",
)
#: Every trainer ``nnUNetv2_train -tr`` finds through ``nnUNet_extTrainer="$(tloss-nnunet ext-path)"``.
TRAINER_NAMES = (BASE_TRAINER, *VARIANT_NAMES)
