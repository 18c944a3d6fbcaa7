"""The alpha part of the protocol and the value types: selection, counts, nesting, determinism."""

from __future__ import annotations

import random

import pytest

from tloss_nnunet.noise import NOISE_KINDS, CaseNoise, NoiseSetting, plan_noise
from tloss_nnunet.noise.settings import PUBLISHED_DIRECTIONS

ISIC_IDS = [f"ISIC_{i:07d}" for i in range(2000)]


def _published_decisions(ids: list[str], alpha: float, seed: int = 0) -> dict[str, tuple]:
    """The published loop's draws, written with the module-level ``random`` functions."""
    random.seed(seed)
    ordered = sorted(ids)
    shuffled = ordered.copy()
    random.shuffle(shuffled)
    noisy = shuffled[: int(len(shuffled) * alpha)]
    decisions = {}
    for case in ordered:
        if case not in noisy:
            decisions[case] = ("clean", None, None)
            continue
        kind = random.choice(["dilate", "erode", "affine"])
        if kind == "affine":
            angle = random.uniform(-30, 30)
            direction = random.choice([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, 1), (0, -1), (1, -1)])
            decisions[case] = (kind, angle, direction)
        else:
            decisions[case] = (kind, None, None)
    return decisions


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.7])
def test_plan_reproduces_the_published_random_stream(alpha: float) -> None:
    ids = ISIC_IDS[:300]
    shuffled_input = list(reversed(ids))  # plan_noise must sort like the protocol
    plan = plan_noise(shuffled_input, NoiseSetting(alpha, 0.5), seed=0)
    expected = _published_decisions(ids, alpha)
    assert list(plan) == sorted(ids)
    assert {case: (s.kind, s.angle, s.direction) for case, s in plan.items()} == expected


@pytest.mark.parametrize("n, alpha, expected", [(2000, 0.3, 600), (2000, 0.5, 1000), (2000, 0.7, 1400),
                                                (396, 0.3, 118), (396, 0.7, 277), (7, 0.5, 3), (5, 0.0, 0)])
def test_noisy_count_is_int_n_alpha(n: int, alpha: float, expected: int) -> None:
    plan = plan_noise(ISIC_IDS[:n], NoiseSetting(alpha, 0.7))
    assert expected == int(n * alpha)
    assert sum(spec.kind != "clean" for spec in plan.values()) == expected
    assert len(plan) == n


def test_noisy_sets_are_nested_across_alpha_and_independent_of_beta() -> None:
    def noisy(alpha: float, beta: float) -> set[str]:
        return {c for c, s in plan_noise(ISIC_IDS, NoiseSetting(alpha, beta)).items() if s.kind != "clean"}

    low, mid, high = noisy(0.3, 0.5), noisy(0.5, 0.5), noisy(0.7, 0.5)
    assert low < mid < high
    assert noisy(0.5, 0.7) == mid
    # The kinds depend on alpha (different draw sequence) but not on beta.
    assert plan_noise(ISIC_IDS, NoiseSetting(0.5, 0.5)) == plan_noise(ISIC_IDS, NoiseSetting(0.5, 0.7))


def test_plan_is_deterministic_and_seeded() -> None:
    setting = NoiseSetting(0.5, 0.5)
    assert plan_noise(ISIC_IDS, setting, seed=0) == plan_noise(ISIC_IDS, setting, seed=0)
    assert plan_noise(ISIC_IDS, setting, seed=0) != plan_noise(ISIC_IDS, setting, seed=1)


def test_all_kinds_drawn_and_affine_parameters_in_range() -> None:
    plan = plan_noise(ISIC_IDS, NoiseSetting(0.7, 0.5))
    kinds = {spec.kind for spec in plan.values()}
    assert kinds == set(NOISE_KINDS)
    for spec in plan.values():
        if spec.kind == "affine":
            assert -30 <= spec.angle <= 30
            assert spec.direction in PUBLISHED_DIRECTIONS
        else:
            assert spec.angle is None and spec.direction is None
    assert (-1, -1) not in {spec.direction for spec in plan.values()}


def test_unbiased_plan_changes_only_the_direction_list() -> None:
    setting = NoiseSetting(0.7, 0.5)
    exact = plan_noise(ISIC_IDS, setting)
    unbiased = plan_noise(ISIC_IDS, setting, unbiased=True)
    for case in exact:
        a, b = exact[case], unbiased[case]
        assert (a.kind, a.angle) == (b.kind, b.angle)
        if a.kind == "affine" and a.direction != (-1, 1):
            assert b.direction == a.direction
        elif a.kind == "affine":  # the duplicated entry: index 3 stays, index 5 becomes (-1, -1)
            assert b.direction in {(-1, 1), (-1, -1)}
    assert (-1, -1) in {spec.direction for spec in unbiased.values()}


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate case ids: b"):
        plan_noise(["a", "b", "b"], NoiseSetting(0.5, 0.5))


def test_setting_names() -> None:
    assert NoiseSetting(0.7, 0.5).name == "alpha0.7_beta0.5"
    assert NoiseSetting(0.3, 0.7).short == "a03b07"
    assert NoiseSetting(1, 0.25).name == "alpha1_beta0.25"
    with pytest.raises(ValueError, match="multiple of 0.1"):
        _ = NoiseSetting(0.25, 0.5).short


@pytest.mark.parametrize("alpha, beta", [(-0.1, 0.5), (1.5, 0.5), (0.5, 0.0), (0.5, float("nan"))])
def test_setting_validation(alpha: float, beta: float) -> None:
    with pytest.raises(ValueError):
        NoiseSetting(alpha, beta)


def test_case_noise_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        CaseNoise("blur")
    with pytest.raises(ValueError, match="affine"):
        CaseNoise("dilate", angle=3.0, direction=(1, 0))
    with pytest.raises(ValueError, match="affine"):
        CaseNoise("affine")
