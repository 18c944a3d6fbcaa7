"""Which files of a dataset folder are ``convert``'s, and what a re-run may do with the others.

Re-runs never delete or rewrite a file convert did not write without ``--overwrite``: in a dataset folder of
the same conversion, a ``*.png`` in the case folders that the marker does not list, or a listed file that was
edited (its digest differs but it decodes, :mod:`.contents`), is named in a one-line refusal, and nothing is
changed. Files convert wrote that went missing or are damaged (do not decode) are written again. Files
nnU-Net does not read (not ``*.png`` in the case folders; names beside them other than convert's own) are
left alone, ``--overwrite`` or not. With ``--overwrite`` the named files are replaced or removed, inside that
dataset folder only.

In an unfinished folder (its marker lists no digests yet), a file counts as convert's when it is the staged
file it should be, holds the same bytes, or is damaged; the json/tsv files beside the case folders count as
convert's (they are written after every case). Markers of older versions list sizes: a file of the recorded
size that decodes counts as ours. Markers that list no files at all are only counted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tloss_nnunet.converters.contents import is_damaged, sha256

__all__ = ["CASE_FOLDERS", "MARKER", "FolderCheck", "FolderState", "case_files", "check_folder", "digests",
           "folder_state", "not_ours_problem", "unpublished_not_ours"]

MARKER = ".tloss_convert.json"

#: absent/empty: write; resume: our unfinished folder; complete: ours, done and intact; damaged: ours and done,
#: but files we wrote went missing or no longer decode (written again); edited: ours and done, but it holds
#: files we did not write or that were edited since (refused without --overwrite); stale: ours but for other
#: inputs/options; foreign: somebody else's content.
FolderState = Literal["absent", "empty", "resume", "complete", "damaged", "edited", "stale", "foreign"]

#: The case folders of a dataset; the marker lists every file it wrote there.
CASE_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")
#: The files written beside the case folders.
ROOT_FILES = ("dataset.json", "splits_final.json", "noise_log.tsv")
#: How many file names a refusal shows.
SHOWN = 5


@dataclass(frozen=True)
class FolderCheck:
    """What a re-run found in a dataset folder: its state and, relative to the folder, the files that are not
    convert's (``not_ours``: put there or edited since; state ``edited``) and its own files that went missing
    or are damaged (``damaged``; state ``damaged``)."""

    state: FolderState
    not_ours: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()


def folder_state(folder: Path, fingerprint: str) -> FolderState:
    """Classify an existing dataset folder (see :data:`FolderState`)."""
    return check_folder(folder, fingerprint).state


def check_folder(folder: Path, fingerprint: str) -> FolderCheck:
    """Classify an existing dataset folder and name the files that decide it (see the module docstring)."""
    if not folder.exists():
        return FolderCheck("absent")
    if not folder.is_dir():
        return FolderCheck("foreign")
    if not any(folder.iterdir()):
        return FolderCheck("empty")
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return FolderCheck("foreign")
    if not isinstance(marker, dict):
        return FolderCheck("foreign")
    if marker.get("fingerprint") != fingerprint:
        return FolderCheck("stale")
    if not marker.get("complete"):
        return FolderCheck("resume")
    recorded = marker.get("files")
    if not isinstance(recorded, dict) or not recorded:  # the oldest markers list no files: count them
        return FolderCheck("complete" if _counts_match(folder) else "damaged")
    present = _owned_files(folder)
    not_ours = sorted(set(present) - set(recorded))
    damaged = []
    for name, value in sorted(recorded.items()):
        path = present.get(name)
        if path is not None and _recorded_content(path, value):
            continue
        if path is None or is_damaged(path):
            damaged.append(name)
        else:
            not_ours.append(name)  # decodes, but holds other content: edited by hand
    if not_ours:
        return FolderCheck("edited", tuple(sorted(not_ours)), tuple(damaged))
    return FolderCheck("damaged", damaged=tuple(damaged)) if damaged else FolderCheck("complete")


def _recorded_content(path: Path, value: object) -> bool:
    """The file holds what the marker recorded: its SHA-256, or (older markers) its size, and it decodes."""
    if isinstance(value, str):
        return sha256(path) == value
    return isinstance(value, int) and path.stat().st_size == value and not is_damaged(path)


def _counts_match(folder: Path) -> bool:
    """A readable ``dataset.json`` whose ``numTraining`` matches the training images and labels."""
    try:
        num_training = int(json.loads((folder / "dataset.json").read_text())["numTraining"])
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return all(len(case_files(folder / sub)) == num_training for sub in ("imagesTr", "labelsTr"))


def case_files(folder: Path) -> list[Path]:
    """The ``*.png`` files of a case folder: what nnU-Net reads there (other files are nobody's business)."""
    return [p for p in folder.iterdir() if p.suffix == ".png" and p.is_file()] if folder.is_dir() else []


def _owned_files(folder: Path) -> dict[str, Path]:
    """``relative path -> path`` of every file convert writes or answers for: the case folders' ``*.png`` files
    and the json/tsv files beside them."""
    files = [p for sub in CASE_FOLDERS for p in case_files(folder / sub)]
    files += [folder / name for name in ROOT_FILES if (folder / name).is_file()]
    return {p.relative_to(folder).as_posix(): p for p in files}


def digests(folder: Path) -> dict[str, str]:
    """``relative path -> SHA-256`` of every file :func:`_owned_files` lists, for the marker."""
    return {name: sha256(path) for name, path in _owned_files(folder).items()}


def not_ours_problem(folder: Path, names: list[str] | tuple[str, ...]) -> str:
    """The one-line refusal naming files convert did not write (up to :data:`SHOWN`)."""
    shown = ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
    return (f"{folder} holds {len(names)} file(s) convert did not write or that were edited since: {shown}; "
            f"move them elsewhere, or pass --overwrite to replace them")


def unpublished_not_ours(check: FolderCheck, folder: Path, pairs: list[tuple[Path, Path]]) -> list[str]:
    """The files of ``folder`` that publishing ``pairs`` (staged file, destination) would delete or replace
    although convert did not write them: those :func:`check_folder` named, and in an unfinished folder every
    ``*.png`` that is no destination or holds other bytes than its staged file (and decodes)."""
    if check.state == "edited":
        return list(check.not_ours)
    if check.state != "resume":
        return []
    wanted = {dst: src for src, dst in pairs}
    names = []
    for path in (p for sub in CASE_FOLDERS for p in case_files(folder / sub)):
        src = wanted.get(path)
        if src is None or not (_same_bytes(src, path) or is_damaged(path)):
            names.append(path.relative_to(folder).as_posix())
    return sorted(names)


def _same_bytes(src: Path, dst: Path) -> bool:
    """``dst`` is the staged file (a hard link) or a copy of it."""
    try:
        return os.path.samefile(src, dst) or sha256(src) == sha256(dst)
    except OSError:  # the staged file is gone
        return False
