"""Schedule and option variants of :class:`nnUNetTrainerTLoss`, named the way nnU-Net names its own.

``-tr`` matches the class name only, so every variant is a small subclass: a schedule from
:mod:`tloss_nnunet.nnunet.schedules` (whose decorator spells out the ``__init__`` signature nnU-Net records) or
a changed class attribute.

* ``nnUNetTrainerTLoss_5epochs``, ``nnUNetTrainerTLoss_50epochs``: short schedules (nnU-Net's
  ``nnUNetTrainer_5epochs`` / ``nnUNetTrainer_50epochs`` are the stock-loss twins).
* ``nnUNetTrainerTLoss_tiny``: 2 epochs x 4 iterations, 2 validation iterations, for tests and CPU smoke runs
  (its stock-loss twin ``nnUNetTrainerDiceCE_tiny`` belongs to the reproduction kit, :mod:`tloss_nnunet.repro`).
* Recipes the memorisation study (``benchmarks/memorisation.py``) compared with the default (cap 100):
  ``_absolute`` (the plain T-Loss, no cap on the step's growth), ``_relative`` / ``_cap20``
  (``mean_weight_cap`` 1 / 20), ``_nuPlateau`` (the plain T-Loss plus the reference's network-lr drop when
  log nu plateaus) and ``_Adam1en3`` (the plain T-Loss with nnU-Net's ``nnUNetTrainerVanillaAdam1en3``).
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerVanillaAdam1en3

from tloss_nnunet.nnunet.schedules import FIFTY_EPOCHS, FIVE_EPOCHS, TINY, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
from tloss_nnunet.nnunet.trainer_names import VARIANT_NAMES

__all__ = list(VARIANT_NAMES)  # the classes below, in order (tests/test_nnunet_export_cli.py)


@on_schedule(FIVE_EPOCHS)
class nnUNetTrainerTLoss_5epochs(nnUNetTrainerTLoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerTLoss_50epochs(nnUNetTrainerTLoss): ...


@on_schedule(TINY)
class nnUNetTrainerTLoss_tiny(nnUNetTrainerTLoss): ...


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


class nnUNetTrainerTLoss_nuPlateau(nnUNetTrainerTLoss_absolute):
    """The plain T-Loss plus the reference's rule: log nu plateaued -> network lr x 0.1 (floor 1e-4), kept on
    top of the poly schedule (see :mod:`tloss_nnunet.nnunet.nu_plateau`)."""

    nu_plateau_lr_drop = True


class nnUNetTrainerTLoss_Adam1en3(nnUNetTrainerTLoss_absolute, nnUNetTrainerVanillaAdam1en3):
    """The plain T-Loss under nnU-Net's ``nnUNetTrainerVanillaAdam1en3`` recipe (Adam, lr 1e-3, poly schedule),
    the optimiser family the paper's code trains with; its ``configure_optimizers`` is nnU-Net's own."""
