"""Schedule and option variants of :class:`nnUNetTrainerTLoss`, named the way nnU-Net names its own.

``-tr`` matches the class name only, so every variant is a small subclass: a schedule from
:mod:`tloss_nnunet.nnunet.schedules` (whose decorator spells out the ``__init__`` signature nnU-Net records) or
a changed class attribute.

* ``nnUNetTrainerTLoss_5epochs``, ``nnUNetTrainerTLoss_50epochs``: short schedules (nnU-Net's
  ``nnUNetTrainer_5epochs`` / ``nnUNetTrainer_50epochs`` are the stock-loss twins).
* ``nnUNetTrainerTLoss_tiny``: 2 epochs x 4 iterations, 2 validation iterations, for tests and CPU smoke runs
  (its stock-loss twin ``nnUNetTrainerDiceCE_tiny`` belongs to the reproduction kit, :mod:`tloss_nnunet.repro`).
* ``nnUNetTrainerTLoss_nuPlateau``: the reference's network-lr drop when nu plateaus, on the default schedule.
"""

from __future__ import annotations

from tloss_nnunet.nnunet.schedules import FIFTY_EPOCHS, FIVE_EPOCHS, TINY, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

__all__ = [
    "nnUNetTrainerTLoss_5epochs",
    "nnUNetTrainerTLoss_50epochs",
    "nnUNetTrainerTLoss_tiny",
    "nnUNetTrainerTLoss_nuPlateau",
]


@on_schedule(FIVE_EPOCHS)
class nnUNetTrainerTLoss_5epochs(nnUNetTrainerTLoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerTLoss_50epochs(nnUNetTrainerTLoss): ...


@on_schedule(TINY)
class nnUNetTrainerTLoss_tiny(nnUNetTrainerTLoss): ...


class nnUNetTrainerTLoss_nuPlateau(nnUNetTrainerTLoss):
    """Default schedule plus the reference's rule: nu plateaued -> network lr x 0.1 (floor 1e-4), kept on top
    of the poly schedule (see :mod:`tloss_nnunet.nnunet.nu_plateau`)."""

    nu_plateau_lr_drop = True
