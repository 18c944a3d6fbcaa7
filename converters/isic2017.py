"""ISIC 2017 (Part 1, lesion segmentation): official release -> family of nnU-Net raw datasets.

Reads ``ROOT/<official folder>/`` or ``ROOT/<official folder>.zip`` (members read in place) for
the six folders below, pairs ``ISIC_xxxxxxx.jpg`` with ``ISIC_xxxxxxx_segmentation.png`` by case
id (the first 12 characters) and ignores superpixel maps, metadata CSVs and anything else that is
not a case file. Roles: the 2000 training cases get noisy labels; the 150 validation cases join
imagesTr with clean labels and form fold 0's validation set; the 600 Test_v2 cases are imagesTs.

``splits_final.json``: by default one fold, the official split (train on the training cases, validate on the
validation cases), as the paper. ``folds=K`` (``--folds K``): K folds over the training cases made by nnU-Net's
own ``generate_crossval_split`` (:func:`~tloss_nnunet.converters.plan.crossval_splits`), so each training case
is held out exactly once (what a label audit needs); the validation cases stay in imagesTr with clean labels
and join every fold's validation set, never trained on, the same clean yardstick for each fold.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tloss_nnunet.converters.family import ConversionReport
from tloss_nnunet.converters.options import ISIC2017_FIRST_ID, ConversionOptions
from tloss_nnunet.converters.plan import CROSSVAL_SEED, CaseTask, FamilySpec, Role, crossval_splits
from tloss_nnunet.converters.sources import Source, list_container

#: role -> (image folder, ground-truth folder), the official names (also of the zips).
OFFICIAL_FOLDERS: dict[Role, tuple[str, str]] = {
    "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
    "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
}
IMAGE_PATTERN = re.compile(r"^(ISIC_\d{7})\.(jpe?g|png)$", re.IGNORECASE)
MASK_PATTERN = re.compile(r"^(ISIC_\d{7})_segmentation\.png$", re.IGNORECASE)
#: Files of the official folders that are not case images (listed so they are skipped knowingly).
IGNORED_PATTERN = re.compile(r"(_superpixels\.png|\.csv|\.txt)$", re.IGNORECASE)

FAMILY = "ISIC2017"
DEFAULT_FIRST_ID = ISIC2017_FIRST_ID


def _index(entries: dict[str, Source], pattern: re.Pattern, where: str,
           problems: list[str]) -> dict[str, Source]:
    """``{case_id: Source}`` for the entries matching ``pattern``; duplicates are problems."""
    found: dict[str, Source] = {}
    for name in sorted(entries):
        match = pattern.match(name)
        if not match:
            continue
        case_id = match.group(1)
        if case_id in found:
            problems.append(f"{where}: {case_id} has two files: {found[case_id].name} and {name}")
            continue
        found[case_id] = entries[name]
    return found


def discover_isic2017(root: Path) -> tuple[list[CaseTask], list[str]]:
    """Pair images and masks of all three splits; return ``(cases, problems)``.

    Problems: missing folder/zip, unreadable zip, image without mask ("missing mask"), mask
    without image ("orphan mask"), two files for one case, a case id in two splits.
    """
    problems: list[str] = []
    if not root.is_dir():
        return [], [f"{root} is not a folder"]
    cases: list[CaseTask] = []
    role_of: dict[str, Role] = {}
    for role, (image_folder, mask_folder) in OFFICIAL_FOLDERS.items():
        images_listing, image_problems = list_container(root, image_folder)
        masks_listing, mask_problems = list_container(root, mask_folder)
        problems += image_problems + mask_problems
        for listing, folder, folder_problems in ((images_listing, image_folder, image_problems),
                                                 (masks_listing, mask_folder, mask_problems)):
            if listing is None and not folder_problems:
                problems.append(f"missing {root / folder}/ (or {folder}.zip)")
        if images_listing is None or masks_listing is None:
            continue
        images = _index(images_listing, IMAGE_PATTERN, image_folder, problems)
        masks = _index(masks_listing, MASK_PATTERN, mask_folder, problems)
        for case_id in sorted(images.keys() - masks.keys()):
            problems.append(f"{case_id}: missing mask {case_id}_segmentation.png in {mask_folder} "
                            f"for image {images[case_id].describe()}")
        for case_id in sorted(masks.keys() - images.keys()):
            problems.append(f"{case_id}: orphan mask {masks[case_id].describe()} (no image in {image_folder})")
        if not images.keys() & masks.keys():
            problems.append(f"no cases (image + mask pairs) found in {image_folder} and {mask_folder}")
        for case_id in sorted(images.keys() & masks.keys()):
            if case_id in role_of:
                problems.append(f"{case_id}: appears in both {OFFICIAL_FOLDERS[role_of[case_id]][0]} "
                                f"and {image_folder}")
                continue
            role_of[case_id] = role
            cases.append(CaseTask(case_id, images[case_id], masks[case_id], role))
    return cases, problems


def isic_splits(train_ids: list[str], val_ids: list[str], folds: int | None) -> list[dict[str, list[str]]]:
    """``splits_final.json``: the official split (``folds=None``), or ``folds`` folds over ``train_ids`` with
    ``val_ids`` in every fold's validation set (see the module docstring). Needs ``folds <= len(train_ids)``."""
    if folds is None:
        return [{"train": train_ids, "val": val_ids}]
    return [{"train": f["train"], "val": f["val"] + val_ids} for f in crossval_splits(train_ids, folds)]


def convert_isic2017(root: str | os.PathLike, raw: str | os.PathLike | None = None,
                     **options: Any) -> ConversionReport:
    """Convert an ISIC 2017 release into ``Dataset{first_id}_ISIC2017_clean`` and one noisy
    dataset per (alpha, beta) (``Dataset{first_id+1}_ISIC2017_a03b05``, ...) under ``raw``.

    Args:
        root: folder holding the official folders and/or their zip files.
        raw: nnU-Net raw folder; default ``$nnUNet_raw``.
        **options: the fields of :class:`~tloss_nnunet.converters.options.ConversionOptions` (``first_id``
            default 500, ``alphas``, ``betas``, ``size``, ``seed``, ``workers``, ``overwrite``, ``verify``,
            ``install_splits``, ``progress``, ``folds``: K folds over the training cases instead of the official
            split, see the module docstring).

    Returns:
        The :class:`ConversionReport`. Raises :class:`InputError` listing every problem.
    """
    root = Path(root)
    checked = ConversionOptions.from_keywords(options, DEFAULT_FIRST_ID).check(raw)
    cases, input_problems = discover_isic2017(root)
    train_ids = sorted(c.case_id for c in cases if c.role == "train")
    val_ids = sorted(c.case_id for c in cases if c.role == "val")
    folds = checked.options.folds
    if folds is not None and cases and len(train_ids) < folds:
        input_problems.append(f"--folds {folds} needs at least {folds} training cases, found {len(train_ids)}")
    spec = FamilySpec(
        family=FAMILY,
        first_id=checked.options.first_id,
        color=True,
        channel_names={"0": "R", "1": "G", "2": "B"},
        labels={"background": 0, "lesion": 1},
        settings=checked.settings,
        size=checked.options.size,
        seed=checked.options.seed,
        cases=tuple(cases),
        splits=isic_splits(train_ids, val_ids, folds) if len(train_ids) >= (folds or 0) else [],
        folds=folds,
        provenance={
            "source": str(root.resolve()),
            "converter": "tloss-nnunet convert isic2017",
            "cases": {"train": len(train_ids), "val": len(val_ids),
                      "test": sum(c.role == "test" for c in cases)},
            "splits": ("splits_final.json: fold 0 trains on the training cases and validates on the "
                       "(clean) validation cases" if folds is None else
                       f"splits_final.json: nnU-Net's generate_crossval_split(training cases, seed={CROSSVAL_SEED}, "
                       f"n_splits={folds}); the (clean) validation cases are in every fold's val")
                      + "; imagesTs/labelsTs are the Test_v2 cases",
        },
        dataset_info={
            "reference": "ISIC 2017 Challenge, Part 1: Lesion Segmentation (https://challenge.isic-archive.com)",
            "license": "CC-0 (ISIC Archive); check the terms of your download",
            "description": "ISIC 2017 lesion segmentation in the T-Loss benchmark layout",
        },
    )
    return checked.convert(spec, input_problems)
