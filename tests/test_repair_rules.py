"""The repair rules over arrays (tloss_nnunet.audit.repair_rules): expected values on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from tloss_nnunet.audit.repair_rules import (
    DEFAULT_CONFIDENCE,
    REPAIR_MODES,
    cases_to_repair,
    changed_pixels,
    disagreement,
    repaired_label,
)


def _binary(foreground: list[list[float]]) -> np.ndarray:
    """(2, H, W) probabilities from a foreground probability map."""
    p1 = np.asarray(foreground, dtype=np.float32)
    return np.stack([1 - p1, p1])


LABEL = np.array([[0, 1, 1], [0, 0, 1]])
# foreground probabilities: confident agree, confident disagree (0.02 at a labelled 1), uncertain disagree (0.6
# at a labelled 0), exactly at the threshold (0.9 at a labelled 0), below it (0.89 at a labelled 0), agree.
PROBS = _binary([[0.01, 0.02, 0.99], [0.6, 0.9, 0.95]])


def test_disagreement_is_a_confident_other_class():
    expected = np.array([[False, True, False], [False, True, False]])
    np.testing.assert_array_equal(disagreement(LABEL, PROBS), expected)
    np.testing.assert_array_equal(disagreement(LABEL[None], PROBS), expected)  # nnU-Net's (1, *spatial)
    loose = disagreement(LABEL, PROBS, confidence=0.5)
    np.testing.assert_array_equal(loose, np.array([[False, True, False], [True, True, False]]))
    assert DEFAULT_CONFIDENCE == 0.9


def test_ignore_marks_the_disagreeing_pixels_only():
    repaired = repaired_label(LABEL, PROBS, "ignore", ignore_value=2)
    np.testing.assert_array_equal(repaired, [[0, 2, 1], [0, 2, 1]])
    assert repaired.dtype == LABEL.dtype and changed_pixels(LABEL, repaired) == 2


def test_replace_takes_the_argmax_and_keeps_existing_ignore_pixels():
    label = np.array([[0, 1, 2], [0, 0, 1]], dtype=np.float32)  # 2: the dataset's ignore label
    repaired = repaired_label(label[None], PROBS, "replace", ignore_value=2)
    np.testing.assert_array_equal(repaired, [[[0, 0, 2], [1, 1, 1]]])
    assert repaired.shape == (1, 2, 3) and repaired.dtype == np.float32
    np.testing.assert_array_equal(repaired_label(LABEL, PROBS, "replace", None), [[0, 0, 1], [1, 1, 1]])


def test_multiclass_3d():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, size=(2, 3, 4))
    probs = np.full((3, 2, 3, 4), 0.025)
    predicted = (label + 1) % 3  # every pixel: another class, confidently (0.95)
    np.put_along_axis(probs, predicted[None], 0.95, axis=0)
    probs[:, 0, 0, 0] = (0.3, 0.3, 0.4)  # one pixel uncertain
    repaired = repaired_label(label, probs, "ignore", ignore_value=3)
    assert repaired[0, 0, 0] == label[0, 0, 0] and (repaired.ravel()[1:] == 3).all()
    np.testing.assert_array_equal(repaired_label(label, probs, "replace", None), probs.argmax(0))


def test_drop_gives_none_and_counts_every_pixel():
    assert repaired_label(LABEL, PROBS, "drop", None) is None
    assert changed_pixels(LABEL, None) == 6
    assert REPAIR_MODES == ("ignore", "replace", "drop")


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "fix", "ignore_value": None}, "unknown repair mode"),
    ({"mode": "ignore", "ignore_value": None}, "needs ignore_value"),
    ({"mode": "ignore", "ignore_value": 2, "confidence": 1.5}, "confidence"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        repaired_label(LABEL, PROBS, **kwargs)


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="does not match"):
        repaired_label(LABEL[:, :2], PROBS, "replace", None)
    with pytest.raises(ValueError, match=r"label values \[5\]"):
        repaired_label(np.array([[0, 1, 5], [0, 0, 1]]), PROBS, "replace", None)
    with pytest.raises(ValueError, match="C >= 2"):
        disagreement(LABEL, PROBS[:1])


def test_cases_to_repair_each_rule():
    scores = [0.9, 0.7, 0.5, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert cases_to_repair(scores, top_k=3) == 3
    assert cases_to_repair(scores, fraction=0.3) == 3  # 0.3 * 10 is 3.0000000000000004 in floating point
    assert cases_to_repair(scores, fraction=0.25) == 3  # ceil
    assert cases_to_repair(scores, fraction=1.0) == 10
    assert cases_to_repair(scores, threshold=0.5) == 3  # >= threshold
    assert cases_to_repair(scores, threshold=2.0) == 0
    weights = [0.1, 0.4, 0.9]  # tloss_weight: smaller is more suspect
    assert cases_to_repair(weights, threshold=0.4, larger_is_suspect=False) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"top_k": 2, "fraction": 0.5}, "exactly one"),
    ({"top_k": 0}, "top_k"),
    ({"top_k": 4}, "top_k"),
    ({"fraction": 0.0}, "fraction"),
    ({"fraction": 1.5}, "fraction"),
    ({"threshold": float("nan")}, "NaN"),
])
def test_cases_to_repair_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cases_to_repair([0.5, 0.4, 0.3], **kwargs)
