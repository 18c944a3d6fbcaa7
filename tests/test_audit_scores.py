"""Label-audit scores on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tloss_nnunet.audit import case_scores, score_cases
from tloss_nnunet.audit.scores import rank, suspicion
from tloss_nnunet.functional import t_loss


def _two_class(foreground_probability: np.ndarray) -> np.ndarray:
    return np.stack([1 - foreground_probability, foreground_probability])


def _half_label() -> np.ndarray:
    label = np.zeros((4, 4), np.uint8)
    label[:2] = 1
    return label


def test_perfect_prediction_scores_zero():
    label = _half_label()
    s = case_scores("a", _two_class(label.astype(float)), label, nu=2.0)
    assert s.mse == 0.0 and s.one_minus_dice == 0.0 and s.valid_elements == 16
    assert s.tloss_weight == pytest.approx((2.0 + 16) / 2.0)


def test_constant_prediction_by_hand():
    # p_fg = 0.8 everywhere on a half-foreground 4x4 label: residuals -0.2 (8 px) and 0.8 (8 px).
    label = _half_label()
    s = case_scores("a", _two_class(np.full((4, 4), 0.8)), label, nu=0.5)
    assert s.mse == pytest.approx((8 * 0.04 + 8 * 0.64) / 16)
    assert s.one_minus_dice == pytest.approx(1 - 2 * 8 / (16 + 8))  # argmax: all foreground
    assert s.tloss_weight == pytest.approx((0.5 + 16) / (0.5 + 5.44))
    # The NLL per element is the T-Loss itself (normalised, Sigma = I) on the foreground probability.
    expected = t_loss(torch.full((1, 4, 4), 0.8, dtype=torch.float64), torch.tensor(label[None], dtype=torch.float64),
                      torch.tensor(math.log(0.5), dtype=torch.float64))
    assert s.tloss_nll == pytest.approx(float(expected), rel=1e-9)


def test_ignore_label_pixels_do_not_count():
    label = _half_label()
    label[3] = 255  # last row unlabelled
    p = _two_class(np.where(np.arange(16).reshape(4, 4) >= 12, 0.9, label == 1).astype(float))
    s = case_scores("a", p, label, ignore_label=255)
    assert s.valid_elements == 12 and s.mse == 0.0 and s.one_minus_dice == 0.0


def test_three_classes_use_both_foreground_channels():
    label = np.array([[0, 1], [2, 2]])
    p = np.zeros((3, 2, 2))
    p[0, 0, 0] = p[1, 0, 1] = 1.0
    p[1, 1, 0] = p[1, 1, 1] = 1.0  # class 2 predicted as class 1
    s = case_scores("a", p, label)
    assert s.valid_elements == 8  # 2 foreground channels x 4 px
    assert s.mse == pytest.approx(4 / 8)  # two pixels wrong in both channels
    assert s.one_minus_dice == pytest.approx(1 - (2 * 1 / (3 + 1) + 0) / 2)  # class 1: 2*1/(3+1); class 2: 0


def test_3d_and_leading_channel_label():
    label = np.zeros((1, 2, 3, 3), np.int64)
    label[0, 0, 1, 1] = 1
    s = case_scores("a", _two_class(np.zeros((2, 3, 3))), label, nu=1.0)
    assert s.mse == pytest.approx(1 / 18) and s.one_minus_dice == 1.0


def test_absent_class_in_both_counts_as_agreement():
    label = np.zeros((3, 3), np.int64)
    assert case_scores("a", _two_class(np.zeros((3, 3))), label).one_minus_dice == 0.0


def test_ranking_puts_the_wrong_label_first_by_every_score():
    rng = np.random.default_rng(0)
    label = _half_label()
    prediction = _two_class(np.clip(label + rng.normal(0, 0.05, label.shape), 0, 1))
    cases = [(f"ok{i}", prediction, label) for i in range(3)] + [("flipped", prediction, 1 - label)]
    for name in ("tloss_nll", "tloss_weight", "mse", "one_minus_dice", "one_minus_softmin"):
        assert score_cases(cases, nu=0.3, rank_by=name)[0].case == "flipped", name
    assert score_cases(cases)[0].case == "flipped"  # the default ranking, no nu needed
    ranked = score_cases(cases, nu=0.3, rank_by="tloss_weight")
    assert suspicion(ranked[0], "tloss_weight") > suspicion(ranked[1], "tloss_weight")
    assert ranked[0].tloss_weight < ranked[1].tloss_weight  # small weight = suspect


def test_torch_inputs_match_numpy():
    label = _half_label()
    p = _two_class(np.full((4, 4), 0.3))
    a = case_scores("a", p, label, nu=1.0)
    b = case_scores("a", torch.tensor(p, dtype=torch.float16), torch.tensor(label), nu=1.0)
    assert b.mse == pytest.approx(a.mse, rel=1e-3) and b.tloss_nll == pytest.approx(a.tloss_nll, rel=1e-3)


@pytest.mark.parametrize("probabilities, label, kwargs, message", [
    (np.zeros((2, 4, 4)), np.zeros((4, 5)), {}, "does not match"),
    (np.zeros((1, 4, 4)), np.zeros((4, 4)), {}, "C >= 2"),
    (np.full((2, 4, 4), np.nan), np.zeros((4, 4)), {}, "NaN"),
    (np.zeros((2, 4, 4)), np.full((4, 4), 0.5), {}, "integer"),
    (np.zeros((2, 4, 4)), np.full((4, 4), 2), {}, "outside 0..1"),
    (np.zeros((2, 4, 4)), np.zeros((4, 4)), {"nu": 0.0}, "nu must be > 0"),
])
def test_bad_inputs_are_refused(probabilities, label, kwargs, message):
    with pytest.raises(ValueError, match=message):
        case_scores("a", probabilities, label, **kwargs)


def test_rank_refuses_unknown_and_unavailable_scores():
    scored = [case_scores("a", _two_class(np.zeros((2, 2))), np.zeros((2, 2)))]
    with pytest.raises(ValueError, match="unknown score"):
        rank(scored, "auroc")
    with pytest.raises(ValueError, match="needs nu"):
        rank(scored, "tloss_nll")


def test_softmin_by_hand():
    # Pixel qualities 0.9 (15 px) and 0.1 (1 px), T = 0.1: weights e^1 and e^9; Q = (15 0.9 e + 0.1 e^9) / (15 e + e^9).
    label = np.zeros((4, 4), np.int64)
    p = _two_class(np.full((4, 4), 0.1))
    p[:, 0, 0] = [0.1, 0.9]  # the one badly fitting pixel: its label (0) gets 0.1
    quality = (15 * 0.9 * math.e + 0.1 * math.e ** 9) / (15 * math.e + math.e ** 9)
    assert case_scores("a", p, label).one_minus_softmin == pytest.approx(1 - quality, rel=1e-12)
    label[0, 0] = 255  # ignored: only good pixels left
    assert case_scores("a", p, label, ignore_label=255).one_minus_softmin == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("classes, shape", [(2, (24, 20)), (4, (16, 16)), (3, (4, 8, 8))])
def test_softmin_matches_cleanlab(classes, shape):
    """The same numbers as the field's anchor, cleanlab's segmentation softmin (a benchmark dependency)."""
    from cleanlab.segmentation.rank import get_label_quality_scores

    rng = np.random.default_rng(classes)
    logits = rng.normal(0, 2, (3, classes, *shape))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, classes, (3, *shape))
    ours = [case_scores(str(i), p[i], labels[i]).one_minus_softmin for i in range(3)]
    flat = (3, classes, shape[0], int(np.prod(shape[1:])))  # cleanlab is 2D only: the same pixels, reshaped
    theirs, _ = get_label_quality_scores(labels.reshape(3, *flat[2:]), p.reshape(flat), method="softmin",
                                         downsample=1, verbose=False)
    np.testing.assert_allclose(ours, 1 - np.asarray(theirs), rtol=1e-9, atol=1e-12)
