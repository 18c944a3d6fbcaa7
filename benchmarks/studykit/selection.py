"""The rules that keep a checkpoint: pure functions over a run's log, causal and blind to clean labels.

A log is the in-process engine's list of log points (``{"iteration", "val_dice_noisy", "train_agreement", ...}``,
one per nnU-Net epoch in the long-horizon study). Each rule returns the index of the log point whose checkpoint
it keeps (:data:`RULES`):

* ``last`` -- the final log point (nnU-Net's ``checkpoint_final.pth``).
* ``best`` -- nnU-Net's ``checkpoint_best.pth`` rule on the noisy validation Dice d_t:
  e_1 = d_1, e_t = 0.9 e_{t-1} + 0.1 d_t; the earliest point of the highest e_t.
* ``elr``  -- the end of early learning (after ADELE, Liu et al. CVPR 2022): at every epoch t >= 4 the training
  agreement a_1..a_t is fitted with f(s) = p (1 - exp(-q s^r)); the first t where
  (f'(1) - f'(t)) / f'(1) > 0.9 is kept, the last point when that never happens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tloss_nnunet.nnunet.early_learning import ELR_MIN_EPOCH, ELR_THRESHOLD, end_of_early_learning, fit_agreement

__all__ = ["ELR_MIN_EPOCH", "ELR_THRESHOLD", "RULES", "best", "ema", "elr", "last", "select"]


def last(log: Sequence[dict]) -> int:
    """Index of the final log point."""
    if not log:
        raise ValueError("empty log")
    return len(log) - 1


def ema(values: Sequence[float]) -> list[float]:
    """nnU-Net's moving average of the pseudo Dice: e_1 = d_1, e_t = 0.9 e_{t-1} + 0.1 d_t.

    nnU-Net 2.8.1, ``nnunetv2/training/logging/nnunet_logger.py`` ``MetaLogger.log`` (the ``ema_fg_dice`` special case):
    ``new_ema_pseudo_dice = self.get_value('ema_fg_dice', step=step-1) * 0.9 + 0.1 * value``, the first value
    taken as it is."""
    out: list[float] = []
    for value in values:
        out.append(float(value) if not out else 0.9 * out[-1] + 0.1 * float(value))
    return out


def best(log: Sequence[dict], key: str = "val_dice_noisy") -> int:
    """Index of nnU-Net's ``checkpoint_best``: the highest EMA of ``key``, the earliest on ties.

    nnU-Net saves only on a strict improvement: ``nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py``
    ``on_epoch_end``, ``if self._best_ema is None or self.logger.get_value('ema_fg_dice', step=-1) >
    self._best_ema`` (line 1185 in nnU-Net 2.8.1)."""
    values = [point.get(key) for point in log]
    if not values:
        raise ValueError("empty log")
    if any(v is None or math.isnan(v) for v in values):
        raise ValueError(f"the log lacks {key!r} at some point (a run without a validation split?)")
    kept, top = 0, None
    for index, value in enumerate(ema(values)):
        if top is None or value > top:
            kept, top = index, value
    return kept


def elr(log: Sequence[dict], iterations_per_epoch: int, key: str = "train_agreement",
        fit=fit_agreement) -> int:
    """Index of the end of early learning (see the module docstring); the last point when the rule never fires.

    The rule is the library's (:mod:`tloss_nnunet.nnunet.early_learning`, which ``nnUNetTrainerTLoss_freeze``
    applies online). Epoch s of a log point is ``iteration / iterations_per_epoch``. Each test at epoch t fits
    only the points up to t (causal). A missing agreement, an agreement that has not moved yet (any q fits a
    flat curve as r -> 0: the fit says nothing), a failed fit or a fitted plateau p of 0 (f' = 0) does not fire
    the rule at that epoch. ``fit`` is replaceable for tests (a fit that fails)."""
    if not log:
        raise ValueError("empty log")
    epochs = [point["iteration"] / iterations_per_epoch for point in log]
    kept = end_of_early_learning(epochs, [point.get(key) for point in log], fit)
    return len(log) - 1 if kept is None else kept


#: Rule name -> the arm suffix of the derived arm it makes ("" for the trained arm itself).
RULES: dict[str, str] = {"last": "", "best": "_best", "elr": "_elr"}


def select(rule: str, log: Sequence[dict], iterations_per_epoch: int) -> int:
    """Index kept by ``rule`` (one of :data:`RULES`)."""
    if rule == "last":
        return last(log)
    if rule == "best":
        return best(log)
    if rule == "elr":
        return elr(log, iterations_per_epoch)
    raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
