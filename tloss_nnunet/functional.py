"""Layer 1 of the Robust T-Loss (Gonzalez-Jimenez et al., MICCAI 2023): the functional form.

Per sample b, with residuals delta = p - y over the D_b valid elements (p: prediction in probability
space, y: target), degrees of freedom nu > 0 and a diagonal precision exp(lambda) (``log_precision``),
the loss is the negative log-likelihood of a multivariate Student-t centred on the target::

    NLL_b = -lgamma((nu + D_b) / 2) + lgamma(nu / 2) + (D_b / 2) * log(pi * nu) - (D_b / 2) * lambda
            + ((nu + D_b) / 2) * log(1 + exp(lambda) * sum(delta^2) / nu)

``lambda = 0`` is the paper's Sigma = I; the released code corresponds to ``lambda = 1``. With
``normalize=True`` the value is divided by D_b, so its scale does not grow with the image size.
The gradient with respect to the prediction is ``(nu + D_b) / (nu + S_b) * exp(lambda) * delta``
(S_b = exp(lambda) * sum(delta^2)): one weight per sample, so a sample whose residual is large
(a noisy label) is down-weighted as a whole. A small nu gives heavy tails (robust), a large nu
approaches the Gaussian (a sum-of-squares loss).

For D_b in the thousands the weight w_b = (nu + D_b) / (nu + S_b) is 1 / MSE_b to within 1e-3: it grows as
the fit of a sample improves, and with ``normalize=True`` the gradient ``w_b * delta / D_b`` is about
``delta / S_b``, a step that grows as the loss falls (under SGD, a rising learning rate).
``mean_weight_cap=c`` stops that growth at a batch mean weight of c: every term is divided by the detached
``max(1, mean_b' w_b' / c)``, so the gradient is ``w_b * delta / D_b`` while the fit is poor and
``c * (w_b / mean w) * delta / D_b`` once it is good: only the weights' ratios act from then on. Since
w_b >= 1 for probabilities, ``c = 1`` keeps only the ratios from the start (a sum-of-squares step).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from monai.utils import LossReduction

# MONAI's LossReduction is imported where it is used: importing ``monai`` loads all of its networks (seconds),
# and nnU-Net imports the trainer (hence this module) just to look up a trainer class by name.

__all__ = ["compute_dtype", "loss_from_sums", "t_loss", "t_nll_from_sums", "t_weights_from_sums"]


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype (float16, bfloat16, float32, ints, bool) becomes float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _scalar_dtype(device: torch.device) -> torch.dtype:
    """dtype of the per-sample scalar terms: float64 where the device supports it.

    lgamma((nu + D) / 2) and (D / 2) log(pi nu) are each ~D log D and cancel to O(D); at D ~ 1e7 float32
    would lose the result's last digits, float64 keeps them. These are B scalars, so the cost is nil.
    """
    return torch.float32 if device.type == "mps" else torch.float64


def _nu_and_scaled_sum(sum_sq: torch.Tensor, log_nu: torch.Tensor, log_precision: float | torch.Tensor,
                       epsilon: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(nu, exp(lambda) * S_b, lambda) in the per-sample scalar dtype: what the NLL and the weights share."""
    dtype = _scalar_dtype(sum_sq.device)
    log_precision = torch.as_tensor(log_precision, dtype=dtype, device=sum_sq.device)
    nu = torch.exp(log_nu.to(dtype)) + epsilon
    return nu, torch.exp(log_precision) * sum_sq.to(dtype), log_precision


def t_nll_from_sums(sum_sq: torch.Tensor, count: torch.Tensor, log_nu: torch.Tensor,
                    log_precision: float | torch.Tensor = 0.0, epsilon: float = 1e-8) -> torch.Tensor:
    """Student-t negative log-likelihood from per-sample sufficient statistics.

    Args:
        sum_sq: (B,) sum of squared residuals over each sample's valid elements.
        count: (B,) number of valid elements D_b (may be 0: the NLL is then exactly 0).
        log_nu: () log of the degrees of freedom; nu = exp(log_nu) + epsilon.
        log_precision: lambda, the log of the diagonal precision of the covariance.
        epsilon: floor added to nu so it stays positive when log_nu is very negative.

    Returns:
        (B,) NLL_b in the dtype of ``sum_sq`` (see the module docstring for the formula).
    """
    out_dtype = sum_sq.dtype
    nu, scaled, log_precision = _nu_and_scaled_sum(sum_sq, log_nu, log_precision, epsilon)
    count = count.to(nu.dtype)
    half_count = 0.5 * count
    nll = (
        torch.lgamma(0.5 * nu) - torch.lgamma(0.5 * nu + half_count)
        + half_count * (math.log(math.pi) + torch.log(nu) - log_precision)
        + (0.5 * nu + half_count) * torch.log1p(scaled / nu)
    )
    # An all-ignored sample has no likelihood term: the lgamma terms cancel to exactly 0, made explicit here.
    nll = torch.where(count > 0, nll, torch.zeros_like(nll))
    return nll.to(out_dtype)


def t_weights_from_sums(sum_sq: torch.Tensor, count: torch.Tensor, log_nu: torch.Tensor,
                        log_precision: float | torch.Tensor = 0.0, epsilon: float = 1e-8) -> torch.Tensor:
    """Per-sample weight w_b = (nu + D_b) / (nu + exp(lambda) S_b) that the T-Loss puts on a sample's residual.

    d NLL_b / d delta = w_b * exp(lambda) * delta: the sample's gradient is a least-squares gradient times w_b.
    Takes the arguments of :func:`t_nll_from_sums`; returns (B,) detached, in float64 where the device has it
    (1 for an all-ignored sample, D_b = S_b = 0).
    """
    nu, scaled, _ = _nu_and_scaled_sum(sum_sq.detach(), log_nu.detach(), log_precision, epsilon)
    return (nu + count.to(nu.dtype)) / (nu + scaled)


def t_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    log_nu: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    log_precision: float | torch.Tensor = 0.0,
    normalize: bool = True,
    epsilon: float = 1e-8,
    reduction: LossReduction | str = "mean",
    mean_weight_cap: float | None = None,
) -> torch.Tensor:
    """Functional T-Loss for callers that keep nu themselves.

    Args:
        input: (B, ...) predictions in probability space (no activation is applied here).
        target: same shape as ``input``; 0/1 labels or soft labels.
        log_nu: () tensor, log of the degrees of freedom (may require grad).
        mask: optional bool tensor broadcastable to ``input``; True marks elements that count. Masked
            elements are excluded from both the residual sum and D.
        log_precision: lambda, log of the diagonal precision (0 = identity covariance, as in the paper).
        normalize: divide each sample's NLL by its number of valid elements D_b (0 for D_b = 0).
        epsilon: floor on nu (nu = exp(log_nu) + epsilon).
        reduction: ``"none"`` -> (B,), ``"mean"`` or ``"sum"`` over the batch -> ().
        mean_weight_cap: c > 0: divide every term by the detached max(1, batch mean weight / c), so the step
            stops growing once the mean weight reaches c (see the module docstring); None: no cap.

    The residuals are formed in float32 (float64 for float64 input) with autocast disabled, whatever the
    input dtype, so float16/bfloat16 logits under mixed precision give the same loss as float32.
    """
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"input and target must be torch.Tensor, got {type(input).__name__} and "
                        f"{type(target).__name__}.")
    if input.shape != target.shape:
        raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input ({tuple(input.shape)}).")
    if input.ndim < 1 or input.shape[0] == 0:
        raise ValueError(f"input must have a non-empty batch dimension, got shape {tuple(input.shape)}.")
    dtype = compute_dtype(input)
    with torch.autocast(device_type=input.device.type, enabled=False):
        delta = input.to(dtype) - target.to(dtype)
        reduce_dims = tuple(range(1, input.ndim))
        if mask is None:
            count = torch.full((input.shape[0],), math.prod(input.shape[1:]), dtype=dtype, device=input.device)
        else:
            mask = mask.to(torch.bool).expand_as(delta)
            delta = torch.where(mask, delta, torch.zeros((), dtype=dtype, device=delta.device))
            count = mask.sum(dim=reduce_dims).to(dtype)
        sum_sq = delta.square().sum(dim=reduce_dims)
    return loss_from_sums(sum_sq, count, log_nu, log_precision, normalize, epsilon, reduction, mean_weight_cap)


def loss_from_sums(
    sum_sq: torch.Tensor,
    count: torch.Tensor,
    log_nu: torch.Tensor,
    log_precision: float | torch.Tensor,
    normalize: bool,
    epsilon: float,
    reduction: LossReduction | str,
    mean_weight_cap: float | None = None,
) -> torch.Tensor:
    """(B,) sufficient statistics -> the reduced loss: NLL, optionally / D_b and / the capped mean weight, then
    the batch reduction."""
    from monai.utils import LossReduction

    nll = t_nll_from_sums(sum_sq, count, log_nu, log_precision, epsilon)
    if normalize:
        nll = nll / count.clamp(min=1).to(nll.dtype)
    if mean_weight_cap is not None:
        # Mean over the samples with D_b > 0, written without a data-dependent branch or boolean indexing (so
        # torch.compile traces it in one graph): no such sample gives a mean of 0, i.e. a divisor of 1.
        valid = count > 0
        weights = t_weights_from_sums(sum_sq, count, log_nu, log_precision, epsilon)
        mean_weight = torch.where(valid, weights, 0).sum() / valid.sum().clamp(min=1)
        nll = nll / torch.clamp(mean_weight / mean_weight_cap, min=1.0).to(nll.dtype)
    reduction = LossReduction(reduction)
    if reduction == LossReduction.MEAN:
        return nll.mean()
    if reduction == LossReduction.SUM:
        return nll.sum()
    return nll
