"""Forward+backward time and extra memory of the T-Loss against nnU-Net's and MONAI's default losses.

Cases (nnU-Net-typical tensors, logits with the deep-supervision pyramid of halved resolutions):
  2d: batch 12, 2 classes, 512x512 + 256 ... 16;   3d: batch 2, 3 classes, 128^3 + 64^3 ... 8^3.
Losses:
  tloss    -- TLoss(softmax, one-hot target, no background) under nnU-Net's DeepSupervisionWrapper
  dc_ce    -- nnU-Net's DC_and_CE_loss(MemoryEfficientSoftDiceLoss) under the same wrapper (its default)
  monai    -- MONAI DiceCELoss(softmax, to_onehot_y, no background) under MONAI's DeepSupervisionLoss
  floor    -- forward+backward of softmax(x).sum() over the same pyramid: a bandwidth floor for any
              loss that reads softmax probabilities

Each (case, loss) runs in a fresh subprocess, so peak memory is that loss's alone: on CUDA
``torch.cuda.max_memory_allocated`` above the inputs, on CPU the peak resident set size above the
inputs (with glibc's mmap threshold pinned so that freed tensors leave the resident set). Both
include the logits' gradient, which every loss must produce. Times are medians over ``--repeats`` runs after one warm-up. Usage::

    python benchmarks/loss_speed.py                  # both cases on CPU
    python benchmarks/loss_speed.py --device cuda --cases 2d 3d --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

LOSSES = ("tloss", "dc_ce", "monai", "floor")
CASES = {
    "2d": dict(batch=12, classes=2, size=512, dims=2, levels=6),
    "3d": dict(batch=2, classes=3, size=128, dims=3, levels=5),
}


def make_inputs(case: dict, device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Logit pyramid (B, C, *spatial) requiring grad, and int16 label maps (B, 1, *spatial) per scale."""
    gen = torch.Generator().manual_seed(0)
    logits, labels = [], []
    for level in range(case["levels"]):
        spatial = (case["size"] // 2**level,) * case["dims"]
        x = torch.randn((case["batch"], case["classes"], *spatial), generator=gen).to(device).requires_grad_()
        y = torch.randint(0, case["classes"], (case["batch"], 1, *spatial), generator=gen).to(device, torch.int16)
        logits.append(x)
        labels.append(y)
    return logits, labels


def ds_weights(levels: int) -> list[float]:
    """nnU-Net's deep-supervision weights (single process): 1/2^i, the lowest scale 0, normalised to sum 1."""
    from tloss_nnunet.nnunet.loss_adapter import deep_supervision_weights

    return deep_supervision_weights(levels, is_ddp=False, compiled=False).tolist()


def make_loss(name: str, case: dict, device: torch.device):
    """Return a callable (logits list, labels list) -> scalar loss."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    weights = ds_weights(case["levels"])
    if name == "tloss":
        from tloss_nnunet import TLoss

        loss = DeepSupervisionWrapper(TLoss(softmax=True, to_onehot_y=True, include_background=False), weights)
        return loss.to(device)
    if name == "dc_ce":
        from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

        dc_ce = DC_and_CE_loss(
            {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1, weight_dice=1,
            ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss,
        )
        return DeepSupervisionWrapper(dc_ce, weights).to(device)
    if name == "monai":
        from monai.losses import DiceCELoss

        dice_ce = DiceCELoss(softmax=True, to_onehot_y=True, include_background=False)

        def monai_loss(logits, labels):
            # MONAI's DeepSupervisionLoss resizes one target; feed nnU-Net's pyramid directly with its weights.
            return sum(w * dice_ce(x, y.long()) for w, x, y in zip(weights, logits, labels) if w > 0)

        return monai_loss
    if name == "floor":
        return lambda logits, labels: sum(torch.softmax(x, 1).sum() for x in logits)
    raise ValueError(f"unknown loss {name!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(case_name: str, loss_name: str, device_name: str, repeats: int) -> dict:
    """Time forward+backward of one loss on one case; report median seconds and extra peak memory (bytes)."""
    device = torch.device(device_name)
    case = CASES[case_name]
    logits, labels = make_inputs(case, device)
    loss_fn = make_loss(loss_name, case, device)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _current_rss_bytes()

    def step() -> None:
        for x in logits:
            x.grad = None
        loss_fn(logits, labels).backward()

    step()  # warm-up (and the memory peak of one step)
    _sync(device)
    extra = (torch.cuda.max_memory_allocated() if device.type == "cuda" else _rss_bytes()) - base
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"case": case_name, "loss": loss_name, "median_s": statistics.median(times), "extra_bytes": max(extra, 0)}


def run_in_subprocess(case: str, loss: str, device: str, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, loss, "--device", device, "--repeats", str(repeats)]
    # A fixed mmap threshold makes glibc map every large tensor on its own and unmap it when freed, so the peak
    # resident size tracks live tensors instead of heap fragmentation (glibc otherwise raises the threshold).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def format_table(results: list[dict]) -> str:
    rows = ["| case | loss | median ms | extra MiB | time / dc_ce | memory / dc_ce | time / floor |",
            "|---|---|---|---|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in results):
        by_loss = {r["loss"]: r for r in results if r["case"] == case}
        ref, floor = by_loss["dc_ce"], by_loss["floor"]
        for name in LOSSES:
            r = by_loss[name]
            rows.append(
                f"| {case} | {name} | {1e3 * r['median_s']:.1f} | {r['extra_bytes'] / 2**20:.0f} | "
                f"{r['median_s'] / ref['median_s']:.2f} | {r['extra_bytes'] / max(ref['extra_bytes'], 1):.2f} | "
                f"{r['median_s'] / floor['median_s']:.2f} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.device, args.repeats)))
        return
    results = []
    for case in args.cases:
        for loss in LOSSES:
            results.append(run_in_subprocess(case, loss, args.device, args.repeats))
            print(f"  {case} {loss}: {1e3 * results[-1]['median_s']:.1f} ms", file=sys.stderr)
    print(f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
