"""Intervals of the studies: Student-t over seeds (plain and paired), over datasets, and Welch's for unpaired arms.

For values x_1..x_n: mean m, sample standard deviation s (ddof 1), and the two-sided interval
m +- t_{(1 + confidence) / 2, n-1} * s / sqrt(n) (scipy.stats.t). With n = 1 there is no interval. Where the
metric is bounded (a Dice in [0, 1], a difference of two Dice in [-1, 1]) ``bounds`` clips the interval's ends
to that range; the mean and the half width stay the t-interval's own.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Cell", "format_cell", "over_datasets", "paired", "t_interval", "welch"]


@dataclass(frozen=True)
class Cell:
    """Mean of n values and the half width of its interval (None for n < 2); ``low`` / ``high`` are clipped to
    ``bounds`` when given."""

    n: int
    mean: float
    half_width: float | None
    bounds: tuple[float, float] | None = None

    @property
    def low(self) -> float | None:
        if self.half_width is None:
            return None
        low = self.mean - self.half_width
        return low if self.bounds is None else max(low, self.bounds[0])

    @property
    def high(self) -> float | None:
        if self.half_width is None:
            return None
        high = self.mean + self.half_width
        return high if self.bounds is None else min(high, self.bounds[1])


def _finite(values: Iterable[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def t_interval(values: Iterable[float | None], confidence: float = 0.95,
               bounds: tuple[float, float] | None = None) -> Cell:
    """Mean and half width of the Student-t interval of ``values`` (None / NaN dropped)."""
    x = _finite(values)
    if x.size == 0:
        return Cell(0, float("nan"), None, bounds)
    if x.size == 1:
        return Cell(1, float(x[0]), None, bounds)
    t = stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)
    return Cell(int(x.size), float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size)), bounds)


def paired(a: Mapping[Hashable, float | None], b: Mapping[Hashable, float | None], confidence: float = 0.95,
           bounds: tuple[float, float] | None = None) -> Cell:
    """t-interval of a[k] - b[k] over the keys (seeds) both have a value for."""
    diffs = [a[k] - b[k] for k in a if k in b and a[k] is not None and b[k] is not None]
    return t_interval(diffs, confidence, bounds)


def over_datasets(values: Mapping[Hashable, Iterable[float | None]], confidence: float = 0.95,
                  bounds: tuple[float, float] | None = None) -> Cell:
    """t-interval over datasets: each dataset's values (its seeds) averaged first, then the datasets' means."""
    means = [float(x.mean()) for x in (_finite(v) for v in values.values()) if x.size]
    return t_interval(means, confidence, bounds)


def welch(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """mean(a) - mean(b) and the half width of Welch's t-interval (None with fewer than 2 values each)."""
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, None
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = np.sqrt(vx + vy)
    if se == 0:
        return diff, 0.0
    dof = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    return diff, float(stats.t.ppf(0.5 + confidence / 2, dof) * se)


def format_cell(cell: Cell | None, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean [low, high]"`` times ``scale``; ``"mean (n=1)"``; ``"not run"`` for no value."""
    if cell is None or cell.n == 0:
        return "not run"
    if cell.half_width is None:
        return f"{cell.mean * scale:.{digits}f} (n=1)"
    return f"{cell.mean * scale:.{digits}f} [{cell.low * scale:.{digits}f}, {cell.high * scale:.{digits}f}]"
