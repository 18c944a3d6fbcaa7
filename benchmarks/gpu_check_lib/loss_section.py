"""Section "loss": forward + backward time and peak memory of the T-Loss, nnU-Net's Dice+CE and the floor.

For every case (2D: batch 12, 2 classes, 512^2 pyramid; 3D: batch 2, 3 classes, 128^3 pyramid), logit dtype
(float32 / float16 / bfloat16) and loss:

* ``tloss``: ``TLoss(softmax, one-hot, no background)`` under nnU-Net's ``DeepSupervisionWrapper`` and weights;
* ``dc_ce``: nnU-Net's ``DC_and_CE_loss`` (its default) under the same wrapper;
* ``floor``: forward + backward of ``softmax(x).sum()`` over the same pyramid.

The inputs and losses are ``benchmarks/loss_speed.py``'s. The loss runs under autocast of the logits' dtype, as
in nnU-Net's ``train_step``. CUDA: CUDA events per step (median) and ``max_memory_allocated`` above the inputs
(it includes the logits' gradient); CPU: wall time, no memory figure (``loss_speed.py`` measures CPU memory).
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext

import torch

from benchmarks.loss_speed import make_inputs, make_loss

__all__ = ["LOSSES", "run_loss_section"]

LOSSES = ("tloss", "dc_ce", "floor")


def _step_seconds(step, device: torch.device) -> float:
    """Seconds of one ``step()``: CUDA events on CUDA (GPU time), wall time elsewhere."""
    if device.type != "cuda":
        start = time.perf_counter()
        step()
        return time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    step()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1e3


def measure_loss(case: dict, loss_name: str, dtype: torch.dtype, device: torch.device, repeats: int,
                 warmup: int) -> dict:
    """Median seconds of forward + backward and peak extra bytes (CUDA) of one loss on one case and dtype."""
    logits, labels = make_inputs(case, device, dtype)
    loss_fn = make_loss(loss_name, case, device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()

    def step() -> None:
        for x in logits:
            x.grad = None
        with autocast:
            value = loss_fn(logits, labels)
        value.backward()

    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    for _ in range(warmup):
        step()
    times = [_step_seconds(step, device) for _ in range(repeats)]
    # nnU-Net's lowest scale has weight 0: the wrapper skips it, so its logits get no gradient at all.
    grads = [x.grad for x in logits if x.grad is not None]
    finite = bool(grads) and all(torch.isfinite(g).all().item() for g in grads)
    return {"median_s": statistics.median(times), "extra_bytes": peak, "finite_grad": finite}


def run_loss_section(device: torch.device, settings) -> dict:
    """Every (case, dtype, loss); ratios to the floor and to Dice+CE per (case, dtype)."""
    rows = []
    for case_name, case in settings.loss_cases.items():
        for dtype_name in settings.loss_dtypes:
            dtype = getattr(torch, dtype_name)
            found = {}
            for loss_name in LOSSES:
                try:
                    found[loss_name] = measure_loss(case, loss_name, dtype, device, settings.loss_repeats,
                                                    settings.loss_warmup)
                except Exception as error:  # noqa: BLE001 -- e.g. a dtype an op lacks on this device
                    found[loss_name] = {"error": f"{type(error).__name__}: {error}"}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            for loss_name, r in found.items():
                row = {"case": case_name, "dtype": dtype_name, "loss": loss_name, **r}
                for ref in ("floor", "dc_ce"):
                    if "median_s" in r and "median_s" in found[ref]:
                        row[f"time_vs_{ref}"] = r["median_s"] / found[ref]["median_s"]
                    if r.get("extra_bytes") and (found[ref].get("extra_bytes") or 0) > 0:
                        row[f"memory_vs_{ref}"] = r["extra_bytes"] / found[ref]["extra_bytes"]
                rows.append(row)
    tloss = [r for r in rows if r["loss"] == "tloss"]
    checks = {"all_rows_ran": all("error" not in r for r in rows),
              "tloss_gradients_finite": all(r.get("finite_grad", False) for r in tloss)}
    return {"result": {"rows": rows}, "checks": checks}


def loss_markdown(result: dict) -> list[str]:
    lines = ["| case | dtype | loss | median ms | peak extra MiB | time / floor | time / dc_ce | memory / floor |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        if "error" in r:
            lines.append(f"| {r['case']} | {r['dtype']} | {r['loss']} | error: {r['error'][:80]} | | | | |")
            continue
        mib = "-" if r.get("extra_bytes") is None else f"{r['extra_bytes'] / 2**20:.0f}"
        fmt = lambda key, r=r: f"{r[key]:.2f}" if key in r else "-"  # noqa: E731
        lines.append(f"| {r['case']} | {r['dtype']} | {r['loss']} | {1e3 * r['median_s']:.2f} | {mib} | "
                     f"{fmt('time_vs_floor')} | {fmt('time_vs_dc_ce')} | {fmt('memory_vs_floor')} |")
    return lines
