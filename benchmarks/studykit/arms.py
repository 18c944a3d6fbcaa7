"""The arm registry: arm name -> the nnU-Net trainer class it trains, on each schedule.

An arm is a trainer: nnU-Net's stock trainers, the T-Loss trainer and its recipe variants
(:mod:`tloss_nnunet.nnunet.variants`), or the kit's baselines (:mod:`tloss_nnunet.repro.study_trainers`).
The in-process engine builds the class of :data:`ARMS`; the stock-command engine passes nnU-Net the name of the
arm's twin on the configuration's schedule (nnU-Net picks trainers by class name, so a schedule is a class).
"""

from __future__ import annotations

from tloss_nnunet.errors import InputError

__all__ = ["ARMS", "LOSS_ARMS", "SCHEDULES", "trainer_class", "trainer_name"]

#: Arm -> trainer class name (nnU-Net's default schedule). "dice_ce" is nnU-Net's stock trainer, "tloss" the
#: default T-Loss trainer, the "tloss_*" arms T-Loss recipes, "ce" / "dice" nnU-Net's CE-only and Dice-only
#: variants, "gce" the kit's generalised cross-entropy (q 0.7), "gce_q04" the same with q 0.4.
ARMS: dict[str, str] = {
    "dice_ce": "nnUNetTrainer",
    "tloss": "nnUNetTrainerTLoss",
    "tloss_absolute": "nnUNetTrainerTLoss_absolute",
    "tloss_relative": "nnUNetTrainerTLoss_relative",
    "tloss_plateau": "nnUNetTrainerTLoss_nuPlateau",
    "tloss_adam": "nnUNetTrainerTLoss_Adam1en3",
    "tloss_cap20": "nnUNetTrainerTLoss_cap20",
    "tloss_freeze": "nnUNetTrainerTLoss_freeze",
    "ce": "nnUNetTrainerCELoss",
    "dice": "nnUNetTrainerDiceLoss",
    "gce": "nnUNetTrainerGCELoss",
    "gce_q04": "nnUNetTrainerGCELoss_q04",
}

#: The loss arms (the T-Loss default and the plain baselines), in the order a grid runs and shows them:
#: the headline comparison first.
LOSS_ARMS: tuple[str, ...] = ("tloss", "dice_ce", "ce", "dice", "gce")

#: Schedule -> arm -> trainer twin (schedule "default" is :data:`ARMS`); "study" trains a configuration's sizes.
SCHEDULES: dict[str, dict[str, str]] = {
    "50epochs": {"tloss": "nnUNetTrainerTLoss_50epochs", "dice_ce": "nnUNetTrainer_50epochs",
                 "ce": "nnUNetTrainerCELoss_50epochs", "dice": "nnUNetTrainerDiceLoss_50epochs",
                 "gce": "nnUNetTrainerGCELoss_50epochs"},
    "tiny": {"tloss": "nnUNetTrainerTLoss_tiny", "dice_ce": "nnUNetTrainerDiceCE_tiny",
             "ce": "nnUNetTrainerCELoss_tiny", "dice": "nnUNetTrainerDiceLoss_tiny",
             "gce": "nnUNetTrainerGCELoss_tiny"},
    "study": {"tloss": "nnUNetTrainerTLoss_study", "dice_ce": "nnUNetTrainer_study",
              "tloss_freeze": "nnUNetTrainerTLoss_freeze_study"},
}


def trainer_name(arm: str, schedule: str = "default") -> str:
    """The class name nnU-Net trains for ``arm`` on ``schedule``; InputError when the arm has no such twin."""
    twins = ARMS if schedule == "default" else SCHEDULES.get(schedule, {})
    if arm not in twins:
        raise InputError(f"arm {arm!r} has no trainer on schedule {schedule!r}; "
                         f"choose from {', '.join(twins) or 'none'}")
    return twins[arm]


def trainer_class(arm: str) -> type:
    """The trainer class of ``arm`` (default schedule), imported from where it is defined."""
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as stock
    from nnunetv2.training.nnUNetTrainer.variants.loss import nnUNetTrainerCELoss, nnUNetTrainerDiceLoss

    from tloss_nnunet.nnunet import trainer, variants
    from tloss_nnunet.repro import study_trainers

    name = trainer_name(arm)
    for module in (variants, trainer, study_trainers, stock, nnUNetTrainerCELoss, nnUNetTrainerDiceLoss):
        if hasattr(module, name):
            return getattr(module, name)
    raise ValueError(f"arm {arm!r}: trainer class {name} not found")
