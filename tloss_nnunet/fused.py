"""The T-Loss's sufficient statistic for softmax outputs against a label map, fused (memory-lean).

nnU-Net's and MONAI's usual case, ``TLoss(softmax=True, to_onehot_y=True)`` with a ``B1H[WD]`` label map,
needs per sample only ``sum((softmax(x) - onehot(y))^2)`` over the included channels and valid elements.
:class:`SoftmaxLabelSumSq` computes it without keeping probabilities or one-hot targets alive between
forward and backward.
"""

from __future__ import annotations

import torch

from tloss_nnunet.functional import compute_dtype

__all__ = ["SoftmaxLabelSumSq"]


def _label_residual_(prob: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None, first_channel: int) -> torch.Tensor:
    """In place: softmax probabilities (B, N, ...) -> residuals p - onehot(labels), zero outside the loss.

    Channels below ``first_channel`` and elements where ``valid`` is False are set to 0, so they add nothing to
    the residual sum. ``labels`` is a (B, 1, ...) label map; ``valid`` a (B, 1, ...) bool map or None.
    """
    prob[:, :first_channel] = 0
    for c in range(first_channel, prob.shape[1]):
        prob[:, c].sub_((labels[:, 0] == c).to(torch.uint8))
    if valid is not None:
        prob.mul_(valid)
    return prob


class SoftmaxLabelSumSq(torch.autograd.Function):
    """Per-sample sum of (softmax(x) - onehot(y))^2 over the included channels and valid elements, fused.

    Equal to the generic path (softmax, one-hot, slice, subtract, square, sum) but saves only the logits for
    backward and recomputes the probabilities there, so neither probabilities nor one-hot targets stay alive
    between forward and backward: the loss then costs about as much memory as softmax(x).sum() itself.
    Backward: dL/dp = 2 g_b delta, and the softmax Jacobian gives dL/dx = p * (dL/dp - sum_c p_c dL/dp_c).
    """

    @staticmethod
    def forward(ctx, logits, labels, valid, first_channel: int):  # type: ignore[override]
        residual = _label_residual_(torch.softmax(logits.to(compute_dtype(logits)), 1), labels, valid, first_channel)
        ctx.save_for_backward(logits, labels, valid)
        ctx.first_channel = first_channel
        return residual.square_().sum(dim=tuple(range(1, logits.ndim)))

    @staticmethod
    def backward(ctx, grad_sum_sq):  # type: ignore[override]
        logits, labels, valid = ctx.saved_tensors
        prob = torch.softmax(logits.to(compute_dtype(logits)), 1)
        grad_prob = _label_residual_(prob.clone(), labels, valid, ctx.first_channel)
        grad_prob.mul_((2 * grad_sum_sq).view(-1, *([1] * (logits.ndim - 1))))
        # sum_c p_c g_c accumulated channel by channel: no (B, N, ...) temporary at the memory peak.
        dot = torch.zeros_like(prob[:, :1])
        for c in range(prob.shape[1]):
            dot.addcmul_(prob[:, c : c + 1], grad_prob[:, c : c + 1])
        grad_prob.sub_(dot).mul_(prob)
        return grad_prob.to(logits.dtype), None, None, None
