"""Eager vs ``torch.compile`` of the T-Loss on loss_speed.py's pyramids: first-call (compile) time and median step.

    python -m benchmarks.loss_compile                      # 2D case on CPU (needs a C++ compiler for inductor)
    python -m benchmarks.loss_compile --device cuda --cases 2d 3d

The loss is ``DeepSupervisionWrapper(TLoss(...))`` as in loss_speed.py; the compiled variant wraps the TLoss
module in ``torch.compile`` (what a user who compiles the loss gets; nnU-Net compiles only its network). The
pyramid's scales are distinct shapes: the first call compiles (dynamic shapes after the second one). Eager and
compiled steps are interleaved after that; medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.loss_speed import CASES, ds_weights, make_inputs


def _loss(compiled: bool, device: torch.device):
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from tloss_nnunet import TLoss

    tloss = TLoss(softmax=True, to_onehot_y=True, include_background=False).to(device)
    return lambda case: DeepSupervisionWrapper(torch.compile(tloss) if compiled else tloss, ds_weights(case["levels"]))


def _step(loss_fn, logits, labels, device: torch.device) -> float:
    for x in logits:
        x.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    loss_fn(logits, labels).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cases", nargs="+", default=["2d"], choices=list(CASES))
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| case | loss | first call s | median ms | vs eager |\n|---|---|---|---|---|")
    for case_name in args.cases:
        case = CASES[case_name]
        logits, labels = make_inputs(case, device)
        losses = {"eager": _loss(False, device)(case), "compiled": _loss(True, device)(case)}
        first = {name: _step(fn, logits, labels, device) for name, fn in losses.items()}
        times: dict[str, list[float]] = {name: [] for name in losses}
        for i in range(args.repeats):
            for name in (list(losses) if i % 2 == 0 else list(losses)[::-1]):
                times[name].append(_step(losses[name], logits, labels, device))
        eager = statistics.median(times["eager"])
        for name in losses:
            median = statistics.median(times[name])
            print(f"| {case_name} | {name} | {first[name]:.1f} | {1e3 * median:.1f} | {median / eager:.2f} |")


if __name__ == "__main__":
    main()
