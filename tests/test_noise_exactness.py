"""The fast path against the literal published algorithm (noise/reference.py): pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest

from tloss_nnunet.noise import NoiseSetting, apply_noise, plan_noise
from tloss_nnunet.noise.affine import affine_to_target
from tloss_nnunet.noise.morphology import dilate_to_target, erode_to_target
from tloss_nnunet.noise.reference import (
    PublishedProtocolCrash,
    reference_affine,
    reference_dilate,
    reference_erode,
    reference_protocol,
)
from tloss_nnunet.noise.settings import PUBLISHED_DIRECTIONS, UNBIASED_DIRECTIONS
from tloss_nnunet.noise.synthetic import lesion_like_mask


def _random_masks(count: int, seed: int) -> list[np.ndarray]:
    """Varied shapes (8..96 px, non-square), sizes (tiny to large) and border-touching lesions."""
    rng = np.random.default_rng(seed)
    masks = []
    while len(masks) < count:
        shape = (int(rng.integers(8, 97)), int(rng.integers(8, 97)))
        mask = lesion_like_mask(rng, shape, size_range=(0.05, 0.6), border_margin=0.3)
        if mask.sum() >= 4:  # smaller ones make the published dilation/erosion crash
            masks.append(mask)
    return masks


MASKS = _random_masks(40, seed=123)


def test_random_masks_include_border_touching_lesions() -> None:
    touching = sum(bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()) for m in MASKS)
    assert touching >= 10


@pytest.mark.parametrize("beta", [0.5, 0.7])
@pytest.mark.parametrize("index", range(len(MASKS)))
def test_dilate_and_erode_match_reference(index: int, beta: float) -> None:
    mask = MASKS[index]
    label = mask.astype(np.uint8)
    fast_dilated, note = dilate_to_target(mask, beta)
    if mask.all():
        with pytest.raises(PublishedProtocolCrash):
            reference_dilate(label, beta)
        assert note
    else:
        np.testing.assert_array_equal(fast_dilated, reference_dilate(label, beta).astype(bool))
        assert note == ""
    fast_eroded, note = erode_to_target(mask, beta)
    np.testing.assert_array_equal(fast_eroded, reference_erode(label, beta).astype(bool))
    assert note == ""


@pytest.mark.parametrize("beta", [0.5, 0.7])
@pytest.mark.parametrize("index", range(len(MASKS)))
def test_affine_matches_reference(index: int, beta: float) -> None:
    rng = np.random.default_rng(index)
    angle = float(rng.uniform(-30, 30))
    direction = PUBLISHED_DIRECTIONS[index % len(PUBLISHED_DIRECTIONS)]
    mask = MASKS[index]
    fast, note = affine_to_target(mask, beta, angle, direction)
    np.testing.assert_array_equal(fast, reference_affine(mask.astype(np.uint8), beta, angle, direction).astype(bool))
    assert note == ""


def test_unbiased_direction_with_positive_signs_equals_published() -> None:
    """For directions without negative entries the signed shift is the published one."""
    for index, mask in enumerate(MASKS[:10]):
        for direction in [(1, 0), (0, 1), (1, 1)]:
            signed, _ = affine_to_target(mask, 0.5, 7.5, direction, signed=True)
            published, _ = affine_to_target(mask, 0.5, 7.5, direction, signed=False)
            np.testing.assert_array_equal(signed, published, err_msg=f"mask {index} {direction}")
    assert set(PUBLISHED_DIRECTIONS) < set(UNBIASED_DIRECTIONS)


@pytest.mark.parametrize("alpha, beta", [(0.7, 0.5), (0.5, 0.7)])
def test_whole_protocol_matches_reference_run(alpha: float, beta: float) -> None:
    """plan_noise + apply_noise == one interleaved seeded run of the published loop."""
    labels = {f"case_{i:03d}": mask.astype(np.uint8) for i, mask in enumerate(MASKS) if not mask.all()}
    expected = reference_protocol(labels, alpha, beta, seed=0)
    plan = plan_noise(list(labels), NoiseSetting(alpha, beta), seed=0)
    assert [kind for _, kind in expected.values()] == [spec.kind for spec in plan.values()]
    for case, (reference_mask, kind) in expected.items():
        result = apply_noise(labels[case], plan[case], beta)
        assert result.kind == kind
        np.testing.assert_array_equal(result.mask, reference_mask.astype(bool), err_msg=case)


def test_many_step_dilation_and_erosion_match_reference_at_larger_size() -> None:
    """Dozens of one-pixel steps: the single distance transform must pick the same step count."""
    mask = lesion_like_mask(np.random.default_rng(7), (300, 420), size_range=(0.3, 0.45), max_blobs=1)
    label = mask.astype(np.uint8)
    for beta in (0.5, 0.7):
        np.testing.assert_array_equal(dilate_to_target(mask, beta)[0], reference_dilate(label, beta).astype(bool))
        np.testing.assert_array_equal(erode_to_target(mask, beta)[0], reference_erode(label, beta).astype(bool))


def test_dilation_that_fills_the_image_keeps_the_step_before() -> None:
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True  # 25 px; beta 3 -> target 100 > 81 pixels: the loop runs until full
    result, _ = dilate_to_target(mask, 3.0)
    np.testing.assert_array_equal(result, reference_dilate(mask.astype(np.uint8), 3.0).astype(bool))
    assert 25 < result.sum() < 81


@pytest.mark.parametrize("index", range(0, len(MASKS), 4))
def test_opencv_taxicab_distance_equals_scipy_chamfer(index: int) -> None:
    """The fast transform gives scipy's taxicab integers, with and without a background border."""
    from scipy.ndimage import distance_transform_cdt

    from tloss_nnunet.noise.morphology import taxicab_distance

    mask = MASKS[index]
    if not mask.all():
        np.testing.assert_array_equal(taxicab_distance(~mask), distance_transform_cdt(~mask, metric="taxicab"))
    padded = np.pad(mask, 1)
    np.testing.assert_array_equal(taxicab_distance(padded), distance_transform_cdt(padded, metric="taxicab"))
