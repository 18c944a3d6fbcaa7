"""Dataset-folder helpers on top of :mod:`tloss_nnunet.atomic`: atomic hard links and sweeping leftovers.

Temporaries are hidden and end in ``.tmp``, so nnU-Net, which lists files by their ending (``.png``),
never picks one up, and a re-run can sweep leftovers of a killed run with :func:`remove_temporaries`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tloss_nnunet.atomic import TMP_SUFFIX, atomic_target, write_bytes, write_json

__all__ = ["link_or_copy", "remove_temporaries", "write_bytes", "write_json"]


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
