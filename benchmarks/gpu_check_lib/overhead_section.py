"""Section "overhead": ``benchmarks/trainer_overhead.py`` on the check's device, T-Loss trainer vs stock.

Both trainers are built by nnU-Net from the same plans (AMP on CUDA: autocast + GradScaler; nnU-Net's default
torch.compile of the network on CUDA), then ``train_step`` runs on the same pre-drawn batches, interleaved; the
first iterations (compile, caches) are untimed. Target: T-Loss / stock <= 1.01 per iteration. Peak CUDA memory
of one ``train_step`` of each is recorded too.
"""

from __future__ import annotations

import math

import torch

from benchmarks.trainer_overhead import build_trainers, peak_step_memory, summarize, time_losses, time_train_steps

__all__ = ["TARGET_RATIO", "run_overhead_section"]

TARGET_RATIO = 1.01
DATASET_ID = 990


def run_overhead_section(device: torch.device, settings) -> dict:
    trainers = build_trainers(DATASET_ID, settings.overhead_size, settings.overhead_cases, device)
    stock, ours = trainers["nnUNetTrainer"], trainers["nnUNetTrainerTLoss"]
    batches = [next(stock.dataloader_train) for _ in range(settings.overhead_warmup + settings.overhead_iters)]
    losses = {name: [] for name in trainers}
    steps = time_train_steps({name: _Recording(t, losses[name]) for name, t in trainers.items()}, batches,
                             settings.overhead_warmup, device)
    loss_only = time_losses(trainers, batches[: max(2, len(batches) // 4)], settings.overhead_warmup, device)
    peaks = peak_step_memory(trainers, batches[0], device)
    step_summary, loss_summary = summarize(steps), summarize(loss_only)
    ratio = step_summary["nnUNetTrainerTLoss"]["median_paired_ratio"]
    plans = stock.configuration_manager
    result = {
        "patch_size": list(plans.patch_size), "batch_size": plans.batch_size,
        "deep_supervision_scales": len(stock._get_deep_supervision_scales()),
        "amp": stock.grad_scaler is not None, "compiled": stock._do_i_compile(),
        "train_step": step_summary, "loss_only": loss_summary, "peak_step_bytes": peaks,
        "tloss_over_stock": ratio, "target_ratio": TARGET_RATIO, "target_met": ratio <= TARGET_RATIO,
        "final_nu": ours.tloss.nu, "timed_iterations": settings.overhead_iters,
    }
    checks = {"losses_finite": all(math.isfinite(v) for values in losses.values() for v in values),
              "nu_finite_and_moved": math.isfinite(ours.tloss.nu) and ours.tloss.nu != 1.0}
    if device.type == "cuda" and not settings.smoke:
        checks["amp_and_compile_on"] = result["amp"] and result["compiled"]
        checks[f"tloss_step_at_most_{TARGET_RATIO}x_stock"] = result["target_met"]
    return {"result": result, "checks": checks}


class _Recording:
    """A trainer whose ``train_step`` also keeps each batch's loss value (to check it is finite)."""

    def __init__(self, trainer, sink: list[float]) -> None:
        self.trainer, self.sink = trainer, sink

    def train_step(self, batch: dict) -> dict:
        out = self.trainer.train_step(batch)
        self.sink.append(float(out["loss"]))
        return out


def overhead_markdown(result: dict) -> list[str]:
    if not result:
        return []
    lines = [f"patch {result['patch_size']}, batch {result['batch_size']}, AMP {result['amp']}, "
             f"compile {result['compiled']}, {result['timed_iterations']} timed iterations each, interleaved", "",
             "| trainer | train_step median ms | paired ratio | loss fwd+bwd median ms | peak step MiB |",
             "|---|---|---|---|---|"]
    for name, s in result["train_step"].items():
        peak = result["peak_step_bytes"].get(name)
        lines.append(f"| {name} | {1e3 * s['median_s']:.2f} | {s['median_paired_ratio']:.3f} | "
                     f"{1e3 * result['loss_only'][name]['median_s']:.2f} | "
                     f"{'-' if peak is None else f'{peak / 2**20:.0f}'} |")
    lines += ["", f"T-Loss / stock per iteration: {result['tloss_over_stock']:.3f} "
                  f"(target <= {result['target_ratio']})"]
    return lines
