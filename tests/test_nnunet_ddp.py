"""nu under DDP: two gloo processes on CPU run the trainer's step helper on different data.

``nnUNetv2_train -num_gpus N`` forces CUDA + NCCL, so the averaging is tested here with
:func:`tloss_nnunet.nnunet.optimization.backward_and_step`, the function ``nnUNetTrainerTLoss.train_step``
calls, under ``torch.distributed`` with the gloo backend.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss, build_tloss_for_nnunet
from tloss_nnunet.nnunet.optimization import backward_and_step, build_nu_optimizer

STEPS = 3
WORLD = 2


def _models(seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    tloss = build_tloss_for_nnunet(False, nu_init=2.0)
    nu_opt = build_nu_optimizer(tloss.parameters(), lr=1e-2)
    # The network's optimiser is irrelevant to nu: lr 0 keeps the network identical on every rank, as DDP would.
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    return net, tloss, opt, nu_opt


def _rank_data(rank: int, step: int):
    g = torch.Generator().manual_seed(1000 * rank + step)
    x = torch.randn(2, 1, 8, 8, generator=g) * (1 + 3 * rank)  # very different residuals per rank
    y = torch.randint(0, 2, (2, 1, 8, 8), generator=g)
    return x, y


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        net, tloss, opt, nu_opt = _models()
        loss_fn = NnUNetTLoss(tloss, False, None)
        for step in range(STEPS):
            opt.zero_grad(set_to_none=True)
            nu_opt.zero_grad(set_to_none=True)
            x, y = _rank_data(rank, step)
            backward_and_step(loss_fn(net(x), y), net.parameters(), opt, nu_opt)
        torch.save({"log_nu": tloss.log_nu.detach().clone()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_reference(average: bool) -> float:
    """Same steps in one process; nu's gradient = mean (average=True) or rank 0's own (False) per step."""
    net, tloss, opt, nu_opt = _models()
    loss_fn = NnUNetTLoss(tloss, False, None)
    for step in range(STEPS):
        grads = []
        for rank in range(WORLD if average else 1):
            tloss.log_nu.grad = None
            x, y = _rank_data(rank, step)
            loss_fn(net(x), y).backward()
            grads.append(tloss.log_nu.grad.clone())
        tloss.log_nu.grad = torch.stack(grads).mean(0)
        nu_opt.step()
    return float(tloss.log_nu.detach())


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_nu_identical_on_all_ranks_and_equal_to_averaged_gradient(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method="spawn")
    nus = [float(torch.load(tmp_path / f"rank{r}.pt")["log_nu"]) for r in range(WORLD)]
    assert nus[0] == nus[1]
    assert nus[0] == pytest.approx(_single_process_reference(average=True), abs=1e-7)
    # Sanity: without averaging rank 0 would have ended elsewhere (the data differ enough to tell).
    assert abs(nus[0] - _single_process_reference(average=False)) > 1e-5
