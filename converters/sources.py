"""Input files that may live in a folder or inside a zip archive, read without unpacking.

The official releases come as folders or as ``<folder>.zip`` files holding that folder. A
:class:`Source` names one file either way; :func:`list_container` lists a folder or an archive as
``{basename: Source}``, skipping what is never data (directories, ``__MACOSX/`` resource forks,
hidden files such as ``.DS_Store``).

Zip handles are cached per process (a forked worker must not share the parent's file offset),
so reading thousands of members from one archive opens it once per worker.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

# (pid, archive path) -> open ZipFile; keyed by pid so forked workers open their own handle.
_OPEN_ARCHIVES: dict[tuple[int, str], zipfile.ZipFile] = {}


@dataclass(frozen=True)
class Source:
    """One input file: ``path`` on disk, or ``member`` inside the zip archive at ``path``.

    Attributes:
        path: the file, or the archive holding it.
        member: the member name inside the archive (``None`` for a plain file).
        identity: cheap change detector, ``(size, mtime_ns)`` for files and ``(size, crc32)``
            for members; it feeds the fingerprint that decides whether a re-run may resume.
    """

    path: str
    member: str | None = None
    identity: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        """The file's base name, e.g. ``ISIC_0000000.jpg``."""
        return os.path.basename(self.member if self.member is not None else self.path)

    def describe(self) -> str:
        """Human-readable location for error reports: ``path`` or ``archive.zip:member``."""
        return self.path if self.member is None else f"{self.path}:{self.member}"

    def read_bytes(self) -> bytes:
        """Return the file's content; raises ``OSError`` or ``zipfile.BadZipFile`` if unreadable."""
        if self.member is None:
            return Path(self.path).read_bytes()
        return _archive(self.path).read(self.member)


def _archive(path: str) -> zipfile.ZipFile:
    key = (os.getpid(), path)
    handle = _OPEN_ARCHIVES.get(key)
    if handle is None:
        handle = _OPEN_ARCHIVES[key] = zipfile.ZipFile(path)
    return handle


def _is_junk(name: str) -> bool:
    """True for entries that are never data: macOS resource forks and hidden files."""
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].startswith(".") or parts[-1] in ("", "Thumbs.db")


def list_folder(folder: Path) -> dict[str, Source]:
    """List the regular files directly inside ``folder`` as ``{basename: Source}``."""
    entries: dict[str, Source] = {}
    with os.scandir(folder) as it:
        for entry in it:
            if not entry.is_file() or _is_junk(entry.name):
                continue
            stat = entry.stat()
            entries[entry.name] = Source(entry.path, None, (stat.st_size, stat.st_mtime_ns))
    return entries


def list_archive(archive: Path) -> tuple[dict[str, Source], list[str]]:
    """List the files of a zip archive by base name (the official zips hold one top folder).

    Returns ``({basename: Source}, problems)``; a base name present twice (in two folders of the
    archive) is a problem because the pairing by file name would be ambiguous.
    Raises ``zipfile.BadZipFile`` / ``OSError`` if the archive cannot be opened.
    """
    entries: dict[str, Source] = {}
    problems: list[str] = []
    with zipfile.ZipFile(archive) as handle:
        for info in handle.infolist():
            if info.is_dir() or _is_junk(info.filename):
                continue
            base = os.path.basename(info.filename)
            if base in entries:
                problems.append(f"{archive}: '{base}' appears more than once in the archive")
                continue
            entries[base] = Source(str(archive), info.filename, (info.file_size, info.CRC))
    return entries, problems


def list_container(root: Path, name: str) -> tuple[dict[str, Source] | None, list[str]]:
    """List ``root/name/`` if it is a folder, else ``root/name.zip``; ``None`` if neither exists.

    A folder wins over an archive of the same name (it is what the user unpacked). Returns
    ``(entries or None, problems)``.
    """
    folder, archive = root / name, root / f"{name}.zip"
    if folder.is_dir():
        return list_folder(folder), []
    if archive.is_file():
        try:
            return list_archive(archive)
        except (zipfile.BadZipFile, OSError) as err:
            return None, [f"{archive}: unreadable zip archive ({err})"]
    return None, []
