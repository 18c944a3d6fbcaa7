"""The per-image weights of the T-Loss and the cap on their mean (the step-size control for SGD)."""

from __future__ import annotations

import math

import pytest
import torch

from tloss_nnunet import TLoss, t_loss
from tloss_nnunet.functional import t_weights_from_sums


def test_mean_weight_cap_keeps_the_weight_ratios_and_stops_the_step_growing():
    """mean_weight_cap=c: gradient w_b * delta / D_b while the batch mean weight is <= c, then
    c * (w_b / mean w) * delta / D_b. With c = 1, shrinking every residual 10x shrinks the step 10x (a
    sum-of-squares step) instead of growing it (absolute weights ~ 1 / MSE)."""
    gen = torch.Generator().manual_seed(3)
    base = (torch.rand(3, 50, generator=gen, dtype=torch.float64)
            * torch.tensor([[0.1], [0.3], [0.6]], dtype=torch.float64))
    log_nu = torch.tensor(math.log(1e-3), dtype=torch.float64)

    def grad(residual, cap):
        pred = residual.clone().requires_grad_(True)
        t_loss(pred, torch.zeros_like(pred), log_nu, mean_weight_cap=cap).backward()
        return pred.grad

    sum_sq, count = base.square().sum(1), torch.full((3,), 50.0, dtype=torch.float64)
    weights = t_weights_from_sums(sum_sq, count, log_nu, epsilon=1e-8)
    torch.testing.assert_close(weights, (1e-3 + 50) / (1e-3 + sum_sq), rtol=1e-6, atol=0)
    absolute = weights[:, None] * base / 50 / 3  # mean over the batch of 3
    torch.testing.assert_close(grad(base, None), absolute)
    torch.testing.assert_close(grad(base, float(weights.mean()) * 2), absolute)  # below the cap: unchanged
    cap = float(weights.mean()) / 4
    torch.testing.assert_close(grad(base, cap), absolute * cap / weights.mean())
    ratio_absolute = grad(base / 10, None).norm() / grad(base, None).norm()
    ratio_relative = grad(base / 10, 1.0).norm() / grad(base, 1.0).norm()
    assert ratio_absolute > 5 and ratio_relative == pytest.approx(0.1, rel=0.05)
    # Through the module and the fused label-map path: the value is the plain one over one common factor.
    logits = torch.randn(2, 2, 6, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 2, (2, 1, 6, 6), generator=gen)
    kwargs = dict(softmax=True, to_onehot_y=True, include_background=False, reduction="none", nu_init=0.05)
    ratio = (TLoss(**kwargs).double()(logits, labels)
             / TLoss(mean_weight_cap=1.0, **kwargs).double()(logits, labels)).detach()
    torch.testing.assert_close(ratio, ratio[:1].expand(2))
    assert float(ratio[0]) > 1
    assert "mean_weight_cap=1.0" in repr(TLoss(mean_weight_cap=1.0))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="mean_weight_cap"):
            TLoss(mean_weight_cap=bad)
