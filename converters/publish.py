"""Turning staged files into nnU-Net raw dataset folders, and checking them with nnU-Net itself.

A dataset folder holds ``imagesTr labelsTr imagesTs labelsTs dataset.json splits_final.json``
(plus ``noise_log.tsv`` for noisy members and the hidden marker ``.tloss_convert.json``). Every
image and every clean label is a hard link to the one staged file, so a family of seven datasets
stores its images once. The marker records the fingerprint, whether the folder is complete and, once it
is, the SHA-256 of every file written; it is how a re-run tells its own unfinished folder (resume) from
anybody else's (refuse), and its own files from files put or edited there since.

Which files of a folder are convert's, and what a re-run does with the others: :mod:`.folder_check`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from tloss_nnunet import atomic
from tloss_nnunet.converters.folder_check import (
    CASE_FOLDERS,
    MARKER,
    FolderState,
    case_files,
    check_folder,
    digests,
    folder_state,
    not_ours_problem,
    unpublished_not_ours,
)
from tloss_nnunet.converters.plan import DatasetSpec, FamilySpec
from tloss_nnunet.converters.staging import CaseOutcome, image_path, label_path, noisy_label_path
from tloss_nnunet.errors import InputError
from tloss_nnunet.workers import pools_follow_policy

__all__ = ["MARKER", "FolderState", "IntegrityCheckFailed", "destination_problems", "folder_state",
           "install_splits", "publish_dataset", "refuse_not_ours", "verify_integrity"]


class IntegrityCheckFailed(RuntimeError):
    """nnU-Net's ``verify_dataset_integrity`` rejected a dataset this converter wrote."""


def destination_problems(raw: Path, datasets: list[DatasetSpec], overwrite: bool) -> list[str]:
    """Problems with the output side, found without writing anything.

    * ``raw`` exists but is not a folder;
    * another dataset in ``raw`` already uses one of the ids (nnU-Net resolves ids by prefix
      ``DatasetXXX_`` and fails on duplicates; ``--overwrite`` never deletes other names);
    * a dataset folder with foreign or stale content, unless ``overwrite``;
    * a completed dataset folder of this conversion holding files convert did not write or that were
      edited since, unless ``overwrite``.
    """
    if raw.exists() and not raw.is_dir():
        return [f"output {raw} exists and is not a folder"]
    problems: list[str] = []
    existing = [p.name for p in raw.iterdir() if p.is_dir()] if raw.is_dir() else []
    for ds in datasets:
        prefix = f"Dataset{ds.dataset_id:03d}_"
        for other in existing:
            if other.startswith(prefix) and other != ds.name:
                problems.append(f"dataset id {ds.dataset_id} is already used by {raw / other}; "
                                f"choose another --id")
        check = check_folder(raw / ds.name, ds.fingerprint)
        state = check.state
        if state == "edited" and not overwrite:
            problems.append(not_ours_problem(raw / ds.name, check.not_ours))
        if state in ("foreign", "stale") and not overwrite:
            why = ("was written by a different conversion (other inputs or options)" if state == "stale"
                   else "exists with other content")
            problems.append(f"{raw / ds.name} {why}; pass --overwrite to replace it")
    return problems


@dataclass
class PublishedDataset:
    """Summary of one dataset folder for the report."""

    dataset_id: int
    name: str
    path: Path
    num_training: int
    num_test: int
    noise_kinds: dict[str, int]
    state: Literal["written", "up to date"]
    linked: int = 0
    copied: int = 0
    verify_seconds: float = 0.0


def _write_dataset_json(spec: FamilySpec, ds: DatasetSpec, folder: Path, scratch: Path,
                        num_training: int, num_test: int) -> None:
    """Write ``dataset.json`` with nnU-Net's own generator, atomically (generated in ``scratch``)."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    scratch.mkdir(parents=True, exist_ok=True)
    noise = None if ds.setting is None else {
        "alpha": ds.setting.alpha, "beta": ds.setting.beta, "seed": spec.seed,
        "protocol": "T-Loss / SP-guided noisy-label protocol; training cases only",
        "log": "noise_log.tsv",
    }
    generate_dataset_json(
        str(scratch),
        channel_names=dict(spec.channel_names),
        labels=dict(spec.labels),
        num_training_cases=num_training,
        file_ending=".png",
        dataset_name=ds.name,
        converted_by="tloss-nnunet convert",
        numTest=num_test,
        tloss_nnunet={**spec.provenance, "size": spec.size or "native", "noise": noise,
                      "fingerprint": ds.fingerprint},
        **spec.dataset_info,
    )
    (scratch / "dataset.json").replace(folder / "dataset.json")


def _noise_log(spec: FamilySpec, ds: DatasetSpec, outcomes: dict[str, CaseOutcome]) -> str:
    """Tab-separated ``case kind noise_rate note`` per training case, like the reference's log."""
    lines = ["case\tkind\tnoise_rate\tnote"]
    for case_id in spec.training_ids:
        entry = outcomes[case_id].noise[ds.setting.short]
        lines.append(f"{case_id}\t{entry['kind']}\t{entry['noise_rate']:.6f}\t{entry['note']}")
    return "\n".join(lines) + "\n"


def _pairs(spec: FamilySpec, ds: DatasetSpec, folder: Path, staging: Path,
           outcomes: dict[str, CaseOutcome]) -> tuple[list[tuple[Path, Path]], dict[str, int]]:
    """(staged file, destination) of every image and label of ``ds``, and its count of each noise kind."""
    pairs: list[tuple[Path, Path]] = []
    kinds: dict[str, int] = {}
    for case in sorted(spec.cases, key=lambda c: c.case_id):
        images, labels = ("imagesTs", "labelsTs") if case.role == "test" else ("imagesTr", "labelsTr")
        label_src = label_path(staging, case.case_id)
        if ds.setting is not None and case.role == "train":
            kind = outcomes[case.case_id].noise[ds.setting.short]["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind != "clean":
                label_src = noisy_label_path(staging, ds.setting.short, case.case_id)
        pairs.append((image_path(staging, case.case_id), folder / images / f"{case.case_id}_0000.png"))
        pairs.append((label_src, folder / labels / f"{case.case_id}.png"))
    return pairs, kinds


def _not_ours(spec: FamilySpec, ds: DatasetSpec, raw: Path, staging: Path,
              outcomes: dict[str, CaseOutcome]) -> str | None:
    """The refusal for ``ds``'s folder when publishing it would replace or delete files convert did not write."""
    folder = raw / ds.name
    names = unpublished_not_ours(check_folder(folder, ds.fingerprint), folder,
                                 _pairs(spec, ds, folder, staging, outcomes)[0])
    return not_ours_problem(folder, names) if names else None


def refuse_not_ours(spec: FamilySpec, datasets: list[DatasetSpec], raw: Path, staging: Path,
                    outcomes: dict[str, CaseOutcome], overwrite: bool) -> None:
    """Before publishing any dataset: raise one :class:`InputError` (a line per dataset folder) when publishing
    would replace or delete files convert did not write, unless ``overwrite``. Staged cases stay for the re-run."""
    problems = [] if overwrite else [p for ds in datasets if (p := _not_ours(spec, ds, raw, staging, outcomes))]
    if problems:
        raise InputError("\n".join(problems))


def publish_dataset(spec: FamilySpec, ds: DatasetSpec, raw: Path, staging: Path,
                    outcomes: dict[str, CaseOutcome], verify: bool, workers: int,
                    progress: bool = True, overwrite: bool = False) -> PublishedDataset:
    """Create (or complete) one dataset folder from the staged files, then verify it.

    The marker is written first (``complete: false``) and flipped last, after nnU-Net's integrity
    check passed, so a folder is either complete or recognisably ours and resumable. Files convert did not
    write are replaced or removed only with ``overwrite`` (otherwise :class:`InputError`, nothing changed).
    """
    folder = raw / ds.name
    pairs, kinds = _pairs(spec, ds, folder, staging, outcomes)
    if not overwrite and (problem := _not_ours(spec, ds, raw, staging, outcomes)):
        raise InputError(problem)
    if folder_state(folder, ds.fingerprint) in ("stale", "foreign"):  # allowed by --overwrite
        if folder.is_dir():
            shutil.rmtree(folder)
        else:
            folder.unlink()
    for sub in CASE_FOLDERS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    atomic.remove_temporaries(folder)
    atomic.write_json(folder / MARKER, {"fingerprint": ds.fingerprint, "complete": False})

    result = PublishedDataset(ds.dataset_id, ds.name, folder,
                              num_training=sum(c.role != "test" for c in spec.cases),
                              num_test=sum(c.role == "test" for c in spec.cases),
                              noise_kinds=kinds, state="written")
    for src, dst in tqdm(pairs, desc=f"{ds.name}: linking", unit="file", disable=not progress):
        how = atomic.link_or_copy(src, dst)
        result.linked += how in ("link", "present")
        result.copied += how == "copy"
    wanted = {dst for _, dst in pairs}
    for stray in [p for sub in CASE_FOLDERS for p in case_files(folder / sub) if p not in wanted]:
        stray.unlink()  # a *.png nnU-Net would take for a case: checked above, ours or --overwrite

    atomic.write_json(folder / "splits_final.json", spec.splits)
    if ds.setting is not None:
        atomic.write_bytes(folder / "noise_log.tsv", _noise_log(spec, ds, outcomes).encode())
    _write_dataset_json(spec, ds, folder, staging / "json" / ds.name, result.num_training, result.num_test)
    if verify:
        started = time.perf_counter()
        verify_integrity(folder, workers)
        result.verify_seconds = time.perf_counter() - started
    atomic.write_json(folder / MARKER, {"fingerprint": ds.fingerprint, "complete": True, "files": digests(folder)})
    return result


def verify_integrity(folder: Path, workers: int) -> None:
    """Run nnU-Net's ``verify_dataset_integrity`` on ``folder``; raise :class:`IntegrityCheckFailed`."""
    from nnunetv2.experiment_planning import verify_dataset_integrity as check

    try:
        with pools_follow_policy(check):  # its spawn workers must not outlive a killed command either
            check.verify_dataset_integrity(str(folder), num_processes=max(1, workers))
    except Exception as err:  # nnU-Net signals failures with assert / RuntimeError / FileNotFoundError
        raise IntegrityCheckFailed(f"nnU-Net's integrity check failed for {folder}: {err}") from err


def install_splits(dataset_folder: Path, preprocessed: Path) -> Path:
    """Copy ``splits_final.json`` to ``preprocessed/<dataset name>/`` (atomically); return the path."""
    target_dir = preprocessed / dataset_folder.name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "splits_final.json"
    atomic.write_bytes(target, (dataset_folder / "splits_final.json").read_bytes())
    return target
