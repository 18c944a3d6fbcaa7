"""Drawing the protocol's random decisions up front (alpha: which cases; then kind, angle, direction).

The published script interleaves drawing and mask processing, but no draw depends on a mask:
dilation and erosion consume no random numbers. Drawing everything first, in the same order from
the same stream, therefore yields the same decisions and frees the per-mask work to run in any
order, in parallel, with results independent of the number of workers.

Order of draws from ``random.Random(seed)`` (identical to ``random.seed(seed)`` + module calls):

1. ``shuffle`` a copy of the sorted ids; the first ``int(N * alpha)`` are the noisy set;
2. for each id in *sorted* order that is in the noisy set:
   ``choice(("dilate", "erode", "affine"))``, and for affine then
   ``uniform(-30, 30)`` (angle) and ``choice`` over the 8-entry direction list.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from tloss_nnunet.noise.settings import (
    CORRUPTION_KINDS,
    MAX_ANGLE,
    PUBLISHED_DIRECTIONS,
    UNBIASED_DIRECTIONS,
    CaseNoise,
    NoiseSetting,
)


def select_noisy_cases(case_ids: Sequence[str], alpha: float, rng: random.Random) -> set[str]:
    """Shuffle the sorted ids with ``rng`` and return the first ``int(N * alpha)`` of them.

    Consumes exactly the draws of one ``shuffle``. With the same seed the selections for
    increasing alpha are nested, because they are prefixes of the same shuffled list.
    """
    shuffled = sorted(case_ids)
    rng.shuffle(shuffled)
    return set(shuffled[: int(len(shuffled) * alpha)])


def plan_noise(
    case_ids: Sequence[str],
    setting: NoiseSetting,
    seed: int = 0,
    unbiased: bool = False,
) -> dict[str, CaseNoise]:
    """Return every case's random decisions for ``setting``, keyed by id in sorted order.

    Args:
        case_ids: the training case ids (any order; sorted internally like the protocol).
        setting: alpha selects the cases; beta is not used here (no draw depends on it).
        seed: seed of the Python ``random`` stream; 0 reproduces the published masks.
        unbiased: draw directions from the eight true neighbours instead of the published
            list. The stream is consumed identically, so selection, kinds and angles are the
            same as in exact mode; only directions at list index 5 differ.

    Raises:
        ValueError: on duplicate ids.
    """
    ids = sorted(case_ids)
    duplicates = sorted(case for case, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate case ids: {', '.join(duplicates)}")
    directions = UNBIASED_DIRECTIONS if unbiased else PUBLISHED_DIRECTIONS
    rng = random.Random(seed)
    noisy = select_noisy_cases(ids, setting.alpha, rng)

    plan: dict[str, CaseNoise] = {}
    for case in ids:
        if case not in noisy:
            plan[case] = CaseNoise("clean")
            continue
        kind = rng.choice(CORRUPTION_KINDS)
        if kind == "affine":
            angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
            plan[case] = CaseNoise(kind, angle=angle, direction=rng.choice(directions))
        else:
            plan[case] = CaseNoise(kind)
    return plan
