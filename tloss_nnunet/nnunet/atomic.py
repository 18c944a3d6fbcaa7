"""Write-then-rename, so a crash never leaves a half-written checkpoint or plot under its final name."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

__all__ = ["atomic_target"]


@contextmanager
def atomic_target(path: str) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``, on error delete it.

    The temporary file is created by the caller's writer with the process's normal permissions (unlike
    ``tempfile.mkstemp``, which would make checkpoints private to the user).
    """
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
