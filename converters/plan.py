"""What a conversion will do, decided before any pixel is read: cases, datasets, names, fingerprints.

A *family* is one clean dataset plus one dataset per noise setting, with consecutive nnU-Net ids:
``Dataset{id}_{family}_clean``, ``Dataset{id+1}_{family}_{setting.short}``, ... All members share
the images and the validation/test labels; only the training labels differ.

Fingerprints (SHA-256 over the options and every input's ``Source.identity``) let a re-run
recognise its own half-finished work: a dataset folder or a staging area is resumed only when its
fingerprint matches, otherwise it counts as foreign content.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tloss_nnunet.atomic import output_folder_problem
from tloss_nnunet.converters.sources import Source
from tloss_nnunet.noise import NoiseSetting
from tloss_nnunet.noise.options import noise_grid

#: Bump when the bytes written for the same inputs and options change (invalidates resumption).
FORMAT_VERSION = 1

#: train: labels noisy in the noisy datasets; val: imagesTr with clean labels; test: imagesTs.
Role = Literal["train", "val", "test"]

#: Seed of nnU-Net's own cross-validation (``generate_crossval_split``'s default): the folds nnU-Net draws itself.
CROSSVAL_SEED = 12345


@dataclass(frozen=True)
class CaseTask:
    """One case to convert: its nnU-Net identifier, its two input files and its role."""

    case_id: str
    image: Source
    mask: Source
    role: Role


@dataclass(frozen=True)
class DatasetSpec:
    """One member of a family: its nnU-Net id and name and its noise setting (``None``: clean)."""

    dataset_id: int
    name: str
    setting: NoiseSetting | None
    fingerprint: str


@dataclass(frozen=True)
class FamilySpec:
    """Everything needed to write a family of nnU-Net raw datasets.

    Attributes:
        family: name part after the id, e.g. ``"ISIC2017"``.
        first_id: nnU-Net id of the clean dataset; noisy ones follow consecutively.
        color: True for 3-channel RGB images (ISIC), False for one grey channel (Shenzhen).
        channel_names / labels: the ``dataset.json`` entries.
        settings: noise settings, in dataset order.
        size: output side length in pixels (square), or 0 to keep the native size.
        seed: seed of the noise protocol (and of the Shenzhen split).
        cases: every case, training cases first is not required (sorted where it matters).
        splits: the ``splits_final.json`` content (list of {"train": [...], "val": [...]}).
        provenance: describes source and protocol; stored under ``dataset.json["tloss_nnunet"]``.
        dataset_info: ``reference``/``release``/``license``/``description`` for ``dataset.json``.
        skipped: inputs left out on purpose (e.g. Shenzhen images without a mask), for the report.
        folds: the ``--folds`` asked for when it is not the family's default split, else ``None``. Part of the
            dataset folders' fingerprint only when set, so folders written before the option existed stay current.
    """

    family: str
    first_id: int
    color: bool
    channel_names: dict[str, str]
    labels: dict[str, int]
    settings: tuple[NoiseSetting, ...]
    size: int
    seed: int
    cases: tuple[CaseTask, ...]
    splits: list[dict[str, list[str]]]
    provenance: dict = field(default_factory=dict)
    dataset_info: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    folds: int | None = None

    @property
    def training_ids(self) -> list[str]:
        """Sorted ids of the cases whose labels the noise protocol corrupts."""
        return sorted(c.case_id for c in self.cases if c.role == "train")

    def _common_fingerprint_payload(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "family": self.family,
            "color": self.color,
            "size": self.size,
            "seed": self.seed,
            "cases": [
                [c.case_id, c.role, c.image.name, list(c.image.identity), c.mask.name, list(c.mask.identity)]
                for c in sorted(self.cases, key=lambda c: c.case_id)
            ],
        }

    def fingerprint(self, settings: tuple[NoiseSetting | None, ...], *, with_folds: bool = False) -> str:
        """Hex digest identifying the bytes written for ``settings`` (``None`` = the clean member).

        ``with_folds`` adds a non-default :attr:`folds`: dataset folders hold ``splits_final.json``, the shared
        staging area does not (another ``--folds`` re-uses its decoded cases).
        """
        payload = self._common_fingerprint_payload()
        payload["settings"] = [None if s is None else [s.alpha, s.beta] for s in settings]
        if with_folds and self.folds is not None:
            payload["folds"] = self.folds
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def datasets(self) -> list[DatasetSpec]:
        """The family's members in id order: clean first, then one per setting."""
        members: list[NoiseSetting | None] = [None, *self.settings]
        return [
            DatasetSpec(
                dataset_id=self.first_id + index,
                name=f"Dataset{self.first_id + index:03d}_{self.family}_"
                + ("clean" if setting is None else setting.short),
                setting=setting,
                fingerprint=self.fingerprint((setting,), with_folds=True),
            )
            for index, setting in enumerate(members)
        ]


def crossval_splits(train_ids: list[str], n_splits: int) -> list[dict[str, list[str]]]:
    """nnU-Net's own ``n_splits``-fold split of the training cases (``generate_crossval_split``, seed
    :data:`CROSSVAL_SEED`): each case is in exactly one fold's ``val``. Needs ``2 <= n_splits <= len(train_ids)``."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    folds = generate_crossval_split(sorted(train_ids), seed=CROSSVAL_SEED, n_splits=n_splits)
    return [{"train": [str(i) for i in f["train"]], "val": [str(i) for i in f["val"]]} for f in folds]


def noise_settings(alphas: list[float], betas: list[float]) -> tuple[tuple[NoiseSetting, ...], list[str]]:
    """Build the settings grid in the reference order (alpha outer, beta inner) with the checks the ``noise``
    command makes too (:func:`~tloss_nnunet.noise.options.noise_grid`: ranges, repeated values refused).

    Returns ``(settings, problems)``; a value that is not a multiple of 0.1 (so it has no two-digit dataset
    name) is a problem as well, not an exception.
    """
    settings, problems = noise_grid(alphas, betas)
    named: list[NoiseSetting] = []
    for setting in settings:
        try:
            setting.short  # noqa: B018 - raises for values without a two-digit name
        except ValueError as err:
            problems.append(f"noise setting alpha={setting.alpha:g}, beta={setting.beta:g}: {err}")
            continue
        if any(s.short == setting.short for s in named):
            problems.append(f"noise setting alpha={setting.alpha:g}, beta={setting.beta:g} has the same name "
                            f"{setting.short!r} as an earlier one")
            continue
        named.append(setting)
    return tuple(named), problems


def dataset_id_problems(first_id: int, count: int) -> list[str]:
    """nnU-Net ids are 1..999 (three digits in ``DatasetXXX_Name``); check the whole family fits."""
    if first_id < 1 or first_id + count - 1 > 999:
        return [f"dataset ids {first_id}..{first_id + count - 1} are outside nnU-Net's range 1..999"]
    return []


def option_problems(size: int, first_id: int, count: int) -> list[str]:
    """Problems with ``--size`` and the id range of a family of ``count`` datasets."""
    problems = dataset_id_problems(first_id, count)
    if size < 0 or 0 < size < 8:
        problems.append(f"--size must be 0 (native) or at least 8, got {size}")
    return problems


def output_roots(raw: str | os.PathLike | None, install_splits: bool,
                 problems: list[str]) -> tuple[Path, Path | None]:
    """Resolve the raw folder (default ``$nnUNet_raw``) and, if asked, ``$nnUNet_preprocessed``.

    Missing values are appended to ``problems``.
    """
    raw_value = raw if raw is not None else os.environ.get("nnUNet_raw")
    if not raw_value:
        problems.append("no output folder: pass --out or set nnUNet_raw")
    elif unusable := output_folder_problem(raw_value):
        problems.append(unusable)
    preprocessed = None
    if install_splits:
        value = os.environ.get("nnUNet_preprocessed")
        if not value:
            problems.append("--install-splits needs the environment variable nnUNet_preprocessed")
        elif unusable := output_folder_problem(value):
            problems.append(unusable)
        else:
            preprocessed = Path(value)
    return Path(raw_value or "."), preprocessed
