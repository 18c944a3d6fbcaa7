"""Write-then-rename, so a crash never leaves a half-written file or folder under its final name.

One mechanism for the whole project (checkpoints, plots, reports, converted datasets, results files):
the writer fills a hidden temporary in the target's folder (``.<name>.<pid>.<random>.tmp``; nnU-Net lists
files by their ending, so it never picks one up), which is renamed onto the target only when complete.
Folders work the same way: fill a :func:`staging_folder`, then :func:`swap_into` its entries (or itself).
Dataset folders add :func:`link_or_copy` (hard links, atomically) and :func:`remove_temporaries` (a re-run
sweeps the leftovers of a killed one).

Killed runs: a staging folder is named ``.<label>-<pid>-<random>`` and locked (``flock``) by the process that
fills it; the next :func:`staging_folder` of the same label in the same place removes the ones whose owner is
gone (lock free and pid dead), and the hidden ``.<name>.old-<pid>-*`` folders :func:`swap_into` leaves when
killed between its two renames. A concurrent run's folders are left alone. Ctrl-C is held back while a
staging folder is removed (:mod:`tloss_nnunet.interrupts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tloss_nnunet.interrupts import deferred_interrupts
from tloss_nnunet.owners import OwnerLock, remove_stale

__all__ = [
    "TMP_SUFFIX",
    "atomic_target",
    "file_sha256",
    "folders_created",
    "link_or_copy",
    "output_folder_problem",
    "remove_temporaries",
    "staging_folder",
    "swap_into",
    "write_bytes",
    "write_json",
    "write_text",
]

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``, on error delete it.

    The temporary file is created by the caller's writer with the process's normal permissions (unlike
    ``tempfile.mkstemp``, which would make checkpoints private to the user).
    """
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old file or the whole new one)."""
    with atomic_target(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def staging_folder(parent: str | os.PathLike, label: str) -> Iterator[Path]:
    """Yield a new hidden folder ``parent/.<label>-<pid>-<random>`` (same filesystem as the targets, so
    publishing is renames); it is removed on exit, with whatever was not swapped out of it, success or error.

    First removes the staging folders of this label (and ``swap_into`` leftovers) that dead runs left in
    ``parent``. The folder stays locked by this process while the block runs.
    """
    remove_stale(Path(parent), rf"\.{re.escape(label)}-(\d+)-\w+", r"\..+\.old-(\d+)-\w+")
    staging: Path | None = None
    lock: OwnerLock | None = None
    try:
        with deferred_interrupts():  # the folder is named in `staging` before Ctrl-C can land
            staging = Path(tempfile.mkdtemp(prefix=f".{label}-{os.getpid()}-", dir=parent))
            lock = OwnerLock(staging)
        yield staging
    finally:
        with deferred_interrupts():
            if lock is not None:
                lock.release()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def swap_into(staged: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename ``staged`` (file or folder) onto ``target``; an existing target is moved aside first, then deleted.

    Readers see the old target or the new one: only the instant between the two renames has neither, and a
    crash there leaves the old one in a hidden ``.<name>.old-<pid>-*`` folder beside it, never a mix of both
    (the next :func:`staging_folder` in that folder removes it). Ctrl-C waits until both renames are done.
    """
    target = Path(target)
    with deferred_interrupts():
        if not target.exists():
            os.replace(staged, target)
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(staged, target)
        shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def folders_created(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` and its missing parents; if the block fails, remove those of them that are empty again.

    So a refused or interrupted command does not leave an empty output folder behind.
    """
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        with deferred_interrupts():
            for created in missing:  # deepest first
                try:
                    created.rmdir()
                except OSError:  # not empty (or gone): keep it and its parents
                    break
        raise


def output_folder_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be an output folder (``None`` when it can): a file at its place or above it, or
    no permission to create it."""
    folder = Path(os.path.abspath(folder))
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                return f"output {folder}: {path} is not a folder"
            if path != folder and not os.access(path, os.W_OK | os.X_OK):
                return f"output {folder}: cannot create folders in {path} (permission denied)"
            return None
    return None  # pragma: no cover - "/" exists


def link_or_copy(src: Path, dst: Path) -> str:
    """Make ``dst`` a hard link to ``src`` (a copy where the filesystem refuses links), atomically.

    Returns ``"present"`` if ``dst`` already is that very file, ``"link"`` or ``"copy"``.
    ``rename(2)`` between two links of one inode is a no-op that would leave the temporary behind,
    hence the same-file test first.
    """
    if dst.exists() and os.path.samefile(src, dst):
        return "present"
    with atomic_target(dst) as tmp:
        try:
            os.link(src, tmp)
            how = "link"
        except OSError:  # no hard links here (FAT, some network filesystems, other device)
            shutil.copyfile(src, tmp)
            how = "copy"
    return how


def remove_temporaries(folder: Path) -> int:
    """Delete leftover temporaries (``.*.tmp``) of killed runs under ``folder``; return how many."""
    removed = 0
    if folder.is_dir():
        for leftover in folder.rglob(f".*{TMP_SUFFIX}"):
            leftover.unlink()
            removed += 1
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks: the content digest every marker and stamp records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
