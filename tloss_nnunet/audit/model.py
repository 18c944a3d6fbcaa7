"""What label auditing needs to know about a trained nnU-Net model folder, found and checked before any work.

A model folder is ``$nnUNet_results/<DatasetXXX_Name>/<TRAINER>__<PLANS>__<CONFIGURATION>`` holding ``plans.json``,
``dataset.json`` and ``fold_<k>/<checkpoint>`` per trained fold. Auditing also needs the raw training cases
(``$nnUNet_raw/<DatasetXXX_Name>`` or a given folder) and the folds' validation splits (``splits_final.json`` of
``$nnUNet_preprocessed/<DatasetXXX_Name>``, written by nnU-Net when the first fold trains, or a given file):
a case in fold k's validation split was not trained on by fold k's model, so fold k scores it without bias.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.errors import InputError

__all__ = ["AuditedModel", "CaseAssignment", "assign_folds", "load_model", "not_held_out_note"]

#: Where a user reads how to get every case held out once.
HOW_TO = "docs/how-to/audit-labels.md"


@dataclass(frozen=True)
class CaseAssignment:
    """Which fold scores a case, and whether that fold's model was trained without it."""

    case: str
    fold: int
    held_out: bool


@dataclass(frozen=True)
class AuditedModel:
    """A trained model folder, its raw training cases and its folds (see the module docstring)."""

    folder: Path
    dataset_name: str
    trainer: str
    configuration: str
    checkpoint_name: str
    folds: tuple[int, ...]
    dataset_json: dict
    cases: dict[str, dict]  # case -> {"images": [paths], "label": path}, as nnU-Net lists them
    splits: list[dict] | None  # nnU-Net's splits_final.json, None when not found

    def checkpoint(self, fold: int) -> Path:
        return self.folder / f"fold_{fold}" / self.checkpoint_name

    @property
    def ignore_label(self) -> int | None:
        return self.dataset_json.get("labels", {}).get("ignore")

    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, (list, tuple)) for k, v in self.dataset_json.get("labels", {}).items()
                   if k != "ignore")


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path} is not valid JSON ({err})") from None


def _trained_folds(folder: Path, checkpoint_name: str, wanted: list[int] | None) -> tuple[int, ...]:
    present = sorted(int(p.name[5:]) for p in folder.glob("fold_*") if p.name[5:].isdigit())
    trained = [f for f in present if (folder / f"fold_{f}" / checkpoint_name).is_file()]
    if wanted is None:
        if not trained:
            raise InputError(f"no fold of {folder} has {checkpoint_name} (folds present: "
                             f"{present or 'none'}); train it first, or pick another checkpoint with --checkpoint")
        return tuple(trained)
    missing = [f for f in wanted if f not in trained]
    if missing:
        raise InputError(f"fold(s) {missing} of {folder} have no {checkpoint_name} "
                         f"(trained folds: {trained or 'none'})")
    return tuple(dict.fromkeys(wanted))


def load_model(model_folder: str | os.PathLike, folds: list[int] | None = None,
               checkpoint_name: str = "checkpoint_final.pth", raw_folder: str | os.PathLike | None = None,
               splits_file: str | os.PathLike | None = None) -> AuditedModel:
    """Check ``model_folder`` and find everything auditing needs; every problem is an :class:`InputError`.

    ``raw_folder`` defaults to ``$nnUNet_raw/<dataset>``, ``splits_file`` to
    ``$nnUNet_preprocessed/<dataset>/splits_final.json`` (None when that does not exist: nothing is held out).
    """
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    folder = Path(model_folder).resolve()
    if not folder.is_dir():
        raise InputError(f"model folder {folder} does not exist")
    parts = folder.name.split("__")
    if len(parts) != 3 or not all(parts) or not (folder / "plans.json").is_file():
        raise InputError(f"{folder} is not an nnU-Net model folder (expected "
                         "$nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION with plans.json in it)")
    dataset_json = _read_json(folder / "dataset.json", "the model's dataset.json")
    dataset_name = folder.parent.name
    trained = _trained_folds(folder, checkpoint_name, folds)
    if raw_folder is None:
        if not os.environ.get("nnUNet_raw"):
            raise InputError("nnUNet_raw is not set: set it or give the raw dataset folder with --raw")
        raw_folder = Path(os.environ["nnUNet_raw"]) / dataset_name
    raw = Path(raw_folder)
    if not (raw / "imagesTr").is_dir() or not (raw / "labelsTr").is_dir():
        raise InputError(f"raw dataset {raw} not found or without imagesTr/labelsTr (give it with --raw)")
    cases = get_filenames_of_train_images_and_targets(str(raw), dataset_json)
    if not cases:
        raise InputError(f"no training cases in {raw}/imagesTr")
    missing = [c for c, entry in cases.items() if not os.path.isfile(entry["label"])
               or not all(os.path.isfile(i) for i in entry["images"])]
    if missing:
        raise InputError(f"{len(missing)} training case(s) of {raw} lack their image or label file: "
                         f"{', '.join(sorted(missing)[:5])}{' ...' if len(missing) > 5 else ''}")
    if splits_file is None and os.environ.get("nnUNet_preprocessed"):
        candidate = Path(os.environ["nnUNet_preprocessed"]) / dataset_name / "splits_final.json"
        splits_file = candidate if candidate.is_file() else None
    splits = _read_json(Path(splits_file), "splits file") if splits_file is not None else None
    if splits is not None and (not isinstance(splits, list) or not all("val" in s for s in splits)):
        raise InputError(f"{splits_file} is not an nnU-Net splits file (a list of {{'train': [...], 'val': [...]}})")
    return AuditedModel(folder=folder, dataset_name=dataset_name, trainer=parts[0], configuration=parts[2],
                        checkpoint_name=checkpoint_name, folds=trained, dataset_json=dataset_json,
                        cases=dict(sorted(cases.items())), splits=splits)


def assign_folds(model: AuditedModel) -> list[CaseAssignment]:
    """Each case to the fold that held it out where one of ``model.folds`` did, else to the first fold.

    With every fold of a cross-validation trained, every case is scored by the model that never saw it.
    """
    validation: dict[str, int] = {}
    for fold in model.folds:
        if model.splits is not None and fold < len(model.splits):
            for case in model.splits[fold]["val"]:
                validation.setdefault(case, fold)
    return [CaseAssignment(case, validation.get(case, model.folds[0]), case in validation) for case in model.cases]


def not_held_out_note(assignments: Sequence[CaseAssignment], splits: list[dict] | None,
                      trained: Sequence[int]) -> str:
    """One line on the cases no trained fold held out, and what to do; ``""`` when every case was held out.

    It counts them, names up to five, and names the remedy: the untrained folds of ``splits`` whose validation
    sets hold them (train those), and for cases in no fold's validation set (a one-split ``splits_final.json``,
    none at all, or folds trained on nnU-Net's random split beyond the file's folds) a K-fold split.
    """
    missing = sorted(a.case for a in assignments if not a.held_out)
    if not missing:
        return ""
    names = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    note = (f"{len(missing)} of {len(assignments)} training case(s) were held out by no trained fold ({names}) and "
            "were scored by a model that trained on them")
    splits = splits or []
    untrained = [k for k, split in enumerate(splits) if k not in trained and set(split["val"]) & set(missing)]
    remedies = []
    if untrained:
        remedies.append(f"train fold(s) {', '.join(map(str, untrained))} of the {len(splits)}-fold split")
    covered = {case for k in untrained for case in splits[k]["val"]}
    if uncovered := [case for case in missing if case not in covered]:
        where = "no splits_final.json was found" if not splits else \
            f"{len(uncovered)} of them are in no fold's validation set of splits_final.json"
        remedies.append(f"{where}: write a K-fold split (e.g. tloss-nnunet convert ... --folds 5) and train "
                        "folds 0..K-1")
    return f"{note}; {'; '.join(remedies)}: see {HOW_TO}"
