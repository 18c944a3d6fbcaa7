"""``tloss-nnunet convert {isic2017,shenzhen}`` and ``tloss-nnunet synth {isic2017,shenzhen}``."""

from __future__ import annotations

import argparse
import sys

from tloss_nnunet.converters.options import ISIC2017_FIRST_ID as ISIC_FIRST_ID
from tloss_nnunet.converters.options import SHENZHEN_FIRST_ID
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS
from tloss_nnunet.workers import default_workers


def _add_common_convert_options(parser: argparse.ArgumentParser, default_id: int, folds_help: str) -> None:
    parser.add_argument("--out", metavar="RAW", default=None,
                        help="nnU-Net raw folder to write into (default: $nnUNet_raw)")
    parser.add_argument("--id", type=int, default=default_id, dest="first_id", metavar="ID",
                        help="dataset id of the clean dataset; noisy ones follow consecutively (default: %(default)s)")
    parser.add_argument("--alpha", type=float, nargs="+", default=list(PAPER_ALPHAS),
                        help="fractions of training cases with noisy labels (default: %(default)s)")
    parser.add_argument("--beta", type=float, nargs="+", default=list(PAPER_BETAS),
                        help="noise strengths (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256,
                        help="output side length in pixels, square as in the paper; 0 keeps the native size "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise protocol (default: %(default)s, "
                                                            "the paper's)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="worker processes (default: all CPUs, %(default)s); 1 = no subprocesses")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace dataset folders of these names that hold other content, and files in "
                             "them that convert did not write or that were edited since")
    parser.add_argument("--folds", type=int, default=None, metavar="K", help=folds_help)
    parser.add_argument("--install-splits", action="store_true",
                        help="also copy splits_final.json to $nnUNet_preprocessed/<dataset>/")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip nnU-Net's verify_dataset_integrity on the written datasets")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` and ``synth`` subcommands."""
    convert = subparsers.add_parser(
        "convert", help="official ISIC 2017 / Shenzhen release -> nnU-Net raw datasets (clean + noisy)",
        description="Write one clean nnU-Net raw dataset and one per (alpha, beta) with noisy training "
                    "labels, images hard-linked across them. Every input is validated before any dataset "
                    "folder is written; an interrupted run is completed by running the same command again.")
    kinds = convert.add_subparsers(dest="dataset", metavar="DATASET", required=True)

    isic = kinds.add_parser("isic2017", help="ISIC 2017 Part 1 (lesion segmentation)",
                            description="ROOT holds the official folders ISIC-2017_{Training,Validation,Test_v2}"
                                        "_Data and ..._Part1_GroundTruth, or their .zip files (read in place).")
    isic.add_argument("root", metavar="ROOT", help="folder with the official folders and/or zip files")
    _add_common_convert_options(
        isic, default_id=ISIC_FIRST_ID,
        folds_help="write K >= 2 folds over the training cases into splits_final.json (nnU-Net's own "
                   "generate_crossval_split, each training case held out once, as a label audit needs; the "
                   "validation cases validate every fold); default: the one official train/validation split, "
                   "the paper's protocol")
    isic.set_defaults(func=run_convert_isic2017)

    shenzhen = kinds.add_parser("shenzhen", help="Shenzhen chest X-ray (lung segmentation)",
                                description="Images from the NLM release (CXR_png/), masks from the lung-mask "
                                            "release (mask/ or mask/mask/); paired by stem, images without a "
                                            "mask are skipped; the paper's seeded 70/30 split gives imagesTs.")
    shenzhen.add_argument("images_dir", metavar="IMAGES_DIR", help="CXR_png/ (or ChinaSet_AllFiles/)")
    shenzhen.add_argument("masks_dir", metavar="MASKS_DIR", help="mask/ of the lung-mask release")
    _add_common_convert_options(
        shenzhen, default_id=SHENZHEN_FIRST_ID,
        folds_help="folds over the training cases in splits_final.json (nnU-Net's own generate_crossval_split; "
                   "default: 5, fewer when there are fewer training cases)")
    shenzhen.set_defaults(func=run_convert_shenzhen)

    synth = subparsers.add_parser(
        "synth", help="write a synthetic ISIC 2017 / Shenzhen release in the official layout",
        description="Seeded look-alike releases (official folder and file names) for tests, demos and "
                    "benchmarks, since the real data cannot be downloaded everywhere.")
    synth_kinds = synth.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    s_isic = synth_kinds.add_parser("isic2017", help="dermoscopy-like images with lesion masks")
    s_isic.add_argument("out", metavar="OUT", help="folder to write the release into")
    s_isic.add_argument("--train", type=int, default=8, help="training cases (default: %(default)s)")
    s_isic.add_argument("--val", type=int, default=3, help="validation cases (default: %(default)s)")
    s_isic.add_argument("--test", type=int, default=4, help="Test_v2 cases (default: %(default)s)")
    s_isic.add_argument("--min-size", type=int, default=300, help="smallest image width (default: %(default)s)")
    s_isic.add_argument("--max-size", type=int, default=700, help="largest image width (default: %(default)s)")
    s_isic.add_argument("--zip", action="store_true", help="write the official .zip files instead of folders")
    s_isic.add_argument("--seed", type=int, default=0)
    s_isic.add_argument("--workers", type=int, default=1, help="processes drawing the images")
    s_isic.set_defaults(func=run_synth_isic2017)

    s_sz = synth_kinds.add_parser("shenzhen", help="CXR-like images with lung masks")
    s_sz.add_argument("out", metavar="OUT", help="folder to write the release into")
    s_sz.add_argument("--n", type=int, default=12, help="images (default: %(default)s)")
    s_sz.add_argument("--missing-masks", type=int, default=2, help="images without a mask (default: %(default)s)")
    s_sz.add_argument("--rgb", action="store_true", help="store the CXRs as 3-channel PNGs")
    s_sz.add_argument("--nested-masks", action="store_true", help="put the masks in mask/mask/")
    s_sz.add_argument("--min-size", type=int, default=300, help="smallest image side (default: %(default)s)")
    s_sz.add_argument("--max-size", type=int, default=600, help="largest image side (default: %(default)s)")
    s_sz.add_argument("--seed", type=int, default=0)
    s_sz.add_argument("--workers", type=int, default=1, help="processes drawing the images")
    s_sz.set_defaults(func=run_synth_shenzhen)


def _common_kwargs(args: argparse.Namespace) -> dict:
    return dict(first_id=args.first_id, alphas=args.alpha, betas=args.beta, size=args.size, seed=args.seed,
                workers=args.workers, overwrite=args.overwrite, verify=args.verify,
                install_splits=args.install_splits, progress=not args.quiet, folds=args.folds)


def _finish(report) -> int:
    print(report.format())
    return 0


def run_convert_isic2017(args: argparse.Namespace) -> int:
    """Handler of ``tloss-nnunet convert isic2017``."""
    from tloss_nnunet.converters import IntegrityCheckFailed, convert_isic2017

    try:
        return _finish(convert_isic2017(args.root, args.out, **_common_kwargs(args)))
    except IntegrityCheckFailed as err:
        print(f"tloss-nnunet convert: error: {err}", file=sys.stderr)
        return 1


def run_convert_shenzhen(args: argparse.Namespace) -> int:
    """Handler of ``tloss-nnunet convert shenzhen``."""
    from tloss_nnunet.converters import IntegrityCheckFailed, convert_shenzhen

    try:
        return _finish(convert_shenzhen(args.images_dir, args.masks_dir, args.out, **_common_kwargs(args)))
    except IntegrityCheckFailed as err:
        print(f"tloss-nnunet convert: error: {err}", file=sys.stderr)
        return 1


def _check_sizes(args: argparse.Namespace) -> None:
    from tloss_nnunet.errors import InputError

    if not 8 <= args.min_size <= args.max_size:
        raise InputError(f"need 8 <= --min-size <= --max-size, got {args.min_size} and {args.max_size}")


def run_synth_isic2017(args: argparse.Namespace) -> int:
    """Handler of ``tloss-nnunet synth isic2017``."""
    from tloss_nnunet.converters import write_synthetic_isic2017
    from tloss_nnunet.errors import InputError

    _check_sizes(args)
    if min(args.train, args.val, args.test) < 1:
        raise InputError("--train, --val and --test must be at least 1")
    root = write_synthetic_isic2017(args.out, args.train, args.val, args.test, seed=args.seed,
                                    min_size=args.min_size, max_size=args.max_size, as_zip=args.zip,
                                    workers=args.workers)
    print(f"synthetic ISIC 2017 release ({args.train}/{args.val}/{args.test} cases) in {root}\n"
          f"next: tloss-nnunet convert isic2017 {root} --out $nnUNet_raw")
    return 0


def run_synth_shenzhen(args: argparse.Namespace) -> int:
    """Handler of ``tloss-nnunet synth shenzhen``."""
    from tloss_nnunet.converters import write_synthetic_shenzhen
    from tloss_nnunet.errors import InputError

    _check_sizes(args)
    if not 0 <= args.missing_masks <= args.n:
        raise InputError(f"--missing-masks must be between 0 and --n ({args.n})")
    release = write_synthetic_shenzhen(args.out, args.n, missing_masks=args.missing_masks, rgb=args.rgb,
                                       nested_masks=args.nested_masks, seed=args.seed,
                                       min_size=args.min_size, max_size=args.max_size, workers=args.workers)
    print(f"synthetic Shenzhen release ({args.n} images, {args.missing_masks} without mask) in {release.root}\n"
          f"next: tloss-nnunet convert shenzhen {release.images_dir} {release.masks_dir} --out $nnUNet_raw")
    return 0
