"""The studies' data: a synthetic ISIC-2017-like release, converted into the nnU-Net raw dataset family.

Both engines read the same files: ``Dataset{first_id}_ISIC2017_clean`` and one dataset per noise setting
(``..._a03b05`` ...), written by :func:`tloss_nnunet.converters.convert_isic2017` with the paper's noise
protocol (seed 0): noisy ``labelsTr``, clean ``labelsTs``. A user with the real release passes its folder
instead of the synthetic one (``--release``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.converters import convert_isic2017, write_synthetic_isic2017
from tloss_nnunet.errors import InputError
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS

from .config import StudyConfig
from .grid import setting_of_dataset

#: Dataset id of the clean member of the family; the noisy ones follow in the converter's order.
FIRST_DATASET_ID = 880


@dataclass(frozen=True)
class Family:
    """Where the converted datasets are: ``raw`` root and setting name -> (dataset id, dataset folder)."""

    raw: Path
    datasets: dict[str, tuple[int, Path]]

    def dataset(self, setting: str) -> tuple[int, Path]:
        try:
            return self.datasets[setting]
        except KeyError:
            raise InputError(f"no converted dataset for setting {setting!r} under {self.raw}.") from None


@dataclass(frozen=True)
class Split:
    """One split of one dataset as arrays.

    Attributes:
        case_ids: N case ids, sorted.
        images: (N, 3, H, W) float32, each image z-scored per channel (nnU-Net's default normalisation).
        labels: (N, 1, H, W) int64 label maps, 0/1.
    """

    case_ids: list[str]
    images: np.ndarray
    labels: np.ndarray


def prepare_family(work_dir: Path, config: StudyConfig, release: Path | None = None, verify: bool = True,
                   workers: int = 1, release_seed: int = 0, noise_seed: int = 0,
                   first_id: int = FIRST_DATASET_ID) -> Family:
    """Write (or reuse) the synthetic release and its converted family under ``work_dir``.

    Several families share one ``work_dir`` (one nnU-Net environment) when each has its own ``first_id``
    (the family takes ids ``first_id`` .. ``first_id`` + 9) and its own ``release_seed``.

    Args:
        work_dir: folder for the synthetic release (``release/`` for release seed 0, ``release-<seed>/``
            otherwise) and ``nnUNet_raw/``.
        config: sizes of the synthetic release and the working resolution.
        release: an existing ISIC 2017 release (real or synthetic) to convert instead of writing one.
        verify: run nnU-Net's dataset integrity check on every converted dataset.
        workers: processes for the conversion.
        release_seed: seed of the synthetic release.
        noise_seed: seed of the paper's noise protocol in the conversion.
        first_id: dataset id of the family's clean member.
    Returns:
        The :class:`Family`. Re-running with the same inputs reuses the converted folders (the converter resumes).
    """
    work_dir = Path(work_dir)
    if release is None:
        release = work_dir / ("release" if release_seed == 0 else f"release-{release_seed}")
        marker = release / ".complete"
        if not marker.exists():
            write_synthetic_isic2017(release, config.n_train, config.n_val, config.n_test, seed=release_seed,
                                     min_size=config.release_min_size, max_size=config.release_max_size,
                                     superpixels=False, workers=workers)
            marker.write_text(json.dumps(config.describe()))
    raw = work_dir / "nnUNet_raw"
    report = convert_isic2017(release, raw, first_id=first_id, alphas=PAPER_ALPHAS, betas=PAPER_BETAS,
                              size=config.image_size, seed=noise_seed, workers=workers, verify=verify, progress=False)
    datasets: dict[str, tuple[int, Path]] = {}
    for published in report.datasets:
        datasets[setting_of_dataset(published.name)] = (published.dataset_id, Path(published.path))
    return Family(raw=raw, datasets=datasets)


def training_case_ids(dataset_dir: Path) -> list[str]:
    """Fold 0's training cases of ``splits_final.json`` (the validation cases stay out of training, as in
    nnU-Net's fold 0); all of ``labelsTr`` when the dataset has no split file."""
    splits = dataset_dir / "splits_final.json"
    if splits.exists():
        return sorted(json.loads(splits.read_text())[0]["train"])
    return sorted(f.stem for f in (dataset_dir / "labelsTr").glob("*.png"))


def validation_split(case_ids: list[str]) -> tuple[list[str], list[str]]:
    """(train, validation) case ids, sorted: nnU-Net's fold 0 of ``case_ids`` (5 folds, seed 12345, as
    ``nnunetv2.utilities.crossval_split.generate_crossval_split`` draws it when a dataset has no split file).

    Computed, never written into the raw dataset: the converter's ``splits_final.json`` stays as it is."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    fold = generate_crossval_split(sorted(case_ids), seed=12345, n_splits=5)[0]
    return sorted(fold["train"]), sorted(fold["val"])


def load_split(dataset_dir: Path, split: str, case_ids: list[str] | None = None) -> Split:
    """Read ``imagesTr``/``labelsTr`` (split ``"Tr"``) or ``imagesTs``/``labelsTs`` (``"Ts"``) of a raw dataset,
    all cases or only ``case_ids``."""
    if split not in ("Tr", "Ts"):
        raise ValueError(f"split must be 'Tr' or 'Ts', got {split!r}")
    if case_ids is None:
        case_ids = sorted(f.stem for f in (dataset_dir / f"labels{split}").glob("*.png"))
    if not case_ids:
        raise InputError(f"no labels in {dataset_dir / f'labels{split}'}")
    label_files = [dataset_dir / f"labels{split}" / f"{case_id}.png" for case_id in case_ids]
    images, labels = [], []
    for case_id, label_file in zip(case_ids, label_files):
        image = cv2.imread(str(dataset_dir / f"images{split}" / f"{case_id}_0000.png"), cv2.IMREAD_COLOR)
        label = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
        if image is None or label is None:
            raise InputError(f"cannot read case {case_id} of {dataset_dir}")
        image = image[..., ::-1].astype(np.float32)  # BGR -> RGB
        mean, std = image.mean(axis=(0, 1)), image.std(axis=(0, 1))
        images.append(((image - mean) / np.maximum(std, 1e-8)).transpose(2, 0, 1))
        labels.append(label[None].astype(np.int64))
    return Split(case_ids, np.stack(images), np.stack(labels))


def load_training_and_test(dataset_dir: Path, clean_dir: Path, case_ids: list[str] | None = None
                           ) -> tuple[Split, Split, np.ndarray, np.ndarray]:
    """What a study run reads of one dataset of the family: its training split (``case_ids``, default fold 0's
    training cases, with the given, possibly noisy labels), its clean test split, the clean labels of the same
    training cases ((N, 1, H, W) from ``clean_dir``) and which of them the noise changed ((N,) bool)."""
    case_ids = training_case_ids(dataset_dir) if case_ids is None else sorted(case_ids)
    train = load_split(dataset_dir, "Tr", case_ids)
    changed = set(corrupted_cases(dataset_dir, clean_dir, case_ids))
    clean_labels = load_split(clean_dir, "Tr", case_ids).labels
    return train, load_split(dataset_dir, "Ts"), clean_labels, np.array([c in changed for c in train.case_ids])


def corrupted_cases(dataset_dir: Path, clean_dir: Path, case_ids: list[str]) -> list[str]:
    """Those of ``case_ids`` whose training label differs from the clean dataset's (what the noise changed)."""
    changed = []
    for label_file in (dataset_dir / "labelsTr" / f"{case_id}.png" for case_id in case_ids):
        noisy = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
        clean = cv2.imread(str(clean_dir / "labelsTr" / label_file.name), cv2.IMREAD_UNCHANGED)
        if not np.array_equal(noisy, clean):
            changed.append(label_file.stem)
    return changed

