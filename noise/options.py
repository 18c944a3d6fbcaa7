"""The option checks ``tloss-nnunet noise`` and ``tloss-nnunet convert`` share, so both accept the same values.

One function per option family, each returning every problem it finds (the callers report them together):
the (alpha, beta) grid (ranges, repeated values) and the worker count.
"""

from __future__ import annotations

from collections.abc import Sequence

from tloss_nnunet.noise.settings import NoiseSetting, alpha_problem, beta_problem

__all__ = ["grid_problems", "noise_grid", "workers_problem"]


def _repeated(values: Sequence[float]) -> list[float]:
    seen: set[float] = set()
    return [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]


def grid_problems(alphas: Sequence[float], betas: Sequence[float]) -> list[str]:
    """Every problem with the grid: a value out of range, a value given twice.

    Repeats are refused rather than dropped: ``--alpha 0.5 0.5`` is more likely a typo for another value than
    a wish for one setting. An empty list is no problem here (``convert`` then writes the clean dataset only;
    ``noise`` needs a setting and says so).
    """
    problems: list[str] = []
    for option, values, check in (("--alpha", alphas, alpha_problem), ("--beta", betas, beta_problem)):
        problems += [problem for value in dict.fromkeys(values) if (problem := check(value))]
        problems += [f"{option} lists {value:g} more than once" for value in dict.fromkeys(_repeated(values))]
    return problems


def noise_grid(alphas: Sequence[float], betas: Sequence[float]) -> tuple[list[NoiseSetting], list[str]]:
    """The settings in the reference order (alpha outer loop, beta inner) and the grid's problems; no
    settings when there are problems."""
    problems = grid_problems(alphas, betas)
    if problems:
        return [], problems
    return [NoiseSetting(alpha, beta) for alpha in alphas for beta in betas], []


def workers_problem(workers: int | None) -> str | None:
    """``None`` (all usable cores) or a count of at least 1."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        return f"--workers must be at least 1, got {workers!r}"
    return None
