"""Schedule and option variants of :class:`nnUNetTrainerTLoss`, named the way nnU-Net names its own.

``-tr`` matches the class name only, so every variant is a small subclass that changes attributes after
``super().__init__`` (whose signature must be spelled out: nnU-Net records its init args from it).

* ``nnUNetTrainerTLoss_5epochs``, ``nnUNetTrainerTLoss_50epochs``: short schedules (nnU-Net's
  ``nnUNetTrainer_5epochs`` / ``nnUNetTrainer_50epochs`` are the stock-loss twins).
* ``nnUNetTrainerTLoss_tiny``: 2 epochs x 4 iterations, 2 validation iterations, for tests and CPU smoke runs;
  ``nnUNetTrainerDiceCE_tiny`` is the same schedule with nnU-Net's stock Dice+CE loss, for fair comparisons.
* ``nnUNetTrainerTLoss_nuPlateau``: the reference's network-lr drop when nu plateaus, on the default schedule.
"""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerVanillaAdam1en3

from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

__all__ = [
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

TINY_EPOCHS = 2
TINY_ITERATIONS = 4
TINY_VAL_ITERATIONS = 2


def apply_tiny_schedule(trainer: nnUNetTrainer) -> None:
    """Set the ``_tiny`` schedule (tests, CPU smoke runs) on a trainer, after its ``__init__``."""
    trainer.num_epochs = TINY_EPOCHS
    trainer.num_iterations_per_epoch = TINY_ITERATIONS
    trainer.num_val_iterations_per_epoch = TINY_VAL_ITERATIONS


class nnUNetTrainerTLoss_5epochs(nnUNetTrainerTLoss):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 5


class nnUNetTrainerTLoss_50epochs(nnUNetTrainerTLoss):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 50


class nnUNetTrainerTLoss_tiny(nnUNetTrainerTLoss):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        apply_tiny_schedule(self)


class nnUNetTrainerDiceCE_tiny(nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE loss) on the ``_tiny`` schedule."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        apply_tiny_schedule(self)





class nnUNetTrainerTLoss_absolute(nnUNetTrainerTLoss):
    """The plain T-Loss (absolute per-image weights ~ 1 / MSE, normalised by D) under nnU-Net's SGD + poly."""

    tloss_mean_weight_cap = None


class nnUNetTrainerTLoss_relative(nnUNetTrainerTLoss):
    """Only relative per-image weights: the loss divided by the detached batch mean of the weights (cap 1), so
    nnU-Net's SGD step does not grow as the fit improves; the step is a sum-of-squares one."""

    tloss_mean_weight_cap = 1.0


class nnUNetTrainerTLoss_cap20(nnUNetTrainerTLoss):
    """Absolute weights until the batch mean weight (~ 1 / MSE) reaches 20, relative weights beyond."""

    tloss_mean_weight_cap = 20.0


class nnUNetTrainerTLoss_cap100(nnUNetTrainerTLoss):
    """Absolute weights until the batch mean weight (~ 1 / MSE) reaches 100, relative weights beyond."""

    tloss_mean_weight_cap = 100.0


class nnUNetTrainerTLoss_nuPlateau(nnUNetTrainerTLoss_absolute):
    """The plain T-Loss plus the reference's rule: log nu plateaued -> network lr x 0.1 (floor 1e-4), kept on
    top of the poly schedule (see :mod:`tloss_nnunet.nnunet.nu_plateau`)."""

    nu_plateau_lr_drop = True


class nnUNetTrainerTLoss_Adam1en3(nnUNetTrainerTLoss_absolute, nnUNetTrainerVanillaAdam1en3):
    """The plain T-Loss under nnU-Net's ``nnUNetTrainerVanillaAdam1en3`` recipe (Adam, lr 1e-3, poly schedule),
    the optimiser family the paper's code trains with; its ``configure_optimizers`` is nnU-Net's own."""
