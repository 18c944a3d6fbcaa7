"""The T-Loss with a cap on each training case's weight, on nnU-Net's outputs (``nnUNetTrainerTLoss_freeze``).

The T-Loss's gradient on sample b is a least-squares gradient times w_b = (nu + D_b) / (nu + exp(lambda) S_b)
(:func:`~tloss_nnunet.functional.t_weights_from_sums`), about 1 / MSE_b: it grows as the network fits a case,
a corrupted case included. Capping it at cap_b means the gradient of min(w_b, cap_b) instead. With the detached
factor f_b = min(1, cap_b / w_b) the per-sample term is written in IRLS form::

    L_b = f_b * NLL_b(S_b, nu) + (1 - f_b) * NLL_b(stop_grad(S_b), nu)

Its value is NLL_b; its gradient with respect to the prediction is f_b * w_b * exp(lambda) * delta =
min(w_b, cap_b) * exp(lambda) * delta (the T-Loss's exactly when cap_b >= w_b); its gradient with respect to
nu is the T-Loss's, whatever the cap: **nu keeps learning as in the default trainer**, before and after the
freeze (the cap acts on how much a case pulls the network, not on how heavy the tails are). Then, as in
:func:`~tloss_nnunet.functional.loss_from_sums`, each term is divided by D_b (``normalize``) and by the detached
max(1, mean_b(f_b w_b) / c) of the batch-mean cap c (``mean_weight_cap``, computed on the capped weights).

Deep supervision: the factor f_b is computed once, from the full-resolution weight, and the same f_b scales
every scale's term (each scale has its own D and its own w, whose ratio to the full-resolution one is kept):
a case is capped by the same ratio everywhere. The weights and the training agreement are recorded at full
resolution only. Label maps (softmax, background excluded, optional ignore label) and regions (sigmoid, the
ignore mask as nnU-Net's last target channel) are both handled, as by :class:`~.loss_adapter.NnUNetTLoss`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from tloss_nnunet.functional import t_nll_from_sums, t_weights_from_sums
from tloss_nnunet.fused import label_sum_sq
from tloss_nnunet.loss import TLoss, valid_elements

if TYPE_CHECKING:
    from tloss_nnunet.nnunet.weight_freeze import WeightFreeze

__all__ = ["CappedWeightTLoss", "cap_factors", "capped_nll_from_sums", "nnunet_sums"]


def cap_factors(weights: torch.Tensor, caps: torch.Tensor) -> torch.Tensor:
    """(B,) f_b = min(1, cap_b / w_b), detached; an infinite cap gives 1."""
    weights = weights.detach()
    return torch.clamp(caps.to(weights) / weights, max=1.0)


def capped_nll_from_sums(sum_sq: torch.Tensor, count: torch.Tensor, log_nu: torch.Tensor, factors: torch.Tensor,
                         log_precision: float = 0.0, normalize: bool = True, epsilon: float = 1e-8,
                         mean_weight_cap: float | None = None) -> torch.Tensor:
    """(B,) per-sample terms of the capped T-Loss (module docstring); ``factors`` (B,) from :func:`cap_factors`.

    All factors 1 gives :func:`~tloss_nnunet.functional.loss_from_sums`'s terms (``reduction="none"``), value and
    gradients."""
    nll = t_nll_from_sums(sum_sq, count, log_nu, log_precision, epsilon)
    fixed = t_nll_from_sums(sum_sq.detach(), count, log_nu, log_precision, epsilon)
    factors = factors.detach().to(nll.dtype)
    terms = factors * nll + (1.0 - factors) * fixed
    if normalize:
        terms = terms / count.clamp(min=1).to(terms.dtype)
    if mean_weight_cap is not None:
        valid = count > 0
        weights = t_weights_from_sums(sum_sq, count, log_nu, log_precision, epsilon)
        capped = weights * factors.to(weights.dtype)
        mean_weight = torch.where(valid, capped, 0).sum() / valid.sum().clamp(min=1)
        terms = terms / torch.clamp(mean_weight / mean_weight_cap, min=1.0).to(terms.dtype)
    return terms


def nnunet_sums(logits: torch.Tensor, target: torch.Tensor, has_regions: bool,
                ignore_label: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(sum_sq (B,), count (B,), valid or None) of one scale of nnU-Net's (logits, target), as the adapter's
    T-Loss forms them: softmax over classes against the one-hot label map, background excluded (label maps), or
    sigmoid per region channel (regions, the ignore mask in the target's last channel). Float32 (float64 input
    stays float64), autocast off."""
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    spatial = tuple(range(1, logits.ndim))
    with torch.autocast(device_type=logits.device.type, enabled=False):
        if has_regions:
            valid = None
            if ignore_label is not None:
                valid = ~target[:, -1:].bool()
                target = target[:, :-1]
            delta = torch.sigmoid(logits.to(dtype)) - target.to(dtype)
            if valid is None:
                return delta.square().sum(dim=spatial), _full_count(logits, logits.shape[1], dtype), None
            delta = torch.where(valid, delta, torch.zeros((), dtype=dtype, device=delta.device))
            return delta.square().sum(dim=spatial), valid.sum(dim=spatial).to(dtype) * logits.shape[1], valid
        valid = valid_elements(target, ignore_label)
        n_included = logits.shape[1] - 1
        sum_sq = label_sum_sq(logits, target, valid, 1)
        if valid is None:
            return sum_sq, _full_count(logits, n_included, dtype), None
        return sum_sq, valid.sum(dim=spatial).to(dtype) * n_included, valid


def _full_count(logits: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((logits.shape[0],), math.prod(logits.shape[2:]) * channels, dtype=dtype, device=logits.device)


@torch.no_grad()
def _agreement_counts(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None,
                      has_regions: bool, ignore_label: int | None) -> torch.Tensor:
    """(3,) float64 [TP, FP, FN] of the prediction's foreground against the given label's, over valid pixels:
    argmax > 0 vs label > 0 (label maps), logit > 0 vs region (regions, every region channel)."""
    if has_regions:
        given = (target[:, :-1] if ignore_label is not None else target).bool()
        predicted = logits > 0
    else:
        given = target > 0
        predicted = logits.argmax(1, keepdim=True) > 0
    if valid is not None:
        given, predicted = given & valid, predicted & valid
    tp = (given & predicted).sum()
    return torch.stack([tp, predicted.sum() - tp, given.sum() - tp]).to(torch.float64)


class CappedWeightTLoss(nn.Module):
    """The capped T-Loss on nnU-Net's outputs, deep supervision included (it replaces nnU-Net's
    ``DeepSupervisionWrapper`` + :class:`~.loss_adapter.NnUNetTLoss`: the cap is per case, across scales).

    Args:
        tloss: the trainer's :class:`TLoss` (its nu, lambda, epsilon, normalisation and batch-mean cap are used).
        has_regions / ignore_label: nnU-Net's target format, as for :class:`~.loss_adapter.NnUNetTLoss`.
        scale_weights: nnU-Net's deep-supervision weights (scale 0 first; a scale of weight 0 is skipped), or
            None for a single output.
        freeze: the per-case state (:class:`~.weight_freeze.WeightFreeze`): caps read, weights recorded.

    ``keys`` (the batch's case identifiers) is set by the trainer around each training step. Without keys
    (nnU-Net's validation step) nothing is capped or recorded: the value is the T-Loss's.

    Forward: logits (B, C, *spatial) or a list of them (full resolution first), target likewise -> () loss.
    """

    def __init__(self, tloss: TLoss, has_regions: bool, ignore_label: int | None,
                 scale_weights: list[float] | None, freeze: WeightFreeze) -> None:
        super().__init__()
        self.tloss = tloss
        self.has_regions = has_regions
        self.ignore_label = ignore_label
        self.scale_weights = None if scale_weights is None else [float(w) for w in scale_weights]
        self.freeze = freeze
        self.keys: list[str] | None = None

    def forward(self, output: torch.Tensor | list[torch.Tensor],
                target: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        outputs = list(output) if isinstance(output, (list, tuple)) else [output]
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        weights = self.scale_weights if self.scale_weights is not None else [1.0]
        if not (len(outputs) == len(targets) == len(weights)):
            raise ValueError(f"{len(outputs)} outputs, {len(targets)} targets, {len(weights)} scale weights")
        tloss = self.tloss
        keys, factors, total = self.keys, None, None
        for index, (logits, labels, scale_weight) in enumerate(zip(outputs, targets, weights)):
            if scale_weight == 0:
                continue
            sum_sq, count, valid = nnunet_sums(logits, labels, self.has_regions, self.ignore_label)
            if factors is None:
                factors = torch.ones_like(sum_sq)
                if keys is not None and index == 0:
                    w = t_weights_from_sums(sum_sq, count, tloss.log_nu, tloss.log_precision, tloss.epsilon)
                    caps = torch.tensor(self.freeze.caps_for(keys), dtype=w.dtype, device=w.device)
                    factors = cap_factors(w, caps)
                    counts = _agreement_counts(logits.detach(), labels, valid, self.has_regions, self.ignore_label)
                    self.freeze.record(keys, w, factors, counts)
            terms = capped_nll_from_sums(sum_sq, count, tloss.log_nu, factors, tloss.log_precision, tloss.normalize,
                                         tloss.epsilon, tloss.mean_weight_cap)
            term = scale_weight * terms.mean()
            total = term if total is None else total + term
        if total is None:
            raise ValueError("every deep-supervision weight is 0: no loss term")
        return total

    def extra_repr(self) -> str:
        return f"has_regions={self.has_regions}, ignore_label={self.ignore_label}, scales={self.scale_weights}"
