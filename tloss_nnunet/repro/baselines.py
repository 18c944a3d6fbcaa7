"""Baseline losses for noisy-label comparisons, usable in MONAI loops and in nnU-Net trainers.

``GeneralizedCrossEntropyLoss`` is the generalised cross-entropy of Zhang & Sabuncu ("Generalized Cross
Entropy Loss for Training Deep Neural Networks with Noisy Labels", NeurIPS 2018), a published noise-robust
loss. Per element, with p_y the softmax probability of the labelled class and q in (0, 1]::

    L_q = (1 - p_y ** q) / q

q -> 0 recovers the cross-entropy -log p_y, q = 1 is the mean absolute error 1 - p_y (bounded, robust but
slow to train); the paper's default q = 0.7 sits between. Its gradient with respect to the logits is
p_y ** q * (p - onehot(y)): the cross-entropy gradient weighted by p_y ** q, so elements the network
confidently contradicts (likely noisy labels, small p_y) pull less.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn.modules.loss import _Loss

if TYPE_CHECKING:  # MONAI is imported where used: nnU-Net imports this module on every trainer lookup
    from monai.utils import LossReduction

__all__ = ["GeneralizedCrossEntropyLoss"]


class GeneralizedCrossEntropyLoss(_Loss):
    """Generalised cross-entropy on logits and integer label maps (nnU-Net's and MONAI's usual layout).

    Args:
        q: the exponent, in (0, 1]; 0.7 is the published default.
        ignore_index: label value whose elements count neither in the loss nor in the mean (nnU-Net's
            ignore label; may lie outside [0, C)). None: every element counts.
        reduction: ``"mean"`` over valid elements (as ``torch.nn.CrossEntropyLoss``), ``"sum"``, or
            ``"none"`` (per-element map (B, *spatial), 0 at ignored elements).

    Forward:
        logits: (B, C, *spatial) raw scores, C >= 2 (softmax over C is applied here, in float32).
        target: (B, 1, *spatial) or (B, *spatial) integer labels in [0, C) (or ``ignore_index``).
        returns: () for ``"mean"``/``"sum"``; (B, *spatial) for ``"none"``.

    Example::

        >>> loss_fn = GeneralizedCrossEntropyLoss(q=0.7)
        >>> logits = torch.randn(2, 2, 16, 16, requires_grad=True)
        >>> labels = torch.randint(0, 2, (2, 1, 16, 16))
        >>> loss_fn(logits, labels).backward()
    """

    def __init__(self, q: float = 0.7, ignore_index: int | None = None,
                 reduction: LossReduction | str = "mean") -> None:
        from monai.utils import LossReduction

        super().__init__(reduction=LossReduction(reduction).value)
        if not (isinstance(q, (int, float)) and 0 < q <= 1):
            raise ValueError(f"q must be a number in (0, 1], got {q!r}.")
        if ignore_index is not None and not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be None or an int, got {type(ignore_index).__name__}.")
        self.q = float(q)
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return f"q={self.q}, ignore_index={self.ignore_index}, reduction={self.reduction}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim < 3 or logits.shape[1] < 2:
            raise ValueError(f"logits must be (B, C, *spatial) with C >= 2, got shape {tuple(logits.shape)}.")
        if target.ndim == logits.ndim:
            if target.shape[1] != 1:
                raise ValueError("target must be a label map (B, 1, *spatial) or (B, *spatial), "
                                 f"got {tuple(target.shape)}.")
            target = target[:, 0]
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}.")
        if target.is_floating_point():
            target = target.round()
        target = target.long()

        valid = None if self.ignore_index is None else target != self.ignore_index
        index = target if valid is None else torch.where(valid, target, torch.zeros_like(target))
        if int(index.min()) < 0 or int(index.max()) >= logits.shape[1]:
            raise ValueError(f"target labels must lie in [0, {logits.shape[1]}) (or equal ignore_index), "
                             f"found values in [{int(index.min())}, {int(index.max())}].")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
            log_p = torch.log_softmax(logits.to(dtype), dim=1)
            log_p_y = log_p.gather(1, index.unsqueeze(1)).squeeze(1)
            # p_y ** q through exp(q log p_y): finite gradients even where p_y underflows to 0.
            per_element = (1.0 - torch.exp(self.q * log_p_y)) / self.q
            if valid is not None:
                per_element = per_element * valid
            if self.reduction == "none":
                return per_element
            total = per_element.sum()
            if self.reduction == "sum":
                return total
            count = per_element.numel() if valid is None else valid.sum()
            # An all-ignored batch has mean 0 (and keeps the graph, so backward still works).
            return total / torch.clamp(torch.as_tensor(count, dtype=dtype, device=logits.device), min=1)
