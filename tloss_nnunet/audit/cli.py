"""``tloss-nnunet suspects``: rank a trained nnU-Net model's training cases by how suspect their labels are."""

from __future__ import annotations

import argparse

from tloss_nnunet.errors import InputError

__all__ = ["register"]

#: Kept here (not imported from scores) so that ``--help`` does not import torch.
_SCORES = ("tloss_nll", "tloss_weight", "mse", "one_minus_dice", "one_minus_softmin")


def _suspects(args: argparse.Namespace) -> int:
    from tloss_nnunet.audit.audit import audit_model  # torch and nnU-Net: only when the command runs

    if args.npp < 1 or args.nps < 1:
        raise InputError(f"-npp and -nps must be >= 1, got {args.npp} and {args.nps}")
    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        raise InputError(f"-part_id must be in 0..num_parts-1 and -num_parts >= 1, got -num_parts {args.num_parts} "
                         f"-part_id {args.part_id}")
    result = audit_model(args.model_folder, args.output, args.folds, checkpoint_name=args.checkpoint,
                         raw_folder=args.raw, splits_file=args.splits, device=args.device,
                         processes=(args.npp, args.nps), rank_by=args.rank_by, top_k=args.top_k,
                         progress=not args.quiet, overwrite=args.overwrite, num_parts=args.num_parts,
                         part_id=args.part_id)
    if result.part_cases is not None:
        print(f"part {args.part_id} of {args.num_parts}: {len(result.part_cases)} case(s) predicted into "
              f"{args.output}/predictions; run without -num_parts to score all, once every part is done")
        return 0
    held_out = sum(bool(s.extra["held_out"]) for s in result.ranked)
    print(f"scored {len(result.ranked)} case(s) ({held_out} held out) by {result.rank_by}; most suspect: "
          + ", ".join(s.case for s in result.ranked[:5]))
    if result.not_held_out:
        print(result.not_held_out)
    if result.skipped_folds:
        print(result.skipped_folds)
    print(f"wrote {result.csv}, {result.markdown.name}, {result.gallery.name}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``suspects`` subcommand."""
    p = subparsers.add_parser(
        "suspects",
        help="rank the training cases of a trained nnU-Net model by how suspect their labels are",
        description="Predict every training case of MODEL_FOLDER with nnU-Net's own predictor (probabilities "
        "kept; a re-run reuses them) and score how far each case's label is from the prediction: the T-Loss "
        "negative log-likelihood and per-image weight under the fold's nu (T-Loss models), the mean squared "
        "residual, 1 - Dice and 1 - cleanlab's softmin label quality (any model; the last ranks by default). "
        "Each case is scored by the fold that held it out of training where that fold is trained; the output "
        "says which cases were not held out. Writes OUT_DIR/suspects.csv (rank 1 = most suspect), suspects.md "
        "and suspects.png (a gallery of the top-k).",
    )
    p.add_argument("model_folder", metavar="MODEL_FOLDER",
                   help="trained model folder, e.g. $nnUNet_results/Dataset501_X/nnUNetTrainerTLoss__nnUNetPlans__2d")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the audit (created)")
    p.add_argument("-f", "--folds", nargs="+", type=int, default=None,
                   help="folds to use (default: every fold with the checkpoint)")
    p.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in each fold folder")
    p.add_argument("--raw", default=None, help="raw dataset folder (default: $nnUNet_raw/<the model's dataset>)")
    p.add_argument("--splits", default=None,
                   help="nnU-Net splits file (default: $nnUNet_preprocessed/<dataset>/splits_final.json)")
    p.add_argument("--rank-by", choices=_SCORES, default=None,
                   help="score to rank by (default: one_minus_softmin, 1 - cleanlab's softmin label quality; the "
                   "tloss_* scores need a T-Loss model)")
    p.add_argument("--top-k", type=int, default=12, help="cases in the gallery and the summary (default 12)")
    p.add_argument("-device", "--device", default="cuda", choices=("cuda", "cpu", "mps"),
                   help="as nnUNetv2_predict's -device (default cuda)")
    p.add_argument("-npp", type=int, default=3, help="nnU-Net preprocessing processes (default 3)")
    p.add_argument("-nps", type=int, default=3, help="nnU-Net export processes (default 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true",
                   help="delete files in OUT_DIR/predictions/fold_K that suspects did not write (without it, the "
                   "audit refuses and names them); its own earlier output is replaced anyway")
    p.add_argument("-num_parts", type=int, default=1,
                   help="as nnUNetv2_predict's: split the cases into this many parts, one call each (on several "
                   "GPUs or machines sharing OUT_DIR); a part call only predicts; a final call without -num_parts "
                   "reuses the parts' predictions and ranks (default 1: no split)")
    p.add_argument("-part_id", type=int, default=0,
                   help="which part this call predicts, 0..num_parts-1: the cases sorted(cases)[part_id::num_parts] "
                   "(default 0)")
    p.set_defaults(func=_suspects)
