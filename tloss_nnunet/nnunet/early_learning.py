"""The end of early learning, detected without clean labels (after ADELE, Liu et al. CVPR 2022).

Input: the training agreement a_1..a_t per epoch (the Dice of the network's prediction against the GIVEN
training labels). Early learning fits the clean structure first, so the agreement rises fast and then flattens
while the network starts to memorise. At every epoch t >= :data:`ELR_MIN_EPOCH` the agreement up to t is fitted
with f(s) = p (1 - exp(-q s^r)) (p in [0, 1], q > 0, r > 0, s in epochs, least squares); early learning has
ended at the first t where the fitted slope has dropped by more than :data:`ELR_THRESHOLD` relative to epoch 1:
(f'(1) - f'(t)) / f'(1) > 0.9. Each test uses only the points up to t, so the rule is causal: the trainer
applies it online (:class:`EarlyLearningDetector`), the studies apply it to a logged curve
(``benchmarks/studykit/selection.py`` ``elr``), and both call :func:`fires_at`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["ELR_MIN_EPOCH", "ELR_THRESHOLD", "EarlyLearningDetector", "Fit", "end_of_early_learning",
           "fit_agreement", "fires_at", "slope_ratio"]

#: The relative drop of the fitted agreement's slope that ends early learning, and the first epoch it is tested.
ELR_THRESHOLD = 0.9
ELR_MIN_EPOCH = 4

#: (epochs, agreement) -> (p, q, r), or None when the fit fails.
Fit = Callable[[np.ndarray, np.ndarray], "tuple[float, float, float] | None"]


def fit_agreement(epochs: np.ndarray, agreement: np.ndarray) -> tuple[float, float, float] | None:
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


def slope_ratio(t: float, p: float, q: float, r: float) -> float:
    """f'(t) / f'(1) with f'(s) = p q r s^(r-1) exp(-q s^r): t^(r-1) exp(-q (t^r - 1)), in log space so that a
    curve already flat at s = 1 (f'(1) below the floating-point range) still gives its ratio."""
    return math.exp(min((r - 1.0) * math.log(t) - q * (t ** r - 1.0), 700.0))


def fires_at(epochs: Sequence[float], agreement: Sequence[float | None], t: int,
             fit: Fit = fit_agreement) -> bool:
    """Does the rule fire at index ``t``, from the points 0..t only?

    Not at an epoch below :data:`ELR_MIN_EPOCH`, nor when an agreement up to t is missing (None), nor when the
    agreement has not moved yet (a flat curve fits any q as r -> 0: the fit says nothing), the fit fails, or the
    fitted plateau p is 0 (f' = 0)."""
    if epochs[t] < ELR_MIN_EPOCH or any(v is None for v in agreement[:t + 1]):
        return False
    seen = np.array(agreement[:t + 1], dtype=float)
    if np.ptp(seen) < 1e-9:
        return False
    params = fit(np.asarray(epochs[:t + 1], dtype=float), seen)
    if params is None or params[0] <= 1e-6:
        return False
    return 1.0 - slope_ratio(float(epochs[t]), *params) > ELR_THRESHOLD


def end_of_early_learning(epochs: Sequence[float], agreement: Sequence[float | None],
                          fit: Fit = fit_agreement) -> int | None:
    """Index of the first point where :func:`fires_at` fires; None when it never does."""
    if len(epochs) != len(agreement):
        raise ValueError(f"{len(epochs)} epochs but {len(agreement)} agreement values")
    return next((t for t in range(len(epochs)) if fires_at(epochs, agreement, t, fit)), None)


class EarlyLearningDetector:
    """The rule applied online: :meth:`update` once per epoch with that epoch's agreement (epochs 1, 2, ...).

    It tests only the newest epoch (the earlier ones were tested when they arrived, on the same points), and
    stops testing once it has fired. ``history`` and ``fired_epoch`` are its whole state (:meth:`state_dict`).
    """

    def __init__(self, fit: Fit = fit_agreement) -> None:
        self.history: list[float] = []
        self.fired_epoch: int | None = None
        self._fit = fit

    @property
    def fired(self) -> bool:
        return self.fired_epoch is not None

    def update(self, agreement: float) -> bool:
        """Record the agreement of the next epoch; True exactly once, at the epoch where the rule fires.
        A non-finite agreement (an epoch without foreground in prediction and label) is kept as missing."""
        self.history.append(float(agreement))
        if self.fired:
            return False
        values = [v if math.isfinite(v) else None for v in self.history]
        epochs = list(range(1, len(values) + 1))
        if fires_at(epochs, values, len(values) - 1, self._fit):
            self.fired_epoch = len(values)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "fired_epoch": self.fired_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(v) for v in state["history"]]
        self.fired_epoch = None if state["fired_epoch"] is None else int(state["fired_epoch"])
