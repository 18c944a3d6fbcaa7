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

__all__ = ["AuditedModel", "CaseAssignment", "assign_folds", "load_model", "not_held_out_note", "skipped_folds_note",
           "training_cases"]

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
    skipped_folds: tuple[int, ...] = ()  # fold folders without the checkpoint, left out when no folds were asked

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


def _trained_folds(folder: Path, checkpoint_name: str,
                   wanted: list[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the folds to use, the fold folders without ``checkpoint_name`` that were left out)."""
    present = sorted(int(p.name[5:]) for p in folder.glob("fold_*") if p.name[5:].isdigit())
    trained = [f for f in present if (folder / f"fold_{f}" / checkpoint_name).is_file()]
    if wanted is None:
        if not trained:
            raise InputError(f"no fold of {folder} has {checkpoint_name} (folds present: "
                             f"{present or 'none'}); train it first, or pick another checkpoint with --checkpoint")
        return tuple(trained), tuple(f for f in present if f not in trained)
    missing = [f for f in wanted if f not in trained]
    if missing:
        raise InputError(f"fold(s) {missing} of {folder} have no {checkpoint_name} "
                         f"(trained folds: {trained or 'none'})")
    return tuple(dict.fromkeys(wanted)), ()


def skipped_folds_note(model: AuditedModel) -> str:
    """One line naming the fold folders left out for lack of the checkpoint, and what to do; ``""`` if none."""
    if not model.skipped_folds:
        return ""
    folds = ", ".join(map(str, model.skipped_folds))
    plural = len(model.skipped_folds) > 1
    return (f"fold{'s' if plural else ''} {folds} ha{'ve' if plural else 's'} no {model.checkpoint_name}: skipped; "
            f"train {'them' if plural else 'it'} (nnUNetv2_train ... FOLD) or pass -f "
            f"{' '.join(map(str, model.folds))} to use only the trained folds")


def _check_dataset_json(dataset_json: object, path: Path) -> None:
    """What the audit and nnU-Net's reader need from the model's dataset.json."""
    if not isinstance(dataset_json, dict):
        raise InputError(f"the model's dataset.json {path} holds a {type(dataset_json).__name__}, not a dict; "
                         "restore the one nnU-Net wrote for this model")
    problems = []
    file_ending = dataset_json.get("file_ending")
    if not isinstance(file_ending, str) or not file_ending.startswith("."):
        problems.append("no file_ending (e.g. \".nii.gz\")" if file_ending is None else
                        f"file_ending {file_ending!r} is not a file ending such as \".nii.gz\"")
    labels = dataset_json.get("labels")
    if not isinstance(labels, dict) or not labels:
        problems.append("no labels (e.g. {\"background\": 0, \"tumour\": 1})")
    elif bad := [k for k, v in labels.items() if isinstance(v, bool) or not isinstance(v, (int, list, tuple))]:
        problems.append(f"labels {', '.join(bad)} are neither a value nor a list of values")
    if "channel_names" not in dataset_json and "modality" not in dataset_json:
        problems.append("no channel_names")
    if problems:
        raise InputError(f"the model's dataset.json {path}: {'; '.join(problems)}; restore the one nnU-Net wrote "
                         "for this model (a copy is in $nnUNet_preprocessed/<dataset>)")


def _check_splits(splits: object, path: str | os.PathLike) -> None:
    """A list of {'train': [...], 'val': [...]} per fold, case names being strings."""
    problem = "" if isinstance(splits, list) and splits else \
        f"it holds {'an empty list' if splits == [] else 'a ' + type(splits).__name__}"
    for k, split in enumerate(splits if isinstance(splits, list) else []):
        if not isinstance(split, dict):
            problem = f"fold {k} is a {type(split).__name__}, not a dict"
        elif not isinstance(split.get("val"), list) or not all(isinstance(c, str) for c in split["val"]):
            problem = f"fold {k}'s 'val' is {'missing' if 'val' not in split else repr(split['val'])[:40]}, " \
                      "not a list of case names"
        if problem:
            break
    if problem:
        raise InputError(f"{path} is not an nnU-Net splits file ({problem}): give nnU-Net's splits_final.json, a "
                         "list of {'train': [...], 'val': [...]} per fold, with --splits")


def _endings(folder: Path) -> list[str]:
    """The file endings (all suffixes, e.g. ".nii.gz") of the files in ``folder``, most common first."""
    counts: dict[str, int] = {}
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith("."):
            ending = "".join(p.suffixes[-2:]) if p.name.endswith(".nii.gz") else p.suffix
            counts[ending] = counts.get(ending, 0) + 1
    return sorted(counts, key=lambda e: -counts[e])


def _check_raw(raw: Path, cases: dict, dataset_json: dict) -> None:
    """The raw dataset is the one the model was trained on: its file ending, and as many cases as numTraining."""
    file_ending = dataset_json["file_ending"]
    if not cases:
        found = [e for e in _endings(raw / "imagesTr") if e != file_ending]
        hint = f": it holds {', '.join(found[:3])} files, the model's dataset.json says {file_ending}" if found else ""
        raise InputError(f"no training cases in {raw}/imagesTr{hint}; give the model's raw dataset with --raw")
    expected = dataset_json.get("numTraining")
    if isinstance(expected, int) and not isinstance(expected, bool) and expected != len(cases):
        raise InputError(f"raw dataset {raw} has {len(cases)} training case(s), the model was trained on {expected} "
                         "(numTraining of its dataset.json): --raw (or $nnUNet_raw) points at another dataset or "
                         "release; give the one the model was trained on")


def training_cases(raw: Path, dataset_json: dict) -> dict[str, dict]:
    """case -> {"images": [paths], "label": path} of a raw dataset, as nnU-Net lists them
    (``get_filenames_of_train_images_and_targets``). nnU-Net forks a pool of 12 processes for it: they start
    under the project's pool policy, so a terminal's Ctrl-C meanwhile is one line and a kill leaves none."""
    import nnunetv2.utilities.utils as nnunet_utils

    from tloss_nnunet.workers import pools_follow_policy

    with pools_follow_policy(nnunet_utils):
        return nnunet_utils.get_filenames_of_train_images_and_targets(str(raw), dataset_json)


def load_model(model_folder: str | os.PathLike, folds: list[int] | None = None,
               checkpoint_name: str = "checkpoint_final.pth", raw_folder: str | os.PathLike | None = None,
               splits_file: str | os.PathLike | None = None) -> AuditedModel:
    """Check ``model_folder`` and find everything auditing needs; every problem is an :class:`InputError`.

    ``raw_folder`` defaults to ``$nnUNet_raw/<dataset>``, ``splits_file`` to
    ``$nnUNet_preprocessed/<dataset>/splits_final.json`` (None when that does not exist: nothing is held out).
    """
    folder = Path(model_folder).resolve()
    if not folder.is_dir():
        raise InputError(f"model folder {folder} does not exist")
    parts = folder.name.split("__")
    if len(parts) != 3 or not all(parts) or not (folder / "plans.json").is_file():
        raise InputError(f"{folder} is not an nnU-Net model folder (expected "
                         "$nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION with plans.json in it)")
    dataset_json = _read_json(folder / "dataset.json", "the model's dataset.json")
    _check_dataset_json(dataset_json, folder / "dataset.json")
    dataset_name = folder.parent.name
    trained, skipped = _trained_folds(folder, checkpoint_name, folds)
    if raw_folder is None:
        if not os.environ.get("nnUNet_raw"):
            raise InputError("nnUNet_raw is not set: set it or give the raw dataset folder with --raw")
        raw_folder = Path(os.environ["nnUNet_raw"]) / dataset_name
    raw = Path(raw_folder)
    if not (raw / "imagesTr").is_dir() or not (raw / "labelsTr").is_dir():
        raise InputError(f"raw dataset {raw} not found or without imagesTr/labelsTr (give it with --raw)")
    cases = training_cases(raw, dataset_json)
    _check_raw(raw, cases, dataset_json)
    missing = [c for c, entry in cases.items() if not os.path.isfile(entry["label"])
               or not all(os.path.isfile(i) for i in entry["images"])]
    if missing:
        raise InputError(f"{len(missing)} training case(s) of {raw} lack their image or label file: "
                         f"{', '.join(sorted(missing)[:5])}{' ...' if len(missing) > 5 else ''}")
    if splits_file is None and os.environ.get("nnUNet_preprocessed"):
        candidate = Path(os.environ["nnUNet_preprocessed"]) / dataset_name / "splits_final.json"
        splits_file = candidate if candidate.is_file() else None
    splits = None
    if splits_file is not None:
        splits = _read_json(Path(splits_file), "splits file")
        _check_splits(splits, splits_file)
    return AuditedModel(folder=folder, dataset_name=dataset_name, trainer=parts[0], configuration=parts[2],
                        checkpoint_name=checkpoint_name, folds=trained, dataset_json=dataset_json,
                        cases=dict(sorted(cases.items())), splits=splits, skipped_folds=skipped)


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
