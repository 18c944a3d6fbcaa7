"""``tloss-nnunet ext-path`` and ``tloss-nnunet export-stock``: the nnU-Net side of the command line."""

from __future__ import annotations

import argparse
import os

from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet import ext_trainer_path

__all__ = ["register"]


def _ext_path(args: argparse.Namespace) -> int:
    path = ext_trainer_path()
    modules = [n for n in os.listdir(path) if n.endswith(".py")] if os.path.isdir(path) else []
    if len(modules) != 1:
        # nnU-Net imports every module there as top-level: anything else in it is a broken install.
        raise InputError(f"the shim folder '{path}' should hold exactly one module, found {modules or 'none'}; "
                         "reinstall tloss-nnunet.")
    print(path)
    return 0


def _export_stock(args: argparse.Namespace) -> int:
    from tloss_nnunet.interrupts import deferred_interrupts

    # imports torch: only when needed, and whole (a Ctrl-C inside torch's C++ start-up aborts the process)
    with deferred_interrupts():
        from tloss_nnunet.nnunet.export import export_stock_model

    result = export_stock_model(args.model_folder, args.output_folder, overwrite=args.overwrite, force=args.force,
                                progress=not args.quiet)
    print(f"exported {len(result.checkpoints)} checkpoint(s) of {result.source_trainer} to {result.output_folder}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ext-path`` and ``export-stock`` subcommands."""
    p = subparsers.add_parser(
        "ext-path",
        help="print the folder to put in nnUNet_extTrainer",
        description="Print the absolute path of the folder holding this package's nnU-Net trainer shim. Use:  "
        'export nnUNet_extTrainer="$(tloss-nnunet ext-path)"  and then  nnUNetv2_train ... -tr nnUNetTrainerTLoss',
    )
    p.set_defaults(func=_ext_path)

    p = subparsers.add_parser(
        "export-stock",
        help="copy a T-Loss model folder so stock nnU-Net can predict with it",
        description="Write OUTPUT_FOLDER/nnUNetTrainer__<plans>__<configuration>: plans.json, dataset.json, "
        "dataset_fingerprint.json and every fold_*/checkpoint_*.pth of MODEL_FOLDER with trainer_name set to "
        "nnUNetTrainer and the T-Loss state removed. nnUNetv2_predict then works without this plugin "
        "(the T-Loss does not change the network). Continuing training from the copy would use nnU-Net's "
        "Dice+CE loss; keep the original for that.",
    )
    p.add_argument("model_folder", metavar="MODEL_FOLDER",
                   help="trained model folder, e.g. $nnUNet_results/Dataset501_X/nnUNetTrainerTLoss__nnUNetPlans__2d")
    p.add_argument("output_folder", metavar="OUTPUT_FOLDER",
                   help="folder that receives the export, e.g. another $nnUNet_results/Dataset501_X")
    p.add_argument("--overwrite", action="store_true",
                   help="replace this tool's own earlier, unchanged export (an export from an older version without "
                   "digests, a changed one or a trained model is never replaced)")
    p.add_argument("--force", action="store_true",
                   help="accept checkpoints of trainers not defined in this package (only if they use nnU-Net's "
                   "default network)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_export_stock)
