"""Section "scaler": under AMP's GradScaler a non-finite network gradient skips the network's AND nu's step.

The same procedure as ``tests/test_nnunet_units.py::TestNuStep::test_nonfinite_network_gradient_skips_nu_step_too``,
on the check's device: a small convolution and nnU-Net's T-Loss adapter, SGD for the network and nu's own Adam
(:func:`~tloss_nnunet.nnunet.optimization.build_nu_optimizer`), one step through
:func:`~tloss_nnunet.nnunet.optimization.backward_and_step` with a hook that makes the network's gradient inf,
then one finite step. On CUDA the forward runs under float16 autocast with ``GradScaler("cuda")``, as in
nnU-Net's ``train_step``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss, build_tloss_for_nnunet
from tloss_nnunet.nnunet.optimization import backward_and_step, build_nu_optimizer

__all__ = ["run_scaler_section"]


def run_scaler_section(device: torch.device) -> dict:
    torch.manual_seed(3)
    net = torch.nn.Conv2d(1, 2, 3, padding=1).to(device)
    tloss = build_tloss_for_nnunet(False, nu_init=3.0).to(device)
    loss_fn = NnUNetTLoss(tloss, False, None)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    nu_opt = build_nu_optimizer(tloss.parameters(), lr=1e-3)
    x = torch.randn(2, 1, 16, 16, device=device)
    y = torch.randint(0, 2, (2, 1, 16, 16), device=device)
    init_scale = 2.0 ** 10
    scaler = torch.amp.GradScaler(device.type, init_scale=init_scale)
    autocast = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        nu_opt.zero_grad(set_to_none=True)
        with autocast:
            output = net(x)
            loss = loss_fn(output, y)
        backward_and_step(loss, net.parameters(), opt, nu_opt, scaler)
        return output

    weights, log_nu = [p.detach().clone() for p in net.parameters()], tloss.log_nu.item()
    hook = net.weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    output = step()
    hook.remove()
    skipped = {"scale_after": scaler.get_scale(),
               "network_unchanged": all(torch.equal(a, b) for a, b in zip(weights, net.parameters())),
               "nu_unchanged": tloss.log_nu.item() == log_nu}
    step()
    moved = {"network_moved": not torch.equal(weights[0], net.weight.detach()),
             "nu_moved": tloss.log_nu.item() != log_nu}
    checks = {"scaler_saw_overflow": skipped["scale_after"] < init_scale,
              "network_step_skipped": skipped["network_unchanged"], "nu_step_skipped": skipped["nu_unchanged"],
              "finite_step_moves_network": moved["network_moved"], "finite_step_moves_nu": moved["nu_moved"]}
    result = {"autocast_dtype": str(output.dtype), "init_scale": init_scale, **skipped, **moved,
              "log_nu_after": tloss.log_nu.item()}
    return {"result": result, "checks": checks}
