"""ISIC 2017 (Part 1, lesion segmentation): official release -> family of nnU-Net raw datasets.

Reads ``ROOT/<official folder>/`` or ``ROOT/<official folder>.zip`` (members read in place) for
the six folders below, pairs ``ISIC_xxxxxxx.jpg`` with ``ISIC_xxxxxxx_segmentation.png`` by case
id (the first 12 characters) and ignores superpixel maps, metadata CSVs and anything else that is
not a case file. Roles: the 2000 training cases get noisy labels; the 150 validation cases join
imagesTr with clean labels and form fold 0's validation set; the 600 Test_v2 cases are imagesTs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from tloss_nnunet.converters.family import ConversionReport, convert_family
from tloss_nnunet.converters.plan import (
    CaseTask,
    FamilySpec,
    Role,
    noise_settings,
    option_problems,
    output_roots,
)
from tloss_nnunet.converters.sources import Source, list_container
from tloss_nnunet.errors import InputError
from tloss_nnunet.workers import default_workers
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS

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
DEFAULT_FIRST_ID = 500


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
                problems.append(f"{case_id}: appears in both {OFFICIAL_FOLDERS[role_of[case_id]][0]} and {image_folder}")
                continue
            role_of[case_id] = role
            cases.append(CaseTask(case_id, images[case_id], masks[case_id], role))
    return cases, problems


def convert_isic2017(
    root: str | os.PathLike,
    raw: str | os.PathLike | None = None,
    *,
    first_id: int = DEFAULT_FIRST_ID,
    alphas: Sequence[float] = PAPER_ALPHAS,
    betas: Sequence[float] = PAPER_BETAS,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    verify: bool = True,
    install_splits: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert an ISIC 2017 release into ``Dataset{first_id}_ISIC2017_clean`` and one noisy
    dataset per (alpha, beta) (``Dataset{first_id+1}_ISIC2017_a03b05``, ...) under ``raw``.

    Args:
        root: folder holding the official folders and/or their zip files.
        raw: nnU-Net raw folder; default ``$nnUNet_raw``.
        first_id: id of the clean dataset; the noisy ones follow.
        alphas, betas: the noise grid (alpha outer loop, beta inner, as the reference).
        size: output side length (square, aspect not kept, as the paper); 0 keeps native size.
        seed: the noise protocol's seed.
        workers: processes (default: all CPUs); 1 runs in this process.
        overwrite: replace dataset folders with other content.
        verify: run nnU-Net's integrity check on every dataset written.
        install_splits: also copy ``splits_final.json`` into ``$nnUNet_preprocessed/<dataset>/``.

    Returns:
        The :class:`ConversionReport`. Raises :class:`InputError` listing every problem.
    """
    root = Path(root)
    settings, problems = noise_settings(list(alphas), list(betas))
    problems += option_problems(size, first_id, len(settings) + 1)
    raw_path, preprocessed = output_roots(raw, install_splits, problems)
    if problems:
        raise InputError("\n".join(problems))
    cases, input_problems = discover_isic2017(root)
    train_ids = sorted(c.case_id for c in cases if c.role == "train")
    val_ids = sorted(c.case_id for c in cases if c.role == "val")
    spec = FamilySpec(
        family=FAMILY,
        first_id=first_id,
        color=True,
        channel_names={"0": "R", "1": "G", "2": "B"},
        labels={"background": 0, "lesion": 1},
        settings=settings,
        size=size,
        seed=seed,
        cases=tuple(cases),
        splits=[{"train": train_ids, "val": val_ids}],
        provenance={
            "source": str(root.resolve()),
            "converter": "tloss-nnunet convert isic2017",
            "cases": {"train": len(train_ids), "val": len(val_ids),
                      "test": sum(c.role == "test" for c in cases)},
            "splits": "splits_final.json: fold 0 trains on the training cases and validates on the "
                      "(clean) validation cases; imagesTs/labelsTs are the Test_v2 cases",
        },
        dataset_info={
            "reference": "ISIC 2017 Challenge, Part 1: Lesion Segmentation (https://challenge.isic-archive.com)",
            "license": "CC-0 (ISIC Archive); check the terms of your download",
            "description": "ISIC 2017 lesion segmentation in the T-Loss benchmark layout",
        },
    )
    return convert_family(spec, raw_path, workers=workers or default_workers(), overwrite=overwrite,
                          verify=verify, preprocessed=preprocessed, input_problems=input_problems,
                          progress=progress)
