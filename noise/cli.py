"""``tloss-nnunet noise``: write noisy copies of a mask folder for a grid of (alpha, beta)."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from typing import TYPE_CHECKING

from tloss_nnunet.errors import InputError
from tloss_nnunet.noise.options import noise_grid, workers_problem
from tloss_nnunet.noise.settings import NOISE_KINDS, PAPER_ALPHAS, PAPER_BETAS

if TYPE_CHECKING:  # generate imports OpenCV and scikit-image: only when the command runs, not for --help
    from tloss_nnunet.noise.generate import NoiseRunResult



def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``noise`` subcommand."""
    parser = subparsers.add_parser(
        "noise",
        help="corrupt training masks with the paper's seeded (alpha, beta) protocol",
        description=(
            "Write OUT_DIR/alpha{a}_beta{b}/<case>.png for every setting (every case; clean ones "
            "copied; same 0/1 or 0/255 convention as the input), OUT_DIR/noise_log.csv (kind per "
            "case and setting, plus notes) and OUT_DIR/noise_details.csv (angle, direction, "
            "achieved noise rate). With the default seed the masks are pixel-identical to the "
            "published generator."
        ),
    )
    parser.add_argument("mask_dir", metavar="MASK_DIR", help="folder of binary masks <case>.png")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created if missing)")
    parser.add_argument("--alpha", type=float, nargs="+", default=list(PAPER_ALPHAS),
                        help="fractions of cases to corrupt (default: %(default)s)")
    parser.add_argument("--beta", type=float, nargs="+", default=list(PAPER_BETAS),
                        help="corruption strengths (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the protocol's random stream; 0 reproduces the published masks")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: all usable cores; results do not depend on it)")
    parser.add_argument("--unbiased", action="store_true",
                        help="unbiased translation directions (the published ones always shift "
                             "towards +row/+col); selection, kinds and angles stay the same")
    parser.add_argument("--preview", type=int, default=0, metavar="N",
                        help="write OUT_DIR/preview_<setting>.png with N cases per setting")
    parser.add_argument("--images", metavar="IMAGE_DIR", default=None,
                        help="images <case>.png/.jpg shown in the preview instead of the clean mask")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing setting folders and logs in OUT_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_noise_command)


def _summary(result: NoiseRunResult) -> str:
    """One line per setting: kind counts, mean achieved noise rate of corrupted cases, notes."""
    lines = []
    for name in result.folders:
        records = [record for record in result.records if record.setting == name]
        kinds = Counter(record.spec.kind for record in records)
        rates = [r.noise_rate for r in records if r.spec.kind != "clean" and not math.isnan(r.noise_rate)]
        mean_rate = f"{sum(rates) / len(rates):.3f}" if rates else "n/a"
        notes = sum(1 for record in records if record.note)
        counts = " ".join(f"{kind}={kinds.get(kind, 0)}" for kind in NOISE_KINDS)
        lines.append(f"{name}: {counts} mean_noise_rate={mean_rate} notes={notes}")
    return "\n".join(lines)


def run_noise_command(args: argparse.Namespace) -> int:
    """Handler of ``tloss-nnunet noise``."""
    from tloss_nnunet.noise.generate import generate_noisy_dataset

    settings, problems = noise_grid(args.alpha, args.beta)  # the checks `convert` makes too
    problems += [p for p in (workers_problem(args.workers),) if p]
    if args.preview < 0:
        problems.append("--preview must be >= 0")
    if args.images is not None and args.preview == 0:
        problems.append("--images is only used with --preview N")
    if problems:
        raise InputError("; ".join(problems))
    result = generate_noisy_dataset(
        args.mask_dir,
        args.out_dir,
        settings,
        seed=args.seed,
        workers=args.workers,
        unbiased=args.unbiased,
        preview=args.preview,
        image_dir=args.images,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(_summary(result))
    print(f"wrote {len(result.folders)} setting folder(s), {result.log_path}, {result.details_path}")
    for path in result.preview_paths:
        print(f"preview: {path}")
    return 0
