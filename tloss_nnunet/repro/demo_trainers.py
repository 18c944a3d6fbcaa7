"""The demo's training schedule, for the T-Loss and for nnU-Net's stock loss alike.

nnU-Net picks a trainer by class name only, so a schedule is a pair of small subclasses:

* ``nnUNetTrainerTLoss_demo``: :class:`~tloss_nnunet.nnunet.nnUNetTrainerTLoss` (the T-Loss),
* ``nnUNetTrainer_demo``: nnU-Net's stock ``nnUNetTrainer`` (Dice + cross-entropy),

both with ``DEMO_EPOCHS`` epochs of ``DEMO_ITERATIONS`` training iterations (default 10 x 20, sized
so that both trainings of ``scripts/demo.sh`` fit its CPU time budget) and a quarter as many
validation iterations per epoch (at least 2: the pseudo-Dice curve needs some). Everything else
(plans, augmentation, network, optimiser, poly lr schedule over the shortened run) is unchanged.

The environment variables ``TLOSS_DEMO_EPOCHS`` / ``TLOSS_DEMO_ITERATIONS`` override the two numbers,
which is how ``python -m tloss_nnunet.repro.demo --epochs E --iterations I`` passes a custom schedule to
``nnUNetv2_train`` (a separate process). They are read when the trainer is built; the demo keeps
each schedule's results in its own ``nnUNet_results`` folder so that schedules never mix.
"""

from __future__ import annotations

import os

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from tloss_nnunet.nnunet.schedules import Schedule, apply_schedule, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

__all__ = [
    "DEMO_EPOCHS",
    "DEMO_ITERATIONS",
    "EPOCHS_VARIABLE",
    "ITERATIONS_VARIABLE",
    "demo_schedule",
    "nnUNetTrainerTLoss_demo",
    "nnUNetTrainer_demo",
]

DEMO_EPOCHS = 10
DEMO_ITERATIONS = 20
EPOCHS_VARIABLE = "TLOSS_DEMO_EPOCHS"
ITERATIONS_VARIABLE = "TLOSS_DEMO_ITERATIONS"


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def demo_schedule() -> Schedule:
    """``(epochs, iterations per epoch, validation iterations per epoch)`` from the environment or defaults."""
    epochs = _positive_int(EPOCHS_VARIABLE, DEMO_EPOCHS)
    iterations = _positive_int(ITERATIONS_VARIABLE, DEMO_ITERATIONS)
    return Schedule(epochs, iterations, max(2, iterations // 4))


def _apply_demo_schedule(trainer: object) -> None:
    apply_schedule(trainer, demo_schedule())


@on_schedule(demo_schedule)
class nnUNetTrainerTLoss_demo(nnUNetTrainerTLoss):
    """The T-Loss trainer on the demo schedule (see the module docstring)."""


@on_schedule(demo_schedule)
class nnUNetTrainer_demo(nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE) on the demo schedule: the T-Loss trainer's fair twin."""
