"""Training-length twins: a schedule variant of any trainer is one decorated, empty subclass.

nnU-Net picks a trainer by class name only, so "trainer X on a shorter schedule" has to be a class of its own::

    @on_schedule(FIFTY_EPOCHS)
    class nnUNetTrainerTLoss_50epochs(nnUNetTrainerTLoss): ...

Why the decorator writes an ``__init__`` with nnU-Net's five parameters spelled out: ``nnUNetTrainer.__init__``
records its arguments by reading ``inspect.signature(self.__init__)``, the signature of the most derived
``__init__``. A ``*args, **kwargs`` wrapper would break that bookkeeping (and ``--c`` / inference, which rebuild
the trainer from it). A decorator rather than a mixin keeps the twin's only base the trainer it shortens.

This module imports nothing from nnU-Net, so the schedule numbers can be read without loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import torch

__all__ = [
    "FIFTY_EPOCHS",
    "FIVE_EPOCHS",
    "NNUNET_ITERATIONS_PER_EPOCH",
    "TINY",
    "TINY_EPOCHS",
    "TINY_ITERATIONS",
    "TINY_VAL_ITERATIONS",
    "Schedule",
    "apply_schedule",
    "on_schedule",
]

#: nnU-Net's default number of training iterations per epoch (its ``_Xepochs`` variants keep it).
NNUNET_ITERATIONS_PER_EPOCH = 250
TINY_EPOCHS = 2
TINY_ITERATIONS = 4
TINY_VAL_ITERATIONS = 2


class Schedule(NamedTuple):
    """A training length; ``None`` keeps the trainer's own value (nnU-Net: 1000 x 250, 50 validation)."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None


FIVE_EPOCHS = Schedule(5)
FIFTY_EPOCHS = Schedule(50)
#: tests and CPU smoke runs
TINY = Schedule(TINY_EPOCHS, TINY_ITERATIONS, TINY_VAL_ITERATIONS)

Trainer = TypeVar("Trainer", bound=type)


def apply_schedule(trainer: object, schedule: Schedule | tuple[int | None, int | None, int | None]) -> None:
    """Set ``num_epochs``, ``num_iterations_per_epoch``, ``num_val_iterations_per_epoch`` where not ``None``."""
    names = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch")
    for name, value in zip(names, schedule):
        if value is not None:
            setattr(trainer, name, value)


def on_schedule(schedule: Schedule | Callable[[], Schedule]) -> Callable[[Trainer], Trainer]:
    """Class decorator: the trainer runs its base's ``__init__``, then takes ``schedule``.

    ``schedule`` is a :class:`Schedule`, or a function returning one when the trainer is built (the demo
    reads its numbers from the environment that way).
    """

    def decorate(cls: Trainer) -> Trainer:
        owner: Any = cls  # a class whose __init__ is replaced: beyond what a type checker follows

        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            super(owner, self).__init__(plans, configuration, fold, dataset_json, device)
            apply_schedule(self, schedule() if callable(schedule) else schedule)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        owner.__init__ = __init__
        return cls

    return decorate
