"""Label repair rules over arrays: which pixels of a case to distrust, its repaired label, how many cases to repair.

For one case with held-out softmax probabilities p (C, *spatial) (from the fold that never trained on the case)
and its given integer label map l (*spatial), let k = argmax_c p_c and q = max_c p_c per pixel. A pixel
*disagrees* when ``k != l and q >= confidence``: the model that never saw this label predicts another class, and
is confident about it. The three repair modes of a chosen case:

* ``ignore``: disagreeing pixels become nnU-Net's ignore label (no loss term there; the rest trains as labelled);
* ``replace``: the label becomes k everywhere (pixels that already carry the ignore label keep it);
* ``drop``: the case is left out of the dataset (no label: ``None``).

Which cases: the audit's ranking (most suspect first) is cut after ``top_k`` cases, after a ``fraction`` of the
cases, or after the last case whose score is at least as suspect as a ``threshold`` (:func:`cases_to_repair`).
Pure numpy, no nnU-Net: :mod:`tloss_nnunet.audit.repair` applies these to a dataset, studies apply them to arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_CONFIDENCE", "REPAIR_MODES", "cases_to_repair", "changed_pixels", "disagreement",
           "repaired_label"]

#: The repair modes, in the order the docs list them.
REPAIR_MODES: tuple[str, ...] = ("ignore", "replace", "drop")

#: A pixel is distrusted only where the held-out prediction's own class probability is >= 0.9. Along object
#: boundaries the prediction is uncertain (probabilities near 0.5 for two classes): there a disagreement says as
#: much about the model as about the label, and distrusting it would erase the boundary band of every case.
#: Away from boundaries nnU-Net's softmax is near 0 or 1, so 0.9 still catches the pixels of a wrongly drawn,
#: shifted, missing or spurious region. A prior, not a measurement: the repair study (issue 21 step 4) may change it.
DEFAULT_CONFIDENCE = 0.9


def _checked(label: np.ndarray, probabilities: np.ndarray, confidence: float,
             ignore_value: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(label as given, label as (*spatial) int64) after checking shapes, values and ``confidence``."""
    probabilities = np.asarray(probabilities)
    label = np.asarray(label)
    if probabilities.ndim < 2 or probabilities.shape[0] < 2:
        raise ValueError(f"probabilities must be (C, *spatial) with C >= 2 classes including background, "
                         f"got shape {probabilities.shape}")
    spatial = label[0] if label.shape == (1, *probabilities.shape[1:]) else label
    if spatial.shape != probabilities.shape[1:]:
        raise ValueError(f"label shape {label.shape} does not match the probabilities' spatial shape "
                         f"{probabilities.shape[1:]} (expected (*spatial) or (1, *spatial))")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    if np.issubdtype(spatial.dtype, np.floating) and not np.array_equal(spatial, np.round(spatial)):
        raise ValueError("label must hold integer class indices")
    spatial = spatial.astype(np.int64, copy=False)
    allowed = set(range(probabilities.shape[0])) | ({ignore_value} if ignore_value is not None else set())
    if bad := sorted(set(np.unique(spatial).tolist()) - allowed):
        raise ValueError(f"label values {bad} outside 0..{probabilities.shape[0] - 1}"
                         + ("" if ignore_value is None else f" and the ignore label {ignore_value}"))
    return label, spatial


def disagreement(label: np.ndarray, probabilities: np.ndarray,
                 confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray:
    """Where a held-out prediction confidently contradicts the label.

    Args:
        label: (*spatial) integer label map (or (1, *spatial), as nnU-Net's readers return it).
        probabilities: (C, *spatial) softmax probabilities of the fold that held the case out.
        confidence: the smallest probability of the predicted class that counts (see :data:`DEFAULT_CONFIDENCE`).

    Returns:
        bool (*spatial): ``argmax(p) != label and max(p) >= confidence``. Pixels carrying a value outside
        0..C-1 (an existing ignore label) always differ from the prediction, so they are True where confident.
    """
    p = np.asarray(probabilities)
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError(f"probabilities must be (C, *spatial) with C >= 2, got shape {p.shape}")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    label = np.asarray(label)
    spatial = label[0] if label.shape == (1, *p.shape[1:]) else label
    if spatial.shape != p.shape[1:]:
        raise ValueError(f"label shape {label.shape} does not match the probabilities' spatial shape {p.shape[1:]}")
    return (p.argmax(0) != spatial) & (p.max(0) >= confidence)


def repaired_label(label: np.ndarray, probabilities: np.ndarray, mode: str, ignore_value: int | None,
                   confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray | None:
    """The repaired label of one chosen case, in ``label``'s shape and dtype; None for ``drop``.

    Args:
        label: (*spatial) or (1, *spatial) integer label map, values in 0..C-1 (and ``ignore_value``).
        probabilities: (C, *spatial) held-out softmax probabilities.
        mode: one of :data:`REPAIR_MODES`.
        ignore_value: ``ignore``: the value disagreeing pixels get (nnU-Net's rule: max label + 1, required);
            ``replace``: the dataset's existing ignore label (its pixels stay ignored) or None.
        confidence: see :func:`disagreement` (``replace`` does not use it: the whole label is replaced).
    """
    if mode not in REPAIR_MODES:
        raise ValueError(f"unknown repair mode {mode!r}; choose from {', '.join(REPAIR_MODES)}")
    if mode == "ignore" and ignore_value is None:
        raise ValueError("mode 'ignore' needs ignore_value (the dataset's ignore label)")
    given, spatial = _checked(label, probabilities, confidence, ignore_value)
    if mode == "drop":
        return None
    if mode == "ignore":
        assert ignore_value is not None  # checked above
        repaired = np.where(disagreement(spatial, probabilities, confidence), ignore_value, spatial)
    else:
        repaired = np.asarray(probabilities).argmax(0)
        if ignore_value is not None:
            repaired = np.where(spatial == ignore_value, ignore_value, repaired)
    return repaired.reshape(given.shape).astype(given.dtype, copy=False)


def changed_pixels(label: np.ndarray, repaired: np.ndarray | None) -> int:
    """How many pixels ``repaired`` changes (every pixel for a dropped case, ``repaired`` None)."""
    label = np.asarray(label)
    return int(label.size) if repaired is None else int(np.count_nonzero(np.asarray(repaired) != label))


def cases_to_repair(scores: Sequence[float], *, top_k: int | None = None, fraction: float | None = None,
                    threshold: float | None = None, larger_is_suspect: bool = True) -> int:
    """How many cases from the top of a ranking to repair, by exactly one rule.

    Args:
        scores: the ranking score of each case, most suspect first (as ``suspects.csv`` lists them).
        top_k: the ``top_k`` most suspect cases, 1 <= top_k <= len(scores).
        fraction: the most suspect ceil(fraction * n) cases, 0 < fraction <= 1.
        threshold: the leading cases whose score is at least as suspect as ``threshold`` (>= it, or <= it when
            ``larger_is_suspect`` is False, as for ``tloss_weight``); may be 0 cases.
        larger_is_suspect: the score's direction (only ``threshold`` uses it).

    Raises:
        ValueError: no rule or more than one, a rule out of range, or a NaN score under ``threshold``.
    """
    given = [name for name, value in (("top_k", top_k), ("fraction", fraction), ("threshold", threshold))
             if value is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of top_k, fraction, threshold"
                         + (f" (got {', '.join(given)})" if given else ""))
    n = len(scores)
    if top_k is not None:
        if isinstance(top_k, bool) or int(top_k) != top_k or not 1 <= top_k <= n:
            raise ValueError(f"top_k must be an integer in 1..{n} (the number of ranked cases), got {top_k}")
        return int(top_k)
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        # The small tolerance keeps 0.3 * 10 = 3.0000000000000004 at 3 cases.
        return min(n, math.ceil(fraction * n - 1e-9))
    assert threshold is not None
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got NaN")
    count = 0
    for score in scores:
        if math.isnan(score):
            raise ValueError("a ranked case has no score (NaN); a threshold cannot be applied")
        if not (score >= threshold if larger_is_suspect else score <= threshold):
            break
        count += 1
    return count
