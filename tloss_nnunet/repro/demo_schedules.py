"""The demo's training schedules: each is a pair of nnU-Net trainers that differ only in the loss."""

from __future__ import annotations

from dataclasses import dataclass

from tloss_nnunet.nnunet.schedules import (
    FIFTY_EPOCHS,
    FIVE_EPOCHS,
    NNUNET_ITERATIONS_PER_EPOCH,
    TINY_EPOCHS,
    TINY_ITERATIONS,
)

__all__ = ["SCHEDULES", "TrainerPair"]


@dataclass(frozen=True)
class TrainerPair:
    """A pair of trainer classes that differ only in the loss, on one training schedule (epochs x iterations).

    Not :class:`tloss_nnunet.nnunet.schedules.Schedule`, which is the schedule itself (what a trainer variant
    sets); a pair names the two trainers the demo compares on it.
    """

    name: str
    tloss_trainer: str
    stock_trainer: str
    epochs: int
    iterations: int
    description: str

    @property
    def key(self) -> str:
        """Folder name of this schedule's results (custom demo schedules get their own)."""
        return f"{self.name}_e{self.epochs}_i{self.iterations}" if self.name == "demo" else self.name


def _schedules() -> dict[str, TrainerPair]:
    from tloss_nnunet.repro.demo_trainers import DEMO_EPOCHS, DEMO_ITERATIONS

    pair = TrainerPair
    return {
        "tiny": pair("tiny", "nnUNetTrainerTLoss_tiny", "nnUNetTrainerDiceCE_tiny", TINY_EPOCHS, TINY_ITERATIONS,
                     "smoke test (tests)"),
        "demo": pair("demo", "nnUNetTrainerTLoss_demo", "nnUNetTrainer_demo", DEMO_EPOCHS, DEMO_ITERATIONS,
                     "the default: both trainings fit the 15-minute CPU budget"),
        "5epochs": pair("5epochs", "nnUNetTrainerTLoss_5epochs", "nnUNetTrainer_5epochs", FIVE_EPOCHS.epochs,
                        NNUNET_ITERATIONS_PER_EPOCH, "nnU-Net's 5-epoch variant (GPU: minutes; CPU: an hour+)"),
        "50epochs": pair("50epochs", "nnUNetTrainerTLoss_50epochs", "nnUNetTrainer_50epochs", FIFTY_EPOCHS.epochs,
                         NNUNET_ITERATIONS_PER_EPOCH, "nnU-Net's 50-epoch variant (GPU)"),
    }


SCHEDULES = _schedules()
