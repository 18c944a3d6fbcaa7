"""Split a repair over machines as ``nnUNetv2_predict -num_parts N -part_id I`` splits a prediction.

Reading the held-out probabilities and writing the repaired labels is a repair's work (for 3D multi-class data,
gigabytes of ``.npz``). A part call repairs the chosen cases ``sorted(chosen)[I::N]`` into a hidden parts folder
beside the target, ``<target>/.tloss-repair-parts/<dataset name>-<request digest>/`` (``labelsTr/<case>`` and
``cases/<case>.json``: changed pixels, pixels, the label's SHA-256). The final call (without parts) makes the same
checks, takes every part label whose record and digest are whole instead of computing it again, computes the rest,
writes the dataset exactly as one plain call would, and then removes the parts folders of that dataset name. The
digest covers the whole request (source labels, audit and its checkpoints, mode, rule, confidence), so parts of
another request are never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.atomic import file_sha256, write_json

__all__ = ["PARTS_ROOT", "PartLabel", "part_cases", "parts_folder", "read_part_label", "remove_parts",
           "write_part_label"]

PARTS_ROOT = ".tloss-repair-parts"


@dataclass(frozen=True)
class PartLabel:
    """A repaired label a part call wrote: its file and what the final call's record says of it."""

    path: Path
    changed_pixels: int
    pixels: int


def parts_folder(target_root: Path, dataset_name: str, request: dict) -> Path:
    """The parts folder of one repair request (``request``: the ``repair.json`` keys that fix the output)."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    return Path(target_root) / PARTS_ROOT / f"{dataset_name}-{digest}"


def part_cases(chosen: list[str], num_parts: int, part_id: int) -> list[str]:
    """The chosen cases part ``part_id`` of ``num_parts`` repairs (sorted by name, every ``num_parts``-th)."""
    return sorted(chosen)[part_id::num_parts]


def write_part_label(folder: Path, case: str, ending: str, write: Callable[[str], None], changed_pixels: int,
                     pixels: int) -> None:
    """Write ``case``'s repaired label with ``write(path)`` (the dataset's nnU-Net writer, which needs the real file
    ending) under a private name, move it into ``folder/labelsTr``, then its record: a record is only there for a
    whole label."""
    labels = folder / "labelsTr"
    private = folder / f".{case}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    private.mkdir(parents=True)
    try:
        write(str(private / f"{case}{ending}"))
        labels.mkdir(exist_ok=True)
        os.replace(private / f"{case}{ending}", labels / f"{case}{ending}")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    (folder / "cases").mkdir(exist_ok=True)
    write_json(folder / "cases" / f"{case}.json", {"changed_pixels": int(changed_pixels), "pixels": int(pixels),
                                                   "sha256": file_sha256(labels / f"{case}{ending}")})


def read_part_label(folder: Path, case: str, ending: str) -> PartLabel | None:
    """``case``'s part label when its record and file are whole and agree; None otherwise (then it is computed)."""
    path = folder / "labelsTr" / f"{case}{ending}"
    try:
        record = json.loads((folder / "cases" / f"{case}.json").read_text())
        if not path.is_file() or file_sha256(path) != record["sha256"]:
            return None
        return PartLabel(path, int(record["changed_pixels"]), int(record["pixels"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_parts(target_root: Path, dataset_name: str) -> None:
    """Remove every parts folder of ``dataset_name`` (and the parts root once it is empty)."""
    root = Path(target_root) / PARTS_ROOT
    if not root.is_dir():
        return
    for folder in root.glob(f"{dataset_name}-*"):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        root.rmdir()
    except OSError:  # other datasets' parts are still there
        pass
