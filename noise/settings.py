"""Value types of the noisy-label protocol: a setting (alpha, beta) and one case's random decisions.

Naming conventions (used for folders, log columns and nnU-Net dataset names):

* ``NoiseSetting(0.7, 0.5).name == "alpha0.7_beta0.5"``: alpha and beta written with Python's
  ``g`` format, i.e. the shortest plain form (``0.3``, ``0.25``, ``1.0 -> "1"``).
* ``NoiseSetting(0.7, 0.5).short == "a07b05"``: alpha and beta times ten, two digits each; only
  defined for multiples of 0.1 (the paper's grid), otherwise ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The paper's noise grid: alpha (fraction of cases corrupted) x beta (strength).
PAPER_ALPHAS: tuple[float, ...] = (0.3, 0.5, 0.7)
PAPER_BETAS: tuple[float, ...] = (0.5, 0.7)

#: Every value ``CaseNoise.kind`` (and the log) can take; "clean" means "not selected by alpha".
NOISE_KINDS: tuple[str, ...] = ("clean", "dilate", "erode", "affine")

#: The kinds the protocol draws from, in the order ``random.choice`` sees them.
CORRUPTION_KINDS: tuple[str, ...] = ("dilate", "erode", "affine")

#: The published translation directions (row, col), duplicate ``(-1, 1)`` and missing
#: ``(-1, -1)`` included: reproducing them is what makes the random stream and results identical.
PUBLISHED_DIRECTIONS: tuple[tuple[int, int], ...] = (
    (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, 1), (0, -1), (1, -1),
)

#: The eight neighbour directions, used with ``unbiased=True``. Same length as the published list,
#: so the random stream (and thus case selection, kinds and angles) is unchanged; only the entry
#: at index 5 differs: ``(-1, -1)`` instead of the duplicate ``(-1, 1)``.
UNBIASED_DIRECTIONS: tuple[tuple[int, int], ...] = (
    (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1),
)

#: Rotation angles are drawn from ``uniform(-MAX_ANGLE, MAX_ANGLE)`` degrees.
MAX_ANGLE: float = 30.0

#: The translation step (pixels per direction unit) is searched in ``[0, MAX_STEP]``.
MAX_STEP: int = 100

#: The published binary search stops after this many probes at the latest.
MAX_PROBES: int = 20


def alpha_problem(alpha: object) -> str | None:
    """Why ``alpha`` is not a valid fraction of corrupted cases (``None`` when it is)."""
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        return f"alpha must be a number in [0, 1], got {alpha!r}"
    return None


def beta_problem(beta: object) -> str | None:
    """Why ``beta`` is not a valid strength (``None`` when it is): a relative change in (0, 1]."""
    if isinstance(beta, bool) or not (isinstance(beta, (int, float)) and 0.0 < beta <= 1.0):
        return f"beta must be a number in (0, 1], got {beta!r}"
    return None


def _tenths(value: float, label: str) -> int:
    """Return ``value * 10`` as an int, or raise if ``value`` is not a multiple of 0.1."""
    scaled = round(value * 10)
    if not math.isclose(value * 10, scaled, abs_tol=1e-9):
        raise ValueError(f"{label}={value:g} is not a multiple of 0.1: no short name")
    return scaled


@dataclass(frozen=True)
class NoiseSetting:
    """One protocol setting.

    Attributes:
        alpha: fraction of cases corrupted, in [0, 1]; ``int(N * alpha)`` cases are selected.
        beta: strength, in (0, 1]: the target relative change (dilate/erode: area change
            ``int(fg * beta)`` pixels; affine: noise rate ``(FP + FN) / fg``). Above 1 the kinds part ways
            (erosion cannot remove more than the whole mask), so the protocol's "strength" has no meaning there.
    """

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        problem = alpha_problem(self.alpha) or beta_problem(self.beta)
        if problem:
            raise ValueError(problem)
        # Keep Python floats so that int(N * alpha) is the very expression the protocol evaluates.
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "beta", float(self.beta))

    @property
    def name(self) -> str:
        """Folder and log-column name, e.g. ``"alpha0.7_beta0.5"``."""
        return f"alpha{self.alpha:g}_beta{self.beta:g}"

    @property
    def short(self) -> str:
        """Compact name for dataset names, e.g. ``"a07b05"`` (multiples of 0.1 only)."""
        return f"a{_tenths(self.alpha, 'alpha'):02d}b{_tenths(self.beta, 'beta'):02d}"


@dataclass(frozen=True)
class CaseNoise:
    """The random decisions the protocol takes for one case (independent of the mask content).

    Attributes:
        kind: one of :data:`NOISE_KINDS`.
        angle: rotation in degrees, counter-clockwise (affine only, else ``None``).
        direction: translation direction ``(d_row, d_col)`` with entries in {-1, 0, 1}
            (affine only, else ``None``).
    """

    kind: str
    angle: float | None = None
    direction: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"kind must be one of {NOISE_KINDS}, got {self.kind!r}")
        is_affine = self.kind == "affine"
        if is_affine != (self.angle is not None) or is_affine != (self.direction is not None):
            raise ValueError("angle and direction are given exactly when kind == 'affine'")
