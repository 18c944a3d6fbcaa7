"""The reference's guard against memorising noisy labels: drop the network lr when nu stops moving.

The released T-Loss training records its nu parameter every 50 iterations; once at least 10 records exist it smooths
them with a 5-point moving average and, as soon as two consecutive smoothed values differ by at most
1e-4, multiplies the network lr by 0.1 (not below 1e-4) and starts recording afresh. nu's own lr never
decays. (The released helper also overwrites the stored records with their averages as a side effect;
this implementation keeps the raw records, which is the rule as described.)

What is recorded is log nu: the released code's ``criterion.nu`` is the raw parameter, which holds log nu
(nu = exp(parameter) + 1e-8). The difference matters: nu tracks about twice the per-element squared error,
so it is small (1e-3 .. 1e-1) late in training, and a 1e-4 threshold on nu in natural units would declare a
plateau while log nu still falls by 1e-3 per iteration. :func:`plateau_statistic` is that reading.

nnU-Net's :class:`~nnunetv2.training.lr_scheduler.polylr.PolyLRScheduler` rewrites the lr every epoch, so
a drop written straight into the optimiser would be undone at the next epoch. The drop is therefore kept
as a multiplicative ``factor`` on top of the poly schedule by :class:`ScaledPolyLRScheduler`:
lr(epoch) = poly(epoch) * factor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

__all__ = ["NuPlateauDetector", "ScaledPolyLRScheduler", "plateau_statistic"]


def plateau_statistic(tloss) -> float:
    """What the plateau rule records of a :class:`~tloss_nnunet.TLoss`: its log nu, as the released code does."""
    return float(tloss.log_nu.detach())


class NuPlateauDetector:
    """Decides, from a value recorded every ``record_every`` iterations (log nu: :func:`plateau_statistic`),
    when it has plateaued.

    Args:
        record_every: iterations between two records of nu (reference: 50).
        patience: minimum number of records before a plateau can be declared (reference: 10).
        window: moving-average window over the records (reference: 5).
        threshold: a plateau is a step <= threshold between consecutive smoothed values (reference: 1e-4).
    """

    def __init__(self, record_every: int = 50, patience: int = 10, window: int = 5, threshold: float = 1e-4) -> None:
        if record_every < 1 or window < 2 or patience < window + 1:
            raise ValueError(f"need record_every >= 1, window >= 2 and patience > window; got "
                             f"{record_every=}, {window=}, {patience=}.")
        self.record_every = record_every
        self.patience = patience
        self.window = window
        self.threshold = threshold
        self.iteration = 0
        self.records: list[float] = []

    def update(self, read_nu: Callable[[], float]) -> bool:
        """Count one training iteration; return True when this iteration declares a plateau.

        ``read_nu`` (returning :func:`plateau_statistic` in the trainers) is called only on recording iterations:
        reading nu from a GPU synchronises the device, which should not happen every iteration. After a plateau the
        records are cleared, so the next decision needs ``patience`` fresh records.
        """
        self.iteration += 1
        if self.iteration % self.record_every:
            return False
        self.records.append(float(read_nu()))
        if len(self.records) < self.patience:
            return False
        smoothed = np.convolve(self.records, np.ones(self.window) / self.window, mode="valid")
        if np.any(np.abs(np.diff(smoothed)) <= self.threshold):
            self.records = []
            return True
        return False

    def state_dict(self) -> dict:
        return {"iteration": self.iteration, "records": list(self.records)}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.records = [float(v) for v in state["records"]]


class ScaledPolyLRScheduler(PolyLRScheduler):
    """nnU-Net's poly schedule times a persistent factor: lr = initial_lr * (1 - epoch/max)^0.9 * factor.

    :meth:`drop` multiplies the factor by ``decay`` and applies it to the optimiser at once, but never below
    ``min_lr`` at the moment of the drop (the reference's floor); the poly decay continues afterwards.
    """

    def __init__(self, optimizer, initial_lr: float, max_steps: int, exponent: float = 0.9,
                 current_step: int | None = None) -> None:
        self.factor = 1.0
        super().__init__(optimizer, initial_lr, max_steps, exponent, current_step)

    def step(self, current_step: int | None = None) -> None:
        super().step(current_step)
        for group in self.optimizer.param_groups:
            group["lr"] *= self.factor
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def drop(self, decay: float = 0.1, min_lr: float = 1e-4) -> float:
        """Lower the lr now and for the rest of training; return the new lr of param group 0."""
        current = self.optimizer.param_groups[0]["lr"]
        if current <= min_lr or current == 0:
            return current
        new_lr = max(current * decay, min_lr)
        self.factor *= new_lr / current
        for group in self.optimizer.param_groups:
            group["lr"] *= new_lr / current
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        return self.optimizer.param_groups[0]["lr"]
