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
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["ELR_MIN_EPOCH", "ELR_THRESHOLD", "RULES", "best", "ema", "elr", "last", "select"]

#: The relative drop of the fitted agreement's slope that ends early learning, and the first epoch it is tested.
ELR_THRESHOLD = 0.9
ELR_MIN_EPOCH = 4


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


def _fit(epochs: np.ndarray, agreement: np.ndarray) -> tuple[float, float, float] | None:
    """(p, q, r) of f(s) = p (1 - exp(-q s^r)) fitted by least squares (p in [0, 1], q, r > 0); None when the
    fit fails."""
    from scipy.optimize import OptimizeWarning, curve_fit

    def f(s, p, q, r):
        return p * (1.0 - np.exp(-q * np.power(s, r)))

    start = (min(max(float(agreement.max()), 1e-3), 1.0), 1.0, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, _ = curve_fit(f, epochs, agreement, p0=start, bounds=([0.0, 1e-8, 1e-8], [1.0, np.inf, np.inf]),
                                  maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    if not np.all(np.isfinite(params)):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def _slope_ratio(t: float, p: float, q: float, r: float) -> float:
    """f'(t) / f'(1) with f'(s) = p q r s^(r-1) exp(-q s^r): t^(r-1) exp(-q (t^r - 1)), in log space so that a
    curve already flat at s = 1 (f'(1) below the floating-point range) still gives its ratio."""
    return math.exp(min((r - 1.0) * math.log(t) - q * (t ** r - 1.0), 700.0))


def elr(log: Sequence[dict], iterations_per_epoch: int, key: str = "train_agreement",
        fit=_fit) -> int:
    """Index of the end of early learning (see the module docstring); the last point when the rule never fires.

    Epoch s of a log point is ``iteration / iterations_per_epoch``. Each test at epoch t fits only the points up
    to t (causal). A missing agreement, an agreement that has not moved yet (any q fits a flat curve as r -> 0:
    the fit says nothing), a failed fit or a fitted plateau p of 0 (f' = 0) does not fire the rule at that
    epoch. ``fit`` is replaceable for tests (a fit that fails)."""
    if not log:
        raise ValueError("empty log")
    epochs = np.array([point["iteration"] / iterations_per_epoch for point in log], dtype=float)
    values = [point.get(key) for point in log]
    for t in range(len(log)):
        if epochs[t] < ELR_MIN_EPOCH or any(v is None for v in values[:t + 1]):
            continue
        seen = np.array(values[:t + 1], dtype=float)
        if np.ptp(seen) < 1e-9:
            continue
        params = fit(epochs[:t + 1], seen)
        if params is None or params[0] <= 1e-6:
            continue
        if 1.0 - _slope_ratio(float(epochs[t]), *params) > ELR_THRESHOLD:
            return t
    return len(log) - 1


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
