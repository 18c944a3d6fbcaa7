"""Speed of the noisy-label generator: fast parallel path vs the literal single-process algorithm.

Part 1 (throughput): N ISIC-like masks at 256 x 256 (0/255 PNGs in a temporary folder), one or
more (alpha, beta) settings. Three runs, side by side, each repeated and reported as the median:

* reference: the published algorithm written out literally (``tloss_nnunet.noise.reference``:
  one-pixel dilation/erosion steps, a fresh padded canvas per translation probe), in one process,
  reading and writing PNGs like the published script;
* fast, 1 worker: ``generate_noisy_dataset(workers=1)`` (distance transforms, cheap probes);
* fast, W workers: the same with a process pool.

All runs must write identical masks; the script checks that and prints it.

Part 2 (compute only): the same masks in memory, no PNG I/O, one process: reference vs fast.

Part 3 (native resolution): one H x W lesion mask (default 4000 x 6000), time per kind for the
fast path; with ``--native-reference`` also for the reference (minutes for dilation/erosion).

Usage::

    python -m benchmarks.noise_speed                      # 2000 masks, alpha 0.7, beta 0.5, 2 workers
    python -m benchmarks.noise_speed --masks 500 --repeats 1 --native-size 2000 3000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.noise import CaseNoise, NoiseSetting, apply_noise, generate_noisy_dataset, plan_noise
from tloss_nnunet.noise.reference import (
    reference_add_noise,
    reference_affine,
    reference_dilate,
    reference_erode,
    reference_protocol,
)
from tloss_nnunet.noise.synthetic import lesion_like_mask


def isic_like_masks(count: int, shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """``count`` lesion-like (H, W) bool masks keyed by ISIC-style ids, none of them empty."""
    rng = np.random.default_rng(seed)
    masks = {}
    for index in range(count):
        mask = lesion_like_mask(rng, shape)
        if not mask.any():  # ISIC masks always contain a lesion
            mask[shape[0] // 2, shape[1] // 2 - 5 : shape[1] // 2 + 5] = True
        masks[f"ISIC_{index:07d}"] = mask
    return masks


def write_masks(folder: Path, count: int, shape: tuple[int, int], seed: int) -> list[str]:
    """Write ``count`` lesion-like 0/255 masks; return their case ids."""
    masks = isic_like_masks(count, shape, seed)
    for case, mask in masks.items():
        cv2.imwrite(str(folder / f"{case}.png"), mask.astype(np.uint8) * 255)
    return list(masks)


def run_reference(mask_dir: Path, out_dir: Path, settings: list[NoiseSetting], seed: int) -> None:
    """The published flow, single process: seeded loop, read, corrupt, write 0/255."""
    cases = sorted(path.stem for path in mask_dir.glob("*.png"))
    for setting in settings:
        target = out_dir / setting.name
        target.mkdir(parents=True)
        rng = random.Random(seed)
        shuffled = cases.copy()
        rng.shuffle(shuffled)
        noisy_ids = set(shuffled[: int(len(shuffled) * setting.alpha)])
        for case in cases:
            label = cv2.imread(str(mask_dir / f"{case}.png"), cv2.IMREAD_UNCHANGED)
            label = (label > 0).astype(np.uint8)
            if case in noisy_ids:
                label, _ = reference_add_noise(label, setting.beta, rng)
            cv2.imwrite(str(target / f"{case}.png"), label * 255)


def same_outputs(first: Path, second: Path, settings: list[NoiseSetting]) -> bool:
    """Whether both output folders hold pixel-identical masks for every setting."""
    for setting in settings:
        names = sorted(p.name for p in (first / setting.name).iterdir())
        if names != sorted(p.name for p in (second / setting.name).iterdir()):
            return False
        for name in names:
            a = cv2.imread(str(first / setting.name / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(second / setting.name / name), cv2.IMREAD_UNCHANGED)
            if not np.array_equal(a, b):
                return False
    return True


def timed(function, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``function(index)``."""
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        function(index)
        times.append(time.perf_counter() - start)
    return times


def throughput(args: argparse.Namespace) -> None:
    settings = [NoiseSetting(a, b) for a in args.alpha for b in args.beta]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mask_dir = root / "masks"
        mask_dir.mkdir()
        write_masks(mask_dir, args.masks, (256, 256), args.seed)
        produced = args.masks * len(settings)
        runs = {
            "reference (literal, 1 process)": lambda i: run_reference(mask_dir, root / f"ref{i}", settings, 0),
            "fast, 1 worker": lambda i: generate_noisy_dataset(
                mask_dir, root / f"fast1_{i}", settings, workers=1, progress=False),
            f"fast, {args.workers} workers": lambda i: generate_noisy_dataset(
                mask_dir, root / f"fastN_{i}", settings, workers=args.workers, progress=False),
        }
        medians = {name: statistics.median(timed(run, args.repeats)) for name, run in runs.items()}
        identical = same_outputs(root / "ref0", root / "fast1_0", settings) and same_outputs(
            root / "ref0", root / "fastN_0", settings)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} cores, load average after the runs (1/5/15 min): {load}")
    names = ", ".join(s.name for s in settings)
    print(f"\n## Throughput: {args.masks} ISIC-like masks at 256x256, settings {names}, "
          f"median of {args.repeats}, masks written = {produced}")
    print("| run | seconds | masks/s | speed-up vs reference |")
    print("|---|---:|---:|---:|")
    reference = medians["reference (literal, 1 process)"]
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} | {produced / seconds:.0f} | {reference / seconds:.1f}x |")
    print(f"\nidentical masks (reference vs fast, both worker counts): {identical}")


def in_memory(args: argparse.Namespace) -> None:
    """Compute only (masks already in memory, no PNG I/O), one process: the algorithmic gain."""
    masks = isic_like_masks(args.masks, (256, 256), args.seed)
    labels = {case: mask.astype(np.uint8) for case, mask in masks.items()}
    settings = [NoiseSetting(a, b) for a in args.alpha for b in args.beta]

    def reference(_: int) -> None:
        for setting in settings:
            reference_protocol(labels, setting.alpha, setting.beta, seed=0)

    def fast(_: int) -> None:
        for setting in settings:
            plan = plan_noise(list(masks), setting, seed=0)
            for case, mask in masks.items():
                apply_noise(mask, plan[case], setting.beta)

    produced = args.masks * len(settings)
    ref_seconds = statistics.median(timed(reference, args.repeats))
    fast_seconds = statistics.median(timed(fast, args.repeats))
    print(f"\n## Compute only (in memory, 1 process), same masks and settings, median of {args.repeats}")
    print("| run | seconds | masks/s | speed-up vs reference |")
    print("|---|---:|---:|---:|")
    print(f"| reference (literal) | {ref_seconds:.2f} | {produced / ref_seconds:.0f} | 1.0x |")
    print(f"| fast | {fast_seconds:.2f} | {produced / fast_seconds:.0f} | {ref_seconds / fast_seconds:.1f}x |")


def native(args: argparse.Namespace) -> None:
    shape = tuple(args.native_size)
    mask = lesion_like_mask(np.random.default_rng(1), shape, size_range=(0.2, 0.3), max_blobs=1,
                            border_margin=-0.3)
    label = mask.astype(np.uint8)
    kinds = {
        "dilate": (CaseNoise("dilate"), lambda: reference_dilate(label, 0.7)),
        "erode": (CaseNoise("erode"), lambda: reference_erode(label, 0.7)),
        "affine": (CaseNoise("affine", angle=14.0, direction=(1, 1)),
                   lambda: reference_affine(label, 0.7, 14.0, (1, 1))),
    }
    print(f"\n## Native resolution: one {shape[0]}x{shape[1]} mask, {int(mask.sum())} lesion px, beta 0.7")
    print("| kind | fast seconds (median of 3) | reference seconds | identical |")
    print("|---|---:|---:|---|")
    for kind, (spec, reference) in kinds.items():
        fast_times = timed(lambda _, spec=spec: apply_noise(mask, spec, 0.7), 3)
        if args.native_reference:
            start = time.perf_counter()
            expected = reference().astype(bool)
            ref_seconds = f"{time.perf_counter() - start:.1f}"
            same = str(np.array_equal(apply_noise(mask, spec, 0.7).mask, expected))
        else:
            ref_seconds, same = "not run (--native-reference)", "-"
        print(f"| {kind} | {statistics.median(fast_times):.2f} | {ref_seconds} | {same} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=2000)
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.7])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.5])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic masks")
    parser.add_argument("--native-size", type=int, nargs=2, default=[4000, 6000], metavar=("H", "W"))
    parser.add_argument("--native-reference", action="store_true",
                        help="also time the literal algorithm at native size (minutes)")
    parser.add_argument("--skip-native", action="store_true")
    args = parser.parse_args()
    throughput(args)
    in_memory(args)
    if not args.skip_native:
        native(args)


if __name__ == "__main__":
    main()
