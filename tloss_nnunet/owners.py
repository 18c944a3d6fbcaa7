"""Who owns a hidden working folder, and removing the ones whose owner died (``kill -9``, power loss).

An owner holds an advisory lock (``flock``) on its folder for as long as it works in it; the kernel drops the
lock when the process ends, however it ends. A folder is stale when its lock is free and the pid in its name
(where there is one) is not running: the lock covers processes this one cannot see (another container on the
same disk), the pid covers the instant between creating a folder and locking it. Where ``flock`` does not
exist (Windows) or the filesystem refuses it, only the pid decides.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["OwnerLock", "pid_is_running", "remove_stale"]


def pid_is_running(pid: int) -> bool:
    """True when a process with this pid exists (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by somebody else
        return True
    return True


class OwnerLock:
    """An exclusive lock on a folder, held until :meth:`release` or the end of the process."""

    def __init__(self, folder: Path, fd: int | None = None) -> None:
        self.folder = folder
        self._fd = fd
        if fd is None and fcntl is not None:
            self._fd = _try_lock(folder)
            if self._fd is None:
                raise BlockingIOError(f"{folder} is locked by another process")

    @classmethod
    def try_acquire(cls, folder: Path) -> OwnerLock | None:
        """The lock, or ``None`` when another live process holds it."""
        try:
            return cls(folder)
        except BlockingIOError:
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _try_lock(folder: Path) -> int | None:
    """A descriptor holding ``flock(LOCK_EX)`` on ``folder``; ``None`` when somebody else holds it. A
    filesystem without locks yields an unlocked descriptor (the pid check still applies)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # e.g. ENOLCK on some network filesystems
        pass
    return fd


def remove_stale(parent: Path, *patterns: str) -> list[Path]:
    """Remove the folders in ``parent`` whose names match one of ``patterns`` (regular expressions whose first
    group is the owner's pid) and whose owner is gone; return them."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    compiled = [re.compile(pattern) for pattern in patterns]
    for entry in sorted(parent.iterdir()):
        match = next((m for c in compiled if (m := c.fullmatch(entry.name))), None)
        if match is None or not entry.is_dir() or pid_is_running(int(match.group(1))):
            continue
        lock = OwnerLock.try_acquire(entry)
        if lock is None:  # a live owner this process cannot see
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            lock.release()
        removed.append(entry)
    return removed
