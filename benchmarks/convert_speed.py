"""Speed of ``convert isic2017`` against the floor of decoding, resizing and encoding the same files.

A synthetic ISIC 2017 release at ISIC-like sizes is written to a temporary folder (default: 2000
training images 1000-4000 px wide, plus a few validation/test cases, superpixel decoys and
metadata CSVs, as in the real release). Then, with the same number of worker processes:

* floor: per case, read the JPEG image and the PNG mask, decode both, resize to 256 x 256
  (INTER_LINEAR / INTER_NEAREST) and encode both as PNG in memory: the work any converter must do;
* floor (images only): the same for the JPEG images alone, for reference;
* converter: ``convert_isic2017`` with the paper's full grid (clean + alpha {0.3, 0.5, 0.7} x
  beta {0.5, 0.7} = 7 datasets): validation, noise for 6 settings, staging, hard-linking,
  dataset.json/splits, and nnU-Net's ``verify_dataset_integrity`` on all 7 datasets, whose time
  is reported separately (it is nnU-Net's own cost, the same as ``--verify_dataset_integrity``).

Each measurement is repeated ``--repeats`` times (a fresh output folder each time); the table
shows medians. The process pool is started once before timing (the fork server imports the
package once per process; that one-off cost is excluded from every row alike).

Usage::

    python -m benchmarks.convert_speed                  # full size: 2000 training images
    python -m benchmarks.convert_speed --quick          # 60 images, 600-1200 px, 3 repeats
    python -m benchmarks.convert_speed --n-train 300 --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.converters import convert_isic2017, discover_isic2017, write_synthetic_isic2017
from tloss_nnunet.converters.sources import Source
from tloss_nnunet.workers import process_pool


def _init_worker() -> None:
    cv2.setNumThreads(1)


def floor_case(pair: tuple[Source, Source | None]) -> int:
    """Decode, resize to 256 x 256 and PNG-encode one image (and its mask); return bytes encoded."""
    image_src, mask_src = pair
    image = cv2.imdecode(np.frombuffer(image_src.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    encoded = len(cv2.imencode(".png", cv2.resize(image, (256, 256), interpolation=cv2.INTER_LINEAR))[1])
    if mask_src is not None:
        mask = cv2.imdecode(np.frombuffer(mask_src.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize((mask > 0).astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
        encoded += len(cv2.imencode(".png", small)[1])
    return encoded


def run_floor(pairs: list[tuple[Source, Source | None]], workers: int) -> float:
    started = time.perf_counter()
    # The converter's own pool policy, so the floor pays the same start-up cost.
    with process_pool(workers, initializer=_init_worker, preload=["tloss_nnunet.converters.staging"]) as pool:
        total = sum(pool.map(floor_case, pairs, chunksize=4))
    assert total > 0
    return time.perf_counter() - started


def run_converter(release: Path, out: Path, workers: int, verify: bool) -> dict[str, float]:
    if out.exists():
        shutil.rmtree(out)
    report = convert_isic2017(release, out, workers=workers, verify=verify, progress=False)
    return report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=10)
    parser.add_argument("--n-test", type=int, default=10)
    parser.add_argument("--min-size", type=int, default=1000, help="smallest image width")
    parser.add_argument("--max-size", type=int, default=4000, help="largest image width")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-verify", action="store_true", help="skip nnU-Net's integrity check")
    parser.add_argument("--quick", action="store_true", help="60 images of 600-1200 px, 3 repeats")
    parser.add_argument("--workdir", default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_val, args.n_test = 60, 4, 4
        args.min_size, args.max_size, args.repeats = 600, 1200, 3

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="convert_speed_"))
    started = time.perf_counter()
    release = write_synthetic_isic2017(workdir / "release", args.n_train, args.n_val, args.n_test, seed=0,
                                       min_size=args.min_size, max_size=args.max_size, workers=args.workers)
    n_cases = args.n_train + args.n_val + args.n_test
    megapixels = sum(cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8).size * 64
                     for p in sorted(release.glob("*_Data/ISIC_???????.jpg"))[:50]) / min(50, n_cases) / 1e6
    print(f"synthetic release: {n_cases} cases, widths {args.min_size}-{args.max_size} px "
          f"(~{megapixels:.1f} MP per image), written in {time.perf_counter() - started:.0f} s to {release}")

    cases, problems = discover_isic2017(release)
    assert not problems, problems
    pairs = [(c.image, c.mask) for c in cases]
    run_floor(pairs[:2], args.workers)  # start the fork server once, outside every timing

    floors, image_floors, conversions = [], [], []
    for _ in range(args.repeats):
        floors.append(run_floor(pairs, args.workers))
        image_floors.append(run_floor([(image, None) for image, _ in pairs], args.workers))
        conversions.append(run_converter(release, workdir / "raw", args.workers, verify=not args.no_verify))

    floor = statistics.median(floors)
    image_floor = statistics.median(image_floors)
    total = statistics.median(c["total"] for c in conversions)
    verifying = statistics.median(c.get("verifying", 0.0) for c in conversions)
    own = statistics.median(c["total"] - c.get("verifying", 0.0) for c in conversions)
    rows = [
        ("floor: decode + resize + encode image and mask", floor),
        ("floor (images only)", image_floor),
        ("converter, 7 datasets, without nnU-Net's check", own),
        ("  of which staging (decode, validate, resize, noise)", statistics.median(c["staging"] for c in conversions)),
        ("  of which publishing (links, json, splits)", statistics.median(c["publishing"] for c in conversions)),
    ]
    if not args.no_verify:
        rows += [("nnU-Net verify_dataset_integrity, 7 datasets", verifying),
                 ("converter, 7 datasets, total", total)]
    print(f"\nworkers={args.workers}, repeats={args.repeats} (medians), {n_cases} cases\n")
    print(f"| {'measure':<52} | {'seconds':>8} | {'cases/s':>8} | {'floor/this':>10} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for label, seconds in rows:
        ratio = f"{floor / seconds:10.2f}" if not label.startswith("  ") else " " * 10
        print(f"| {label:<52} | {seconds:8.1f} | {n_cases / seconds:8.1f} | {ratio} |")
    print(f"\ntarget: converter (without the check) >= 0.8 of the floor's speed: "
          f"{floor / own:.2f} -> {'met' if floor / own >= 0.8 else 'NOT met'}")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
