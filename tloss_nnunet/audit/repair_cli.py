"""``tloss-nnunet repair``: turn an audit (``tloss-nnunet suspects``) into a new nnU-Net raw dataset with the
most suspect labels repaired (:func:`tloss_nnunet.audit.repair.repair_dataset`)."""

from __future__ import annotations

import argparse

from tloss_nnunet.audit.repair_rules import DEFAULT_CONFIDENCE, REPAIR_MODES

__all__ = ["register"]


def _repair(args: argparse.Namespace) -> int:
    from tloss_nnunet.audit.repair import changed_summary, repair_dataset  # nnU-Net: only when the command runs

    result = repair_dataset(args.audit_dir, args.out_id, mode=args.mode, top_k=args.top_k, fraction=args.fraction,
                            threshold=args.threshold, confidence=args.confidence, name=args.name, out=args.out,
                            raw_folder=args.raw, num_parts=args.num_parts, part_id=args.part_id)
    if result.part_cases is not None and not result.up_to_date:
        print(f"part {args.part_id} of {args.num_parts}: {len(result.part_cases)} repaired label(s) in "
              f"{result.folder}; run without -num_parts to write the dataset, once every part is done")
        return 0
    if result.up_to_date:
        print(f"[up to date] {result.folder}: this repair, unchanged since it was written")
        return 0
    print(f"wrote {result.folder}: {changed_summary(result.record)}; provenance in repair.json")
    print(f"next: nnUNetv2_plan_and_preprocess -d {args.out_id} --verify_dataset_integrity, then train it")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``repair`` subcommand."""
    p = subparsers.add_parser(
        "repair",
        help="write a new nnU-Net raw dataset with the most suspect labels of an audit repaired",
        description="Read the audit in AUDIT_DIR (what tloss-nnunet suspects wrote: the ranking, the held-out "
        "probabilities, audit.json) and write a NEW raw dataset DatasetID_<name>_repaired into $nnUNet_raw (or "
        "--out): the top of the ranking, chosen by exactly one of --top-k, --fraction, --threshold, is repaired "
        "by --mode: 'ignore' turns the pixels where the held-out prediction confidently disagrees with the label "
        "(its class differs and its probability is >= --confidence) into nnU-Net's ignore label, 'replace' makes "
        "the label the held-out prediction, 'drop' leaves the case out. Images and the other labels are "
        "hard-linked (copied across file systems); the source dataset is never changed. repair.png (the "
        "repaired cases before and after) and repair.json (what was done, with digests) go into the new dataset. "
        "Refuses, writing nothing, a dataset changed since the audit and an ID that exists. --mode and the rule "
        "have no default: no combination of the repair study held up with the stock nnU-Net commands "
        "(docs/results/repair.md).",
    )
    p.add_argument("audit_dir", metavar="AUDIT_DIR", help="output folder of tloss-nnunet suspects")
    p.add_argument("--out-id", type=int, required=True, metavar="ID",
                   help="dataset ID of the new dataset (must not exist in the target, nnUNet_preprocessed or "
                   "nnUNet_results)")
    p.add_argument("--name", default=None,
                   help="name part of the new dataset, DatasetID_NAME (default: <source name>_repaired)")
    p.add_argument("--mode", choices=REPAIR_MODES, default=None, help="how to repair a chosen case (required)")
    rule = p.add_argument_group("which cases (exactly one, required)")
    rule.add_argument("--top-k", type=int, default=None, metavar="N", help="the N most suspect cases")
    rule.add_argument("--fraction", type=float, default=None, metavar="F",
                      help="the most suspect ceil(F x cases) cases, 0 < F <= 1")
    rule.add_argument("--threshold", type=float, default=None, metavar="T",
                      help="the cases whose ranking score is at least as suspect as T (the audit's --rank-by score)")
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, metavar="C",
                   help=f"mode ignore: the held-out prediction's probability from which a disagreement counts "
                   f"(default {DEFAULT_CONFIDENCE})")
    p.add_argument("--out", default=None, metavar="DIR", help="target folder (default: $nnUNet_raw)")
    p.add_argument("--raw", default=None, metavar="DIR",
                   help="source raw dataset (default: the folder the audit read, as audit.json records it)")
    p.add_argument("-num_parts", type=int, default=1,
                   help="as nnUNetv2_predict's: split the chosen cases into this many parts, one call each (on "
                   "several machines sharing the folders); a part call only writes its repaired labels into a "
                   "hidden parts folder in the target; a final call without -num_parts takes them and writes the "
                   "dataset (default 1: no split)")
    p.add_argument("-part_id", type=int, default=0,
                   help="which part this call repairs, 0..num_parts-1: the chosen cases sorted(chosen)[part_id::"
                   "num_parts] (default 0)")
    p.set_defaults(func=_repair)
