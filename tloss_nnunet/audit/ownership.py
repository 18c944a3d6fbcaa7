"""Which files in an audit's output folder ``suspects`` wrote: the only ones it may replace or delete.

Each ``OUT/predictions/fold_<k>/`` holds a stamp, ``model.json``: the tool, the checkpoint and the SHA-256 of its
bytes (content, not size and time: a checkpoint replaced by one of the same size is noticed), and the cases the
folder may hold. Ours in a stamped folder: the stamp, ``predict.log``, what nnU-Net's predictor writes beside the
predictions (``dataset.json``, ``plans.json``, ``predict_from_raw_data_args.json``), ``<case><file_ending>``,
``<case>.npz`` and ``<case>.pkl`` of those cases and of the model's, and the atomic writers' temporaries
(``.*.tmp``). Anything else, a folder without a stamp (or with a damaged one), and ``OUT/suspects.*`` or
``OUT/audit.json`` without a stamped folder beside them, are the user's: the audit refuses, naming them, unless
``--overwrite``. A stamp of another checkpoint (or an older stamp of size and time) is ours: that folder is
predicted again from scratch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from tloss_nnunet.atomic import TMP_SUFFIX
from tloss_nnunet.audit.model import AuditedModel
from tloss_nnunet.audit.provenance import AUDIT_RECORD
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.checkpoint_file import checkpoint_sha256

__all__ = ["LOCK_FILE", "STAMP", "TOOL", "claim_output", "foreign_files", "new_stamp", "predictions_lock",
           "read_stamp", "stamp_is_current"]

STAMP = "model.json"
TOOL = "tloss-nnunet suspects"
#: Files of a prediction folder that are ours whatever the cases (the predictor's three, our log and stamp).
FIXED_FILES = frozenset({STAMP, "predict.log", "dataset.json", "plans.json", "predict_from_raw_data_args.json"})
#: The audit's own files in OUT: suspects.csv/.md/.png (report.py) and the record for `repair`.
REPORT_GLOBS = ("suspects.*", AUDIT_RECORD)
#: In ``OUT/predictions``: parts of one audit take it in turn while they stamp (or empty) a fold's folder.
LOCK_FILE = ".suspects.lock"


def prediction_folder(out_dir: Path, fold: int) -> Path:
    return Path(out_dir) / "predictions" / f"fold_{fold}"


@contextlib.contextmanager
def predictions_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``OUT/predictions`` (created) while the block runs; where the OS has no
    ``fcntl`` (Windows) the block runs unlocked: start the parts of an audit one after the other there."""
    folder = Path(out_dir) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def read_stamp(folder: Path) -> dict | None:
    """The folder's stamp when it is ours (this format, or the older one of size and modification time), else
    None (absent, not JSON, or not ours)."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(stamp, dict) or not isinstance(stamp.get("checkpoint"), str):
        return None
    if stamp.get("tool") == TOOL and isinstance(stamp.get("sha256"), str) and isinstance(stamp.get("cases"), list):
        return stamp
    if isinstance(stamp.get("size"), int) and isinstance(stamp.get("mtime_ns"), int):
        return {"checkpoint": stamp["checkpoint"], "cases": []}  # an older stamp: ours, and never current
    return None


def new_stamp(model: AuditedModel, fold: int, kept: dict | None = None) -> dict:
    """The stamp for ``fold``'s folder; ``kept``: the current stamp, whose cases stay ours."""
    cases = sorted(set(model.cases) | set(kept["cases"] if kept else ()))
    return {"tool": TOOL, "checkpoint": str(model.checkpoint(fold)),
            "sha256": checkpoint_sha256(model.checkpoint(fold)), "cases": cases}


def stamp_is_current(stamp: dict | None, model: AuditedModel, fold: int) -> bool:
    """The folder's predictions came from the very bytes of ``fold``'s checkpoint."""
    return stamp is not None and stamp.get("sha256") == checkpoint_sha256(model.checkpoint(fold))


def _ours(model: AuditedModel, stamp: dict) -> set[str]:
    names = set(FIXED_FILES)
    for case in {*model.cases, *stamp["cases"]}:
        names.update((f"{case}{model.dataset_json['file_ending']}", f"{case}.npz", f"{case}.pkl"))
    return names


def foreign_files(folder: Path, model: AuditedModel) -> list[Path]:
    """The entries of a prediction folder that ``suspects`` did not write (every one, when it has no stamp of
    ours); [] for a folder that does not exist."""
    if not folder.is_dir():
        return [folder] if folder.exists() or folder.is_symlink() else []
    entries = [p for p in sorted(folder.iterdir()) if not (_temporary(p.name) and p.is_file())]  # ours, always
    stamp = read_stamp(folder)
    if stamp is None:
        return entries
    ours = _ours(model, stamp)
    return [p for p in entries if not (p.is_file() and p.name in ours)]


def _temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def claim_output(model: AuditedModel, out: Path, overwrite: bool) -> None:
    """Before anything is written: refuse (one line naming them) the files in ``out`` the audit would replace or
    delete but did not write; with ``overwrite``, delete them instead, inside the used folds' prediction folders
    only (the audit's ``suspects.*`` are replaced when it ends)."""
    folders = [prediction_folder(out, fold) for fold in model.folds]
    foreign = [path for folder in folders for path in foreign_files(folder, model)]
    stamped = any(read_stamp(folder) is not None for folder in (out / "predictions").glob("fold_*"))
    if not stamped and out.is_dir():
        foreign += sorted(p for pattern in REPORT_GLOBS for p in out.glob(pattern))
    if not foreign:
        return
    if not overwrite:
        names = ", ".join(str(p) for p in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise InputError(f"{out} holds files suspects did not write: {names}; move them or choose another -o "
                         "(--overwrite deletes them)")
    for path in foreign:
        if path in folders or path.parent in folders:  # never more than the used folds' prediction folders
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
