"""File writes that are never seen half-done: temporary name in the same folder, then ``os.replace``.

Temporary names are hidden and end in ``.tmp`` (``.<name>.<pid>.tmp``), so nnU-Net, which lists
files by their ending (``.png``), never picks one up, and a re-run can sweep leftovers of a killed
run with :func:`remove_temporaries`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _temporary_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old file or the whole new one)."""
    tmp = _temporary_for(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def link_or_copy(src: Path, dst: Path) -> str:
    """Make ``dst`` a hard link to ``src`` (a copy where the filesystem refuses links), atomically.

    Returns ``"present"`` if ``dst`` already is that very file, ``"link"`` or ``"copy"``.
    ``rename(2)`` between two links of one inode is a no-op that would leave the temporary behind,
    hence the same-file test first.
    """
    if dst.exists() and os.path.samefile(src, dst):
        return "present"
    tmp = _temporary_for(dst)
    if tmp.exists():
        tmp.unlink()
    try:
        try:
            os.link(src, tmp)
            how = "link"
        except OSError:  # no hard links here (FAT, some network filesystems, other device)
            shutil.copyfile(src, tmp)
            how = "copy"
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return how


def remove_temporaries(folder: Path) -> int:
    """Delete leftover temporaries (``.*.tmp``) of killed runs under ``folder``; return how many."""
    removed = 0
    if folder.is_dir():
        for leftover in folder.rglob(f".*{TMP_SUFFIX}"):
            leftover.unlink()
            removed += 1
    return removed
