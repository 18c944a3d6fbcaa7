"""``torch.compile(TLoss(...))`` gives eager's value and gradients (logits and nu) on CPU.

nnU-Net compiles only the network; a user may compile the loss too. One small shape, nnU-Net's case (softmax,
label map, no background, two classes: the fused one-channel path) with the default trainer's weight cap, so
the autograd function and the capped reduction are both traced. The first compile costs ~20-60 s on 2 cores.
"""

from __future__ import annotations

import torch

from tloss_nnunet import TLoss


def _value_and_grads(loss_fn, module, logits, labels):
    logits = logits.clone().requires_grad_()
    value = loss_fn(logits, labels)
    grad_logits, grad_log_nu = torch.autograd.grad(value, [logits, module.log_nu])
    return value.detach(), grad_logits, grad_log_nu


def test_compiled_loss_matches_eager_values_and_gradients():
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(2, 2, 16, 16, generator=gen)
    labels = torch.randint(0, 2, (2, 1, 16, 16), generator=gen)
    kwargs = dict(softmax=True, to_onehot_y=True, include_background=False, nu_init=0.5, mean_weight_cap=2.0)
    eager, compiled_module = TLoss(**kwargs), TLoss(**kwargs)
    compiled = torch.compile(compiled_module)
    expected = _value_and_grads(eager, eager, logits, labels)
    found = _value_and_grads(compiled, compiled_module, logits, labels)
    for a, b in zip(found, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert expected[2].abs() > 0  # nu's gradient is really compared (not two zeros)
