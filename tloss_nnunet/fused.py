"""The T-Loss's sufficient statistic for softmax outputs against a label map, fused (memory-lean).

nnU-Net's and MONAI's usual case, ``TLoss(softmax=True, to_onehot_y=True)`` with a ``B1H[WD]`` label map,
needs per sample only ``S_b = sum((softmax(x) - onehot(y))^2)`` over the included channels and valid elements.
Two autograd functions compute it without keeping probabilities or one-hot targets alive between forward and
backward:

* :class:`SoftmaxLabelSumSq`, any number of classes N: saves only the logits and recomputes the softmax in
  backward.
* :class:`TwoClassLabelSumSq`, N = 2 (binary segmentation, nnU-Net's most common case): softmax(x)_1 is
  sigmoid(x_1 - x_0), so everything happens on ONE channel, and the per-element gradient direction is formed
  in forward, so backward is a single scaled write. Fewer passes over memory, less memory than the floor
  softmax(x).sum() (which keeps both probability channels).
"""

from __future__ import annotations

import math

import torch

from tloss_nnunet.functional import compute_dtype

__all__ = ["SoftmaxLabelSumSq", "TwoClassLabelSumSq", "label_sum_sq"]


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) with ``ndim`` dimensions, to scale a (B, C, ...) tensor per sample."""
    return values.view(-1, *([1] * (ndim - 1)))


def _row_sum_sq(rows: torch.Tensor) -> torch.Tensor:
    """(B, n) -> (B,) sum of squares, in one read of ``rows`` where possible.

    On CPU: BLAS dots over chunks of up to 4096 elements (one pass instead of square-then-sum's two), the chunk
    sums added pairwise, as accurate as ``square().sum()`` (one dot over all n would lose digits at n ~ 1e6).
    Elsewhere a one-pass norm: a GPU matmul may run in TF32, which would round the residuals.
    """
    if rows.device.type != "cpu":
        return torch.linalg.vector_norm(rows, dim=1).square()
    chunk = math.gcd(rows.shape[1], 4096)
    if chunk < 256 or not rows.is_contiguous():
        return rows.square().sum(1)
    pieces = rows.view(-1, 1, chunk)
    return torch.bmm(pieces, pieces.transpose(1, 2)).view(rows.shape[0], -1).sum(1)


def _label_residual_(prob: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None,
                     first_channel: int) -> torch.Tensor:
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
    def forward(ctx, logits, labels, valid, first_channel: int):
        residual = _label_residual_(torch.softmax(logits.to(compute_dtype(logits)), 1), labels, valid, first_channel)
        ctx.save_for_backward(logits, labels, valid)
        ctx.first_channel = first_channel
        return _row_sum_sq(residual.reshape(residual.shape[0], -1))

    @staticmethod
    def backward(ctx, grad_sum_sq):
        logits, labels, valid = ctx.saved_tensors
        prob = torch.softmax(logits.to(compute_dtype(logits)), 1)
        grad_prob = _label_residual_(prob.clone(), labels, valid, ctx.first_channel)
        grad_prob.mul_(_per_sample(2 * grad_sum_sq, logits.ndim))
        # sum_c p_c g_c accumulated channel by channel: no (B, N, ...) temporary at the memory peak.
        dot = torch.zeros_like(prob[:, :1])
        for c in range(prob.shape[1]):
            dot.addcmul_(prob[:, c : c + 1], grad_prob[:, c : c + 1])
        grad_prob.sub_(dot).mul_(prob)
        return grad_prob.to(logits.dtype), None, None, None


class TwoClassLabelSumSq(torch.autograd.Function):
    """:class:`SoftmaxLabelSumSq` for N = 2 classes, on one channel.

    With p = softmax(x)_1 = sigmoid(d), d = x_1 - x_0, and r = p - [y = 1] (0 where not valid), the residual of
    channel 0 is -r, so S_b = k * sum(r^2), k = 2 with the background channel, 1 without. Backward of g_b * S_b:
    dS/dd = 2 k r p (1 - p) (sigmoid's derivative), dd/dx_1 = 1, dd/dx_0 = -1. Forward forms the direction
    q = r p (1 - p) (one float32 channel, saved); backward writes +-2 k g_b q into the two channels.
    Labels must be 0 or 1 wherever ``valid`` is True (the caller checks the range).
    """

    @staticmethod
    def forward(ctx, logits, labels, valid, first_channel: int):
        dtype = compute_dtype(logits)
        high, low = logits[:, 1:2], logits[:, 0:1]
        # sigmoid(x_1 - x_0) in float32+ (the difference of two float16 logits is formed after the cast).
        prob = torch.sub(high, low) if high.dtype == dtype else high.to(dtype).sub_(low)
        prob.sigmoid_()
        residual = torch.sub(prob, labels.to(torch.uint8) if labels.dtype == torch.bool else labels)
        if valid is not None:
            residual.mul_(valid)
        sum_sq = _row_sum_sq(residual.reshape(residual.shape[0], -1))
        ctx.scale = 2.0 - first_channel
        ctx.logits_shape, ctx.logits_dtype = logits.shape, logits.dtype
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(torch.ops.aten.sigmoid_backward(residual, prob))  # r * p * (1 - p)
        return sum_sq * ctx.scale

    @staticmethod
    def backward(ctx, grad_sum_sq):
        (direction,) = ctx.saved_tensors
        scale = (2 * ctx.scale) * grad_sum_sq.to(direction.dtype)
        signed = torch.stack((-scale, scale), 1).view(-1, 2, *([1] * (direction.ndim - 2)))  # (B, 2, 1, ...)
        grad = torch.empty(ctx.logits_shape, dtype=ctx.logits_dtype, device=direction.device)
        torch.mul(direction, signed, out=grad)  # both channels in one pass: -s q into x_0, +s q into x_1
        return grad, None, None, None


def label_sum_sq(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None,
                 first_channel: int) -> torch.Tensor:
    """(B,) S_b for logits (B, N, ...) against a (B, 1, ...) label map: the two-class path when N = 2."""
    function = TwoClassLabelSumSq if logits.shape[1] == 2 else SoftmaxLabelSumSq
    return function.apply(logits, labels, valid, first_channel)
