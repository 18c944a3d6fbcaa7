"""How far a case's label is from a model's prediction: the per-case scores of label auditing.

For one case with softmax probabilities p (C, *spatial), C classes including background, and an integer
label map l (*spatial), let y be the one-hot of l over the foreground classes 1..C-1 and delta = p - y on the
D valid elements (foreground channels x pixels that are not the ignore label; for C = 2 this is the foreground
probability against the binary mask, exactly what the T-Loss trainer's loss sees). The scores are:

* ``mse`` = S / D with S = sum(delta^2): the mean squared residual;
* ``one_minus_dice`` = 1 - mean over foreground classes of Dice(argmax p == c, l == c) (a class absent from both
  counts as Dice 1);
* ``one_minus_softmin`` = 1 - Q with Q = sum_i s_i softmax_i((1 - s) / T), s_i = p[l_i, i] the probability the
  model gives the LABELLED class at valid pixel i (background included) and T = :data:`SOFTMIN_TEMPERATURE`:
  a soft minimum of the per-pixel label quality, dominated by the worst-fitting pixels (the "softmin" label
  quality of Lad & Mueller 2023, cleanlab's ``segmentation.rank.get_label_quality_scores`` default;
  ``tests/test_audit_scores.py`` and the repair study's audit records check that both give the same numbers);
* with the model's nu (T-Loss models): ``tloss_nll`` = NLL / D, the Student-t negative log-likelihood per
  element (:func:`tloss_nnunet.functional.t_nll_from_sums`), and ``tloss_weight`` = (nu + D) / (nu + S), the
  weight the loss puts on the case's residual (:func:`~tloss_nnunet.functional.t_weights_from_sums`).

Larger ``mse``, ``one_minus_dice``, ``one_minus_softmin`` and ``tloss_nll`` and a SMALLER ``tloss_weight`` mean a
more suspect label;
:func:`suspicion` turns every score into "larger is more suspect". For D in the thousands the weight is 1 / MSE
to within 1e-3, so ``mse`` and ``tloss_weight`` rank alike; ``tloss_nll`` is log-shaped in the MSE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from tloss_nnunet.functional import t_nll_from_sums, t_weights_from_sums

__all__ = ["DEFAULT_RANKING", "SCORE_NAMES", "SOFTMIN_TEMPERATURE", "CaseScores", "case_scores", "rank", "score_cases",
           "suspicion"]

#: Every score, in the order of the output tables; the T-Loss ones exist only when nu is known.
SCORE_NAMES: tuple[str, ...] = ("tloss_nll", "tloss_weight", "mse", "one_minus_dice", "one_minus_softmin")
#: The default ranking: in the label-repair study's audit (benchmarks/results/repair_audit.md; cross-fitted
#: held-out probabilities, 5 datasets x 3 noise settings) cleanlab's softmin score ranked the corrupted cases
#: above our earlier default 1 - Dice in every noisy setting (AUROC 0.96 / 0.90 / 0.78 against 0.94 / 0.81 /
#: 0.67), so by the study's frozen rule it is the default, computed here. At one image size the NLL, the weight
#: and the MSE rank the cases identically (all are monotone in S for a fixed D).
DEFAULT_RANKING = "one_minus_softmin"
#: T of ``one_minus_softmin``: small enough that a few badly fitting pixels dominate an image's score.
SOFTMIN_TEMPERATURE = 0.1
#: Scores where a smaller value is the more suspect label.
_SMALLER_IS_SUSPECT = frozenset({"tloss_weight"})


@dataclass(frozen=True)
class CaseScores:
    """The scores of one case (see the module docstring); ``tloss_*`` are None without nu."""

    case: str
    mse: float
    one_minus_dice: float
    valid_elements: int
    one_minus_softmin: float = float("nan")
    tloss_nll: float | None = None
    tloss_weight: float | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"case": self.case, **{name: getattr(self, name) for name in SCORE_NAMES},
                "valid_elements": self.valid_elements, **self.extra}


def suspicion(scores: CaseScores | dict, name: str) -> float:
    """Score ``name`` of one case oriented so that larger means more suspect (NaN when the score is missing, e.g.
    a record written before the score existed)."""
    value = scores.get(name) if isinstance(scores, dict) else getattr(scores, name)
    if value is None:
        return float("nan")
    return -float(value) if name in _SMALLER_IS_SUSPECT else float(value)


def _as_array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check(probabilities: np.ndarray, label: np.ndarray) -> np.ndarray:
    if probabilities.ndim < 2 or probabilities.shape[0] < 2:
        raise ValueError(f"probabilities must be (C, *spatial) with C >= 2 classes including background, "
                         f"got shape {probabilities.shape}")
    if label.shape == (1, *probabilities.shape[1:]):
        label = label[0]
    if label.shape != probabilities.shape[1:]:
        raise ValueError(f"label shape {label.shape} does not match the probabilities' spatial shape "
                         f"{probabilities.shape[1:]} (expected (*spatial) or (1, *spatial))")
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities contain NaN or inf")
    if np.issubdtype(label.dtype, np.floating) and not np.array_equal(label, np.round(label)):
        raise ValueError("label must hold integer class indices")
    return label.astype(np.int64, copy=False)


def case_scores(case: str, probabilities: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor,
                nu: float | None = None, ignore_label: int | None = None,
                log_precision: float = 0.0, *, log_nu: float | None = None) -> CaseScores:
    """The scores of one case.

    Args:
        case: the case identifier (nnU-Net's, e.g. ``ISIC_0000000``).
        probabilities: (C, *spatial) softmax probabilities, C >= 2 classes including background.
        label: (*spatial) or (1, *spatial) integer label map with values in 0..C-1 (and ``ignore_label``).
        nu: the model's degrees of freedom; None for models without one (then no ``tloss_*`` scores).
        ignore_label: label value of pixels that carry no label (nnU-Net's ignore label), or None.
        log_precision: lambda of the T-Loss the model was trained with (0 = the paper's, the trainer's default).
        log_nu: log nu instead of ``nu``, as checkpoints store it (not both).
    """
    p = _as_array(probabilities).astype(np.float64, copy=False)
    label = _check(p, _as_array(label))
    n_classes = p.shape[0]
    valid = np.ones(label.shape, bool) if ignore_label is None else label != ignore_label
    known = np.isin(label[valid], np.arange(n_classes))
    if not known.all():
        bad = sorted(set(np.unique(label[valid][~known]).tolist()))
        raise ValueError(f"case {case}: label values {bad} outside 0..{n_classes - 1}"
                         + ("" if ignore_label is None else f" and the ignore label {ignore_label}"))
    foreground = np.arange(1, n_classes).reshape((-1,) + (1,) * label.ndim)
    delta = np.where(valid, p[1:] - (label[None] == foreground), 0.0)
    sum_sq = float(np.square(delta).sum())
    count = int(valid.sum()) * (n_classes - 1)
    predicted = p.argmax(0)
    dices = []
    for c in range(1, n_classes):
        pred_c, true_c = (predicted == c) & valid, (label == c) & valid
        denominator = pred_c.sum() + true_c.sum()
        dices.append(1.0 if denominator == 0 else 2.0 * (pred_c & true_c).sum() / denominator)
    mse = sum_sq / count if count else 0.0
    softmin = _softmin_quality(p, label, valid)
    nll = weight = None
    if nu is not None and log_nu is not None:
        raise ValueError("give nu or log_nu, not both")
    if nu is not None:
        if not nu > 0:
            raise ValueError(f"nu must be > 0, got {nu}")
        log_nu = float(np.log(nu))
    if log_nu is not None:
        stats = (torch.tensor([sum_sq], dtype=torch.float64), torch.tensor([count], dtype=torch.float64),
                 torch.tensor(log_nu, dtype=torch.float64))
        nll = float(t_nll_from_sums(*stats, log_precision=log_precision)[0]) / max(count, 1)
        weight = float(t_weights_from_sums(*stats, log_precision=log_precision)[0])
    return CaseScores(case=case, mse=mse, one_minus_dice=1.0 - float(np.mean(dices)), valid_elements=count,
                      one_minus_softmin=1.0 - softmin, tloss_nll=nll, tloss_weight=weight)


def _softmin_quality(p: np.ndarray, label: np.ndarray, valid: np.ndarray) -> float:
    """Q of ``one_minus_softmin`` (module docstring): p (C, *spatial) float64, label (*spatial) in 0..C-1 where
    ``valid``; 1.0 (nothing to doubt) when no pixel is valid."""
    index = np.where(valid, label, 0)[None]
    quality = np.take_along_axis(p, index, axis=0)[0][valid]
    if quality.size == 0:
        return 1.0
    logits = (1.0 - quality) / SOFTMIN_TEMPERATURE
    weights = np.exp(logits - logits.max())  # shifted: the largest exponent is 0, no overflow
    return float(np.dot(quality, weights) / weights.sum())


def score_cases(cases: Iterable[tuple[str, np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
                nu: float | None = None, ignore_label: int | None = None, log_precision: float = 0.0,
                rank_by: str | None = None) -> list[CaseScores]:
    """Score ``(case, probabilities, label)`` triples (any sizes) and return them most suspect first.

    ``rank_by`` is one of :data:`SCORE_NAMES` (default :data:`DEFAULT_RANKING`). Ties keep the input order. For a
    MONAI batch, pass ``zip(names, softmax(logits), labels)``.
    """
    scored = [case_scores(case, p, y, nu=nu, ignore_label=ignore_label, log_precision=log_precision)
              for case, p, y in cases]
    return rank(scored, rank_by or DEFAULT_RANKING)


def rank(scored: Sequence[CaseScores], rank_by: str) -> list[CaseScores]:
    """``scored`` sorted most suspect first by ``rank_by`` (stable)."""
    if rank_by not in SCORE_NAMES:
        raise ValueError(f"unknown score {rank_by!r}; choose from {', '.join(SCORE_NAMES)}")
    if scored and getattr(scored[0], rank_by) is None:
        raise ValueError(f"score {rank_by!r} needs nu (a T-Loss model); available: one_minus_softmin, mse, "
                         "one_minus_dice")
    return sorted(scored, key=lambda s: -suspicion(s, rank_by))
