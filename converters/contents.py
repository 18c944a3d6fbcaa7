"""What the files of a dataset folder hold: SHA-256 digests for the marker, and damaged versus edited.

The marker of a completed dataset folder lists every file ``convert`` wrote with its SHA-256. On a re-run, a
file whose digest no longer matches is

* **damaged** when it no longer decodes: a PNG whose signature, chunk structure or any chunk CRC is wrong, that
  is cut short, has bytes after ``IEND``, or whose image data does not inflate to the size its header gives; a
  ``.json`` that is not UTF-8 JSON; another text file (``noise_log.tsv``) that is not UTF-8. The disk or a
  killed copy broke convert's own output, so convert writes it again;
* **edited** otherwise: it decodes, so somebody saved other content there (a label fixed by hand). It is
  reported, and replaced only with ``--overwrite``.

Every byte of a PNG is covered by the signature, a length or a CRC, so one flipped byte makes it damaged; text
files carry no checksum, so a change that still parses counts as an edit.

Digests and verdicts of files not changed in the last seconds are cached per process by (device, inode,
size, mtime, ctime): the images are hard links shared by a family's datasets and are read once. A file
changed later gets another ctime (which no tool can set back), so the cache never hides a change (the rule
git uses for "racily clean" files: timestamps are coarse, so only settled files are cached).
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from tloss_nnunet.atomic import file_sha256

__all__ = ["is_damaged", "png_is_intact", "sha256"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: samples per pixel of each PNG colour type
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: a file modified less than this long before it was hashed is not cached (timestamps are coarse)
_SETTLED_SECONDS = 2.0
_cache: dict[tuple[str, int, int, int, int, int], object] = {}


def _cached(kind: str, path: Path, compute: Callable[[Path], object]) -> object:
    """``compute(path)``, remembered for files not changed in the last :data:`_SETTLED_SECONDS`."""
    stat = path.stat()
    key = (kind, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key in _cache:
        return _cache[key]
    value = compute(path)
    if time.time() - max(stat.st_mtime, stat.st_ctime) > _SETTLED_SECONDS:
        _cache[key] = value
    return value


def sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (cached for settled files, see the module docstring)."""
    return str(_cached("sha256", path, file_sha256))



def png_is_intact(data: bytes) -> bool:
    """True when ``data`` is a structurally whole PNG: signature, ``IHDR`` first, every chunk complete with a
    correct CRC, ``IEND`` last, and the ``IDAT`` stream inflating to exactly the bytes the header implies
    (non-interlaced images; interlaced ones: to a complete zlib stream)."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    inflater = zlib.decompressobj()
    header: tuple[int, ...] | None = None
    inflated = 0
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(data[pos + 4:end - 4]) != struct.unpack(">I", data[end - 4:end])[0]:
            return False
        body = data[pos + 8:end - 4]
        if header is None:
            if kind != b"IHDR" or length != 13:
                return False
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            try:
                inflated += len(inflater.decompress(body))
            except zlib.error:
                return False
        elif kind == b"IEND":
            return end == len(data) and inflater.eof and not inflater.unused_data and _expected(header, inflated)
        pos = end
    return False  # cut short: no IEND


def _expected(header: tuple[int, ...], inflated: int) -> bool:
    """The inflated size matches ``height * (1 + row bytes)`` (filter byte per row), for non-interlaced PNGs."""
    width, height, depth, colour, _, _, interlace = header
    if colour not in _CHANNELS:
        return False
    if interlace:
        return True
    return inflated == height * (1 + (width * _CHANNELS[colour] * depth + 7) // 8)


def is_damaged(path: Path) -> bool:
    """True when ``path`` cannot be read or does not decode by its kind (see the module docstring)."""
    try:
        return bool(_cached("damaged", path, _is_damaged))
    except OSError:
        return True


def _is_damaged(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return True
    if path.suffix.lower() == ".png":
        return not png_is_intact(data)
    try:
        text = data.decode("utf-8")
        if path.suffix.lower() == ".json":
            json.loads(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return True
    return False
