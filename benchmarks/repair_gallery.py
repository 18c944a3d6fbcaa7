"""The repair study's picture: the most suspect training cases of one audit, before and after repair.

    python -m benchmarks.repair_gallery --dataset 101-201 --setting a0.7b0.7 --work-dir DIR

DIR is the repair study's work folder (``python -m benchmarks.repair --work-dir DIR``): the audit's held-out
probabilities are kept there, its record in ``repair_runs.json``. The picture is drawn by the library's own
``repair.png`` code (:mod:`tloss_nnunet.audit.repair_gallery`) from the study's arrays, the cases ranked by the
study's ranking and repaired with the library's rule (``tloss_nnunet.audit.repair_rules``, confidence 0.9); each
row also says whether the case's label is corrupted and how (the study knows the clean labels; a user does not).
Written to ``benchmarks/results/repair_gallery_<dataset>_<setting>_<mode>.png``. No training: seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import horizon
from benchmarks.repair import CONFIGS, DEFAULT_OUT, SETTINGS
from benchmarks.repair_audit import load_audit
from benchmarks.repair_retrain import IGNORE_VALUE, audit_record, ranking
from benchmarks.studykit import cli, inprocess
from benchmarks.studykit.data import training_case_ids, validation_split
from benchmarks.studykit.inprocess import SettingData
from tloss_nnunet.audit.repair_gallery import GALLERY_CASES, repair_view, write_repair_gallery
from tloss_nnunet.audit.repair_rules import DEFAULT_CONFIDENCE, REPAIR_MODES, changed_pixels, repaired_label
from tloss_nnunet.errors import InputError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.repair_gallery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=tuple(horizon.DATASETS))
    p.add_argument("--setting", required=True, choices=[s for s in SETTINGS if s != "clean"])
    p.add_argument("--mode", default="ignore", choices=REPAIR_MODES)
    p.add_argument("--cases", type=int, default=GALLERY_CASES, help=f"rows, 1..{GALLERY_CASES}")
    p.add_argument("--work-dir", type=Path, required=True, help="the repair study's work folder")
    p.add_argument("--results", type=Path, default=DEFAULT_OUT, help="the repair study's records")
    p.add_argument("--config", default="horizon", choices=tuple(CONFIGS))
    return p.parse_args(argv)


def draw(args: argparse.Namespace) -> Path:
    if not 1 <= args.cases <= GALLERY_CASES:
        raise InputError(f"--cases must be in 1..{GALLERY_CASES}")
    config = CONFIGS[args.config]
    try:
        record = audit_record(args.results, args.dataset, args.setting, config.name)
    except ValueError as err:
        raise InputError(str(err)) from None
    release_seed, noise_seed, first_id = horizon.DATASETS[args.dataset]
    inprocess.activate(args.work_dir)  # nnU-Net reads its folders when first imported
    folders = inprocess.prepare(args.work_dir, config, release_seed=release_seed, noise_seed=noise_seed,
                                first_id=first_id)
    data = SettingData.load(Path(folders[args.setting]), Path(folders["clean"]), validation=True)
    case_ids, _ = validation_split(training_case_ids(Path(folders[args.setting])))  # data's training order
    try:
        probabilities = load_audit(args.work_dir, args.dataset, args.setting, case_ids)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    kinds = {c["case"]: c["kind"] for c in record["cases"]}
    views = []
    for rank, case in enumerate(ranking(record)[:args.cases], start=1):
        i = case_ids.index(case)
        label = data.labels[i, 0]
        repaired = repaired_label(label, probabilities[i], args.mode, IGNORE_VALUE if args.mode == "ignore" else None,
                                  DEFAULT_CONFIDENCE)
        truth = "corrupted: " + kinds[case] if data.corrupted[i] else "label correct"
        views.append(repair_view(f"{case} ({truth})", rank, data.images[i], label, probabilities[i].argmax(0),
                                 repaired, changed_pixels(label, repaired) / label.size))
    out = args.results.parent / f"repair_gallery_{args.dataset}_{args.setting}_{args.mode}.png"
    write_repair_gallery(out, views, IGNORE_VALUE if args.mode == "ignore" else None)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded("repair_gallery", lambda: cli.wrote([draw(args)]))


if __name__ == "__main__":
    raise SystemExit(main())
