"""Optimising nu next to nnU-Net's network: its own Adam, DDP gradient averaging, one combined step.

Why nu gets its own optimiser (and not a second param group of nnU-Net's SGD):

* nnU-Net's ``PolyLRScheduler`` writes the same lr into EVERY param group of ``trainer.optimizer`` each
  epoch, and ``on_train_epoch_start`` logs ``param_groups[0]``: a group for nu there would be silently
  overwritten with the network's lr. A separate optimiser is never touched by the schedule.
* With the loss normalised by D, the gradient of log-nu is ~1e-4; SGD at the network lr barely moves it,
  while Adam's step is invariant to the gradient scale (about ``lr`` per step in log-nu). The reference
  implementation trains nu with Adam at lr 1e-3, apart from the network; so do we, weight decay 0.
* nu is not part of the DDP-wrapped network, so DDP does not average its gradient: :func:`all_reduce_mean_`
  does, after backward and before the GradScaler unscales, so every rank takes the same step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import distributed as dist
from torch import nn

__all__ = ["build_nu_optimizer", "all_reduce_mean_", "backward_and_step"]


def build_nu_optimizer(parameters: Iterable[nn.Parameter], lr: float = 1e-3) -> torch.optim.Adam:
    """Adam for the loss's parameters (log nu), weight decay 0 (a decay would pull nu towards 1)."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("the loss has no trainable parameters: nothing for a nu optimiser to step.")
    if not lr > 0:
        raise ValueError(f"nu learning rate must be > 0, got {lr}.")
    return torch.optim.Adam(params, lr=lr, weight_decay=0.0)


def all_reduce_mean_(params: Iterable[nn.Parameter]) -> None:
    """In place: replace each parameter's gradient by its mean over all ranks (no-op outside DDP).

    Every rank must call this (it is a collective). A parameter without a gradient on this rank contributes
    zeros, so the ranks never disagree on how many collectives run.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    world_size = dist.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(world_size)


def _skip_with_network(nu_params: list[nn.Parameter], network_norm: torch.Tensor) -> None:
    """In place: make nu's gradients NaN when the network's gradient norm is not finite (else leave them).

    ``norm * 0`` is 0 for a finite norm and NaN for inf or NaN, so adding it marks exactly the batches the
    GradScaler skips for the network, and its inf check then skips nu too.
    """
    for p in nu_params:
        if p.grad is not None:
            p.grad.add_((network_norm * 0).to(device=p.grad.device, dtype=p.grad.dtype))


def backward_and_step(
    loss: torch.Tensor,
    network_params: Iterable[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    nu_optimizer: torch.optim.Optimizer,
    grad_scaler: torch.amp.GradScaler | None = None,
    clip_norm: float = 12.0,
) -> None:
    """Backward of ``loss`` and one step of both optimisers, following nnU-Net's train_step.

    Order: (scaled) backward -> average nu's gradient over DDP ranks -> unscale the network's gradients ->
    clip them to ``clip_norm`` (nnU-Net's 12; nu is not clipped, its Adam step is already bounded) -> unscale
    nu's -> step both -> update the scaler once. Both optimisers must have had ``zero_grad`` called before the
    forward pass.

    Under AMP the GradScaler decides per optimiser whether to skip a step (its inf check looks only at that
    optimiser's gradients), so on its own it would let nu step on a batch whose network step it skips. A
    non-finite network gradient norm is therefore carried into nu's gradient (as NaN) before nu's unscale:
    both steps are skipped together, with no host synchronisation.
    """
    network_params = list(network_params)
    nu_params = [p for group in nu_optimizer.param_groups for p in group["params"]]
    if grad_scaler is not None:
        grad_scaler.scale(loss).backward()
    else:
        loss.backward()
    # Still scaled here under AMP: every rank used the same scale, so the mean is the scaled mean.
    all_reduce_mean_(nu_params)
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
        network_norm = torch.nn.utils.clip_grad_norm_(network_params, clip_norm)
        _skip_with_network(nu_params, network_norm)
        grad_scaler.unscale_(nu_optimizer)
        grad_scaler.step(optimizer)
        grad_scaler.step(nu_optimizer)
        grad_scaler.update()
    else:
        torch.nn.utils.clip_grad_norm_(network_params, clip_norm)
        optimizer.step()
        nu_optimizer.step()
