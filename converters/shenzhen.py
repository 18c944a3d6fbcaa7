"""Shenzhen chest X-ray (lung segmentation): NLM images + lung masks -> family of nnU-Net raw datasets.

Images come from the NLM "ChinaSet_AllFiles" release (``CXR_png/CHNCXR_0001_0.png``; the
``ChinaSet_AllFiles`` folder itself is accepted too), masks from the lung-mask release
(``mask/CHNCXR_0001_0_mask.png``, also found when nested as ``mask/mask/``). Pairing is by stem;
images without a mask are not part of the benchmark: they are skipped and counted. A mask
without an image is a problem.

Split (the paper's): sort the paired stems, ``random.Random(seed).sample(stems, round(0.3 * n))``
are the test cases (imagesTs/labelsTs, clean), the rest are training cases (noisy labels).
``splits_final.json``: 5 folds (``folds=K``, ``--folds K``: K) over the training cases made by nnU-Net's own
``generate_crossval_split`` with its default seed 12345, i.e. the folds nnU-Net would draw itself,
written out so that every member of the family uses the same ones.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tloss_nnunet.converters.family import ConversionReport
from tloss_nnunet.converters.options import SHENZHEN_FIRST_ID, ConversionOptions
from tloss_nnunet.converters.plan import CROSSVAL_SEED, CaseTask, FamilySpec, crossval_splits
from tloss_nnunet.converters.sources import Source, list_folder

IMAGE_PATTERN = re.compile(r"^(CHNCXR_\d{4}_[01])\.png$", re.IGNORECASE)
MASK_PATTERN = re.compile(r"^(CHNCXR_\d{4}_[01])_mask\.png$", re.IGNORECASE)
TEST_FRACTION = 0.3
FAMILY = "Shenzhen"
DEFAULT_FIRST_ID = SHENZHEN_FIRST_ID
#: nnU-Net's default number of folds (seed: :data:`~tloss_nnunet.converters.plan.CROSSVAL_SEED`).
CROSSVAL_FOLDS = 5


def _resolve_images_dir(folder: Path) -> Path:
    """Accept ``CXR_png/`` itself or the release folder that contains it."""
    return folder / "CXR_png" if (folder / "CXR_png").is_dir() else folder


def _resolve_masks_dir(folder: Path) -> Path:
    """Descend into nested ``mask/`` folders (some mirrors ship ``mask/mask/``) until masks appear."""
    while (folder / "mask").is_dir() and not any(MASK_PATTERN.match(p.name) for p in folder.iterdir()):
        folder = folder / "mask"
    return folder


def _index(entries: dict[str, Source], pattern: re.Pattern) -> dict[str, Source]:
    return {m.group(1): src for name, src in sorted(entries.items()) if (m := pattern.match(name))}


def discover_shenzhen(images_dir: Path,
                      masks_dir: Path) -> tuple[list[tuple[str, Source, Source]], list[str], list[str]]:
    """Pair CXRs and lung masks by stem.

    Returns ``(pairs, skipped, problems)``: ``pairs`` sorted by stem as ``(stem, image, mask)``,
    ``skipped`` the stems of images without a mask, ``problems`` missing folders and orphan masks.
    """
    problems: list[str] = []
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            problems.append(f"{what} folder {folder} does not exist")
    if problems:
        return [], [], problems
    images = _index(list_folder(_resolve_images_dir(images_dir)), IMAGE_PATTERN)
    masks = _index(list_folder(_resolve_masks_dir(masks_dir)), MASK_PATTERN)
    if not images:
        problems.append(f"no CXR images (CHNCXR_xxxx_y.png) in {_resolve_images_dir(images_dir)}")
    if not masks:
        problems.append(f"no lung masks (CHNCXR_xxxx_y_mask.png) in {_resolve_masks_dir(masks_dir)}")
    for stem in sorted(masks.keys() - images.keys()):
        problems.append(f"{stem}: orphan mask {masks[stem].describe()} (no image {stem}.png)")
    skipped = sorted(images.keys() - masks.keys())
    pairs = [(stem, images[stem], masks[stem]) for stem in sorted(images.keys() & masks.keys())]
    return pairs, skipped, problems


def split_test_cases(stems: Sequence[str], seed: int = 0) -> set[str]:
    """The paper's test set: ``random.seed(seed); random.sample(sorted(stems), round(0.3 * n))``."""
    ordered = sorted(stems)
    return set(random.Random(seed).sample(ordered, round(len(ordered) * TEST_FRACTION)))


def convert_shenzhen(images_dir: str | os.PathLike, masks_dir: str | os.PathLike,
                     raw: str | os.PathLike | None = None, **options: Any) -> ConversionReport:
    """Convert the Shenzhen CXR release into ``Dataset{first_id}_Shenzhen_clean`` and one noisy
    dataset per (alpha, beta) under ``raw``; ``options`` as :func:`~.isic2017.convert_isic2017`
    (``first_id`` default 510; ``folds`` default 5, fewer when there are fewer training cases).

    ``seed`` drives both the 70/30 split and the noise protocol (0 = the paper's).
    Images are written as one grey channel (colour-stored CXRs are converted).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    checked = ConversionOptions.from_keywords(options, DEFAULT_FIRST_ID).check(raw)
    seed = checked.options.seed
    pairs, skipped, input_problems = discover_shenzhen(images_dir, masks_dir)
    test_ids = split_test_cases([stem for stem, _, _ in pairs], seed)
    cases = tuple(CaseTask(stem, image, mask, "test" if stem in test_ids else "train")
                  for stem, image, mask in pairs)
    train_ids = sorted(c.case_id for c in cases if c.role == "train")
    if pairs and len(train_ids) < 2:
        input_problems.append(f"only {len(train_ids)} training case(s) after the 70/30 split; need at least 2")
    folds = checked.options.folds or CROSSVAL_FOLDS  # the default: 5, fewer when there are fewer cases
    if pairs and checked.options.folds and len(train_ids) < folds:
        input_problems.append(f"--folds {folds} needs at least {folds} training cases, found {len(train_ids)}")
    n_splits = min(folds, len(train_ids))
    spec = FamilySpec(
        family=FAMILY,
        first_id=checked.options.first_id,
        color=False,
        channel_names={"0": "X-ray"},
        labels={"background": 0, "lung": 1},
        settings=checked.settings,
        size=checked.options.size,
        seed=seed,
        cases=cases,
        splits=crossval_splits(train_ids, n_splits) if n_splits >= 2 else [],
        folds=None if folds == CROSSVAL_FOLDS else folds,  # 5: as before the option existed
        provenance={
            "source": {"images": str(images_dir.resolve()), "masks": str(masks_dir.resolve())},
            "converter": "tloss-nnunet convert shenzhen",
            "cases": {"train": len(train_ids), "test": len(test_ids), "skipped_without_mask": len(skipped)},
            "splits": f"test = random.Random({seed}).sample(sorted stems, round(0.3 n)); splits_final.json = "
                      f"nnU-Net's generate_crossval_split(train, seed={CROSSVAL_SEED}, n_splits={n_splits})",
        },
        dataset_info={
            "reference": "Jaeger et al. 2014, Shenzhen chest X-ray set (NLM); lung masks: Stirenko et al. 2018",
            "license": "images: NLM terms; masks: CC BY-NC-SA 4.0",
            "description": "Shenzhen CXR lung segmentation in the T-Loss benchmark layout",
        },
        skipped=tuple(skipped),
    )
    return checked.convert(spec, input_problems)
