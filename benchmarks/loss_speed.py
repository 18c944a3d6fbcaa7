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
include the logits' gradient, which every loss must produce. Times are medians over ``--repeats`` runs after
one warm-up. ``--rounds R`` runs every (case, loss) process R times, interleaved (the order reversed every other
round, so load drifts hit all rows alike), and reports the median over rounds. ``--baseline REV`` adds a row
``tloss@REV``: the T-Loss of git revision REV (its ``tloss_nnunet`` exported to a temporary folder and put first
on the worker's path), measured side by side with this tree's. Usage::

    python -m benchmarks.loss_speed                  # both cases on CPU
    python -m benchmarks.loss_speed --cases 2d --rounds 5 --baseline main    # before/after, side by side
    python -m benchmarks.loss_speed --device cuda --cases 2d 3d --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

LOSSES = ("tloss", "dc_ce", "monai", "floor")
CASES = {
    "2d": dict(batch=12, classes=2, size=512, dims=2, levels=6),
    "3d": dict(batch=2, classes=3, size=128, dims=3, levels=5),
}


def make_inputs(case: dict, device: torch.device,
                dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Logit pyramid (B, C, *spatial) of ``dtype`` requiring grad, and int16 label maps (B, 1, *spatial) per scale."""
    gen = torch.Generator().manual_seed(0)
    logits, labels = [], []
    for level in range(case["levels"]):
        spatial = (case["size"] // 2**level,) * case["dims"]
        x = torch.randn((case["batch"], case["classes"], *spatial), generator=gen).to(device, dtype).requires_grad_()
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


def export_revision(revision: str, folder: str) -> str:
    """Write git revision ``revision``'s ``tloss_nnunet`` package under ``folder``; return ``folder``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "tloss_nnunet"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def run_in_subprocess(case: str, loss: str, device: str, repeats: int, code_path: str | None = None) -> dict:
    """One (case, loss) measurement in a fresh process; ``code_path`` first on its path (a baseline's package)."""
    cmd = [sys.executable, __file__, "--worker", case, loss, "--device", device, "--repeats", str(repeats)]
    # A fixed mmap threshold makes glibc map every large tensor on its own and unmap it when freed, so the peak
    # resident size tracks live tensors instead of heap fragmentation (glibc otherwise raises the threshold).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    if code_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_path, env.get("PYTHONPATH")]))
        env["TLOSS_EXPECT_PACKAGE_UNDER"] = code_path
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_rounds(cases: list[str], device: str, repeats: int, rounds: int,
               baseline: tuple[str, str] | None) -> list[dict]:
    """Every (case, loss) process ``rounds`` times, interleaved; per row the median over rounds."""
    rows = [(case, loss, None) for case in cases for loss in LOSSES]
    if baseline is not None:
        rows += [(case, f"tloss@{baseline[0]}", baseline[1]) for case in cases]
    runs: dict[tuple[str, str], list[dict]] = {(case, name): [] for case, name, _ in rows}
    for index in range(rounds):
        for case, name, code_path in (rows if index % 2 == 0 else rows[::-1]):
            result = run_in_subprocess(case, name.split("@")[0], device, repeats, code_path)
            runs[case, name].append(result)
            print(f"  round {index + 1}/{rounds} {case} {name}: {1e3 * result['median_s']:.1f} ms", file=sys.stderr)
    return [{"case": case, "loss": name, "median_s": statistics.median(r["median_s"] for r in results),
             "extra_bytes": statistics.median(r["extra_bytes"] for r in results),
             "round_medians_s": [r["median_s"] for r in results]}
            for (case, name), results in runs.items()]


def format_table(results: list[dict]) -> str:
    rows = ["| case | loss | median ms | extra MiB | time / dc_ce | memory / dc_ce | time / floor |",
            "|---|---|---|---|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in results):
        by_loss = {r["loss"]: r for r in results if r["case"] == case}
        ref, floor = by_loss["dc_ce"], by_loss["floor"]
        for name in by_loss:
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
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all processes (median)")
    parser.add_argument("--baseline", metavar="REV", help="also measure the T-Loss of this git revision")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        expected = os.environ.get("TLOSS_EXPECT_PACKAGE_UNDER")
        if expected is not None:  # a baseline row must measure the exported revision, not this tree
            import tloss_nnunet

            assert Path(tloss_nnunet.__file__).resolve().is_relative_to(Path(expected).resolve()), tloss_nnunet.__file__
        print(json.dumps(measure(*args.worker, args.device, args.repeats)))
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tloss-baseline-") as folder:
        baseline = (args.baseline, export_revision(args.baseline, folder)) if args.baseline else None
        results = run_rounds(args.cases, args.device, args.repeats, args.rounds, baseline)
    print(f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, repeats "
          f"{args.repeats}, rounds {args.rounds}, load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
