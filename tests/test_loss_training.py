"""The T-Loss in training: nu learns the tail of its data, and the module works in MONAI's loops."""

from __future__ import annotations

import numpy as np
import torch

from tloss_nnunet import TLoss


def _fit_nu(residuals: torch.Tensor, steps: int = 300) -> float:
    """Maximum-likelihood nu for residual vectors (B, D) around a zero target, unit scale."""
    loss = TLoss(nu_init=5.0, normalize=True)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(residuals[:, None, :, None], torch.zeros_like(residuals)[:, None, :, None]).backward()
        optimizer.step()
    return loss.nu


def test_nu_learns_the_tail():
    """Scale mixtures with a chi2(2)/2 mixing variable are Student-t with nu = 2; constant mixing is Gaussian."""
    torch.manual_seed(5)  # the Chi2 sampler draws from the global generator
    gen = torch.Generator().manual_seed(5)
    batch, dim = 512, 16
    gaussian = torch.randn(batch, dim, generator=gen)
    mixing = torch.distributions.Chi2(torch.tensor(2.0)).sample((batch, 1)) / 2.0
    heavy = torch.randn(batch, dim, generator=gen) / mixing.sqrt()
    nu_heavy, nu_gauss = _fit_nu(heavy), _fit_nu(gaussian)
    assert nu_heavy < 4.0, nu_heavy
    assert nu_gauss > 30.0, nu_gauss


def test_works_under_monai_deep_supervision_loss():
    from monai.losses import DeepSupervisionLoss

    gen = torch.Generator().manual_seed(6)
    tloss = TLoss(softmax=True, to_onehot_y=True, include_background=False)
    ds_loss = DeepSupervisionLoss(tloss, weight_mode="exp")
    logits = [torch.randn(2, 3, s, s, generator=gen, requires_grad=True) for s in (32, 16, 8)]
    labels = torch.randint(0, 3, (2, 1, 32, 32), generator=gen).float()  # MONAI interpolates the target
    value = ds_loss(logits, labels)
    weights = ds_loss.get_weights(3)
    expected = sum(
        w * tloss(x, torch.nn.functional.interpolate(labels, size=x.shape[2:], mode=ds_loss.interp_mode))
        for w, x in zip(weights, logits)
    )
    torch.testing.assert_close(value, expected)
    value.backward()
    assert tloss.log_nu.grad is not None and all(x.grad is not None for x in logits)


def test_monai_unet_training_loop_learns_network_and_nu():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = torch.rand(8, 2) * 16 + 8
    labels = (((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) < 36).long()[:, None]
    images = labels.float() + 0.3 * torch.randn(labels.shape)

    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    loss_fn = TLoss(softmax=True, to_onehot_y=True, include_background=False)
    optimizer = torch.optim.Adam(
        [{"params": net.parameters(), "lr": 1e-2}, {"params": loss_fn.parameters(), "lr": 1e-2}]
    )
    nu_start, losses = loss_fn.nu, []
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1
    assert abs(loss_fn.nu - nu_start) > 0.05
