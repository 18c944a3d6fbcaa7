"""``audit.json``: what an audit read, so that ``repair`` can trust (or refuse) what it builds on.

``tloss-nnunet suspects`` writes it last into its output folder: the model folder, checkpoint name and folds,
a SHA-256 of each checkpoint, the raw dataset folder and name, a SHA-256 of every training label file (and one
over all of them, :func:`labels_digest`), each case's fold, the ranking score, and a SHA-256 of the
``suspects.csv`` written with it (a csv from another run then shows). ``repair`` compares the dataset it is
given with these digests and refuses a dataset changed since the audit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from tloss_nnunet.atomic import file_sha256, write_json
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.checkpoint_file import checkpoint_sha256

__all__ = ["AUDIT_RECORD", "audit_record", "labels_digest", "read_audit_record",
           "write_audit_record"]

#: File name of the record in the audit folder.
AUDIT_RECORD = "audit.json"
_FORMAT = 1
_KEYS = ("format", "dataset", "raw_folder", "model_folder", "rank_by", "labels", "cases", "suspects_csv")


def labels_digest(digests: Mapping[str, str]) -> str:
    """One SHA-256 over ``case -> label file digest`` (sorted by case): the label state of a whole dataset."""
    return hashlib.sha256("".join(f"{case}:{d}\n" for case, d in sorted(digests.items())).encode()).hexdigest()


def audit_record(model, assignments, rank_by: str, csv_path: Path) -> dict:
    """The record of one finished audit (``model``: an :class:`~tloss_nnunet.audit.model.AuditedModel`,
    ``assignments``: its case -> fold :class:`~tloss_nnunet.audit.model.CaseAssignment` list)."""
    labels = {case: file_sha256(entry["label"]) for case, entry in model.cases.items()}
    raw = Path(next(iter(model.cases.values()))["label"]).resolve().parent.parent
    return {
        "format": _FORMAT,
        "dataset": model.dataset_name,
        "raw_folder": str(raw),
        "model_folder": str(model.folder),
        "checkpoint_name": model.checkpoint_name,
        "folds": list(model.folds),
        "checkpoints": {str(fold): checkpoint_sha256(model.checkpoint(fold)) for fold in model.folds},
        "rank_by": rank_by,
        "labels_digest": labels_digest(labels),
        "labels": labels,
        "cases": {a.case: {"fold": a.fold, "held_out": a.held_out} for a in assignments},
        "suspects_csv": file_sha256(csv_path),
    }


def write_audit_record(out_dir: Path, record: dict) -> Path:
    """Write ``record`` to ``out_dir/audit.json`` atomically; return the path."""
    path = Path(out_dir) / AUDIT_RECORD
    write_json(path, record)
    return path


def read_audit_record(audit_dir: str | os.PathLike) -> dict:
    """The record of the audit in ``audit_dir``, checked against its ``suspects.csv``; problems are InputErrors."""
    folder = Path(audit_dir)
    path = folder / AUDIT_RECORD
    if not folder.is_dir():
        raise InputError(f"audit folder {folder} does not exist")
    if not path.is_file():
        raise InputError(f"{folder} holds no {AUDIT_RECORD}: run tloss-nnunet suspects into it (again: it reuses "
                         "the predictions there) and repair from that")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(record, dict) or any(key not in record for key in _KEYS) or record["format"] != _FORMAT:
        raise InputError(f"{path} is not an audit record of this version; run tloss-nnunet suspects again")
    csv_path = folder / "suspects.csv"
    if not csv_path.is_file() or file_sha256(csv_path) != record["suspects_csv"]:
        raise InputError(f"{csv_path} is missing or not the one {AUDIT_RECORD} was written with (an interrupted "
                         "or edited audit); run tloss-nnunet suspects again")
    return record
