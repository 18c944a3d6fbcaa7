"""Time per training iteration: nnUNetTrainerTLoss vs nnU-Net's stock nnUNetTrainer, same plans and batches.

A synthetic 2D dataset is written, planned and preprocessed in a temporary folder; both trainers are built
from the same plans and run ``train_step`` on the SAME pre-drawn batches, interleaved (stock, T-Loss, stock, ...
with the order swapped every iteration) so that machine load affects both alike. Data loading is excluded:
what differs between the two is the loss, its backward and the nu optimiser step. Target: ratio <= 1.02.

Two tables are printed: whole ``train_step`` (network forward/backward + loss + optimiser steps), and the
loss alone (forward + backward of ``trainer.loss`` on the same detached network outputs), which isolates the
cost the T-Loss adds. Besides medians, the median of the per-pair ratios (the two trainers timed back to back
on the same batch) and the minima are shown: on a shared machine they are far less sensitive to other load.

    python -m benchmarks.trainer_overhead                      # CPU, 64x64 images
    python -m benchmarks.trainer_overhead --device cuda        # CUDA: autocast + GradScaler + torch.compile
    python -m benchmarks.trainer_overhead --size 128 --iters 100 --threads 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--size", type=int, default=64, help="image edge in pixels (= nnU-Net's 2D patch)")
    p.add_argument("--cases", type=int, default=8, help="synthetic training cases")
    p.add_argument("--iters", type=int, default=40, help="timed iterations per trainer")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations per trainer first (compile, caches)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--keep", action="store_true", help="keep the temporary nnU-Net folders")
    p.add_argument("--no-compile", action="store_true", help="CUDA: set nnUNet_compile=0 (default: nnU-Net's "
                   "default, i.e. compile on)")
    return p.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    """nnU-Net's rule: autocast on CUDA only."""
    from nnunetv2.utilities.helpers import dummy_context

    return torch.autocast(device.type, enabled=True) if device.type == "cuda" else dummy_context()


def _interleaved(names: list[str], step, items: list, warmup: int, device: torch.device,
                 desc: str) -> dict[str, list[float]]:
    """Run ``step(name, item)`` for every item and name, alternating the order; return timings after warm-up."""
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, item in enumerate(tqdm(items, desc=desc, unit="it")):
        for name in (names if i % 2 == 0 else names[::-1]):
            _sync(device)
            start = time.perf_counter()
            step(name, item)
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def _table(title: str, times: dict[str, list[float]], scale: float, unit: str) -> None:
    """Markdown table: median, quartiles, minimum, ratio of medians and median of per-pair ratios to stock."""
    base_name = next(iter(times))
    base = times[base_name]
    print(f"{title}\n")
    print(f"| trainer | median {unit} | p25 | p75 | min | ratio of medians | median paired ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, values in times.items():
        q = statistics.quantiles(values, n=4)
        paired = statistics.median(v / b for v, b in zip(values, base))
        print(f"| {name} | {statistics.median(values) * scale:.4g} | {q[0] * scale:.4g} | {q[2] * scale:.4g} | "
              f"{min(values) * scale:.4g} | {statistics.median(values) / statistics.median(base):.3f} | "
              f"{paired:.3f} |")
    print()


def configure_environment(work: str, device: str, compile_network: bool = True) -> None:
    """Point this process's nnU-Net at folders under ``work`` (:func:`~tloss_nnunet.repro.nnunet_env.nnunet_env`);
    call before importing nnunetv2. The trainers here are fed in-process: no augmentation workers, one worker
    for nnU-Net's pools. CPU, or ``compile_network=False``: ``nnUNet_compile=0``; else the variable is unset,
    which is nnU-Net's default (compile on CUDA).
    """
    from tloss_nnunet.repro.nnunet_env import nnunet_env

    base = {k: v for k, v in os.environ.items() if k != "nnUNet_compile"}
    base.update(nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1")
    env = nnunet_env(Path(work), device, base=base)
    if not compile_network:
        env["nnUNet_compile"] = "0"
    os.environ.pop("nnUNet_compile", None)
    os.environ.update(env)


def build_trainers(dataset_id: int, size: int, cases: int, device: torch.device) -> dict:
    """Write and plan a synthetic 2D dataset; return {name: trainer} for the stock and the T-Loss trainer, both
    initialised (network, optimisers, compile when nnU-Net's rule says so) and at the start of an epoch."""
    # Imported here: nnU-Net reads its environment when first imported.
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
    from tloss_nnunet.repro.inprocess import make_trainer, plan_and_preprocess_in_process
    from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

    write_synthetic_dataset(os.environ["nnUNet_raw"], dataset_id, "2d", num_train=cases, num_test=0, size=size)
    plan_and_preprocess_in_process(dataset_id, ("2d",))
    trainers = {}
    for cls in (nnUNetTrainer, nnUNetTrainerTLoss):
        torch.manual_seed(0)
        trainer = make_trainer(cls, dataset_id, "2d", 0, device)
        trainer.on_train_start()
        trainer.on_train_epoch_start()
        trainers[cls.__name__] = trainer
    return trainers


def time_train_steps(trainers: dict, batches: list, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of ``train_step`` per trainer on the same batches, interleaved (the first ``warmup`` untimed)."""
    return _interleaved(list(trainers), lambda name, batch: trainers[name].train_step(batch), batches, warmup,
                        device, "interleaved train_step")


def time_losses(trainers: dict, batches: list, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each trainer's loss forward + backward on the same detached network outputs, interleaved."""
    stock = next(iter(trainers.values()))
    with torch.no_grad(), _autocast(device):
        outputs = [stock.network(b["data"].to(device)) for b in batches[:10]]
    targets = [[t.to(device) for t in b["target"]] for b in batches[:10]]

    def loss_step(name: str, index: int) -> None:
        out = [o.detach().clone().requires_grad_(True) for o in outputs[index % len(outputs)]]
        with _autocast(device):
            value = trainers[name].loss(out, targets[index % len(outputs)])
        value.backward()

    return _interleaved(list(trainers), loss_step, list(range(len(batches) * 5)), warmup, device,
                        "interleaved loss fwd+bwd")


def peak_step_memory(trainers: dict, batch: dict, device: torch.device) -> dict[str, int | None]:
    """Peak CUDA memory (bytes, ``max_memory_allocated``) of one ``train_step`` per trainer; None off CUDA."""
    peaks: dict[str, int | None] = {}
    for name, trainer in trainers.items():
        if device.type != "cuda":
            peaks[name] = None
            continue
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        trainer.train_step(batch)
        torch.cuda.synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device)
    return peaks


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per trainer: median, minimum, ratio of medians and median paired ratio to the first (stock) trainer."""
    base = next(iter(times.values()))
    return {name: {"median_s": statistics.median(values), "min_s": min(values),
                   "ratio_of_medians": statistics.median(values) / statistics.median(base),
                   "median_paired_ratio": statistics.median(v / b for v, b in zip(values, base))}
            for name, values in times.items()}


def main() -> int:
    args = _parse()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="tloss_overhead_")
    configure_environment(work, args.device, compile_network=not args.no_compile)
    device = torch.device(args.device)
    trainers = build_trainers(990, args.size, args.cases, device)
    stock = trainers["nnUNetTrainer"]
    batches = [next(stock.dataloader_train) for _ in range(args.warmup + args.iters)]
    step_times = time_train_steps(trainers, batches, args.warmup, device)
    loss_times = time_losses(trainers, batches, args.warmup, device)
    peaks = peak_step_memory(trainers, batches[0], device)
    names = list(trainers)

    plans = stock.configuration_manager
    print(f"\ndevice {args.device} (torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), patch {plans.patch_size}, batch {plans.batch_size}, "
          f"deep supervision scales {len(stock._get_deep_supervision_scales())}, "
          f"AMP {'on' if args.device == 'cuda' else 'off'}, compile {stock._do_i_compile()}\n")
    _table(f"train_step ({args.iters} timed iterations each after {args.warmup} warm-up, interleaved)", step_times,
           scale=1.0, unit="s")
    _table(f"loss forward + backward only ({len(loss_times[names[0]])} timed calls each, interleaved)", loss_times,
           scale=1e3, unit="ms")
    if device.type == "cuda":
        print("peak memory of one train_step: " + ", ".join(f"{n} {b / 2**20:.0f} MiB" for n, b in peaks.items()))
    print(f"\nfinal nu of nnUNetTrainerTLoss: {trainers['nnUNetTrainerTLoss'].tloss.nu:.5f}")
    if args.keep:
        print(f"(work folder kept: {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
