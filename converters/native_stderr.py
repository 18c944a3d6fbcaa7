"""What C libraries write to stderr while decoding, caught and turned into errors where it means corruption.

libjpeg reports damaged entropy-coded data ("Corrupt JPEG data: ...", "Premature end of JPEG file") as a
*warning*: it prints the line to file descriptor 2, fills the damaged blocks with guesses and returns an image.
OpenCV passes that image on, so a file with 200 overwritten bytes would be converted with grey blocks and a
stray line on the terminal that names no file. Catching descriptor 2 around the decode lets the converter
refuse the file by name instead. (Pillow silences these warnings, so it cannot tell either.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["JPEG_CORRUPTION_MARKS", "captured_native_stderr", "jpeg_corruption"]

#: Starts of libjpeg's warning lines that mean the pixels are not what the file's author saved.
JPEG_CORRUPTION_MARKS = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters",
                         "Inconsistent progression sequence")


@contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Collect the lines written to descriptor 2 during the block (by C code too) into the yielded list.

    Where descriptor 2 cannot be redirected (closed), the block runs uncaptured and the list stays empty.
    """
    lines: list[str] = []
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def jpeg_corruption(lines: list[str]) -> str | None:
    """libjpeg's first corruption message among ``lines`` (``None`` if none); the other lines are written to
    stderr again, so nothing else is swallowed."""
    found = [line for line in lines if line.startswith(JPEG_CORRUPTION_MARKS)]
    others = [line for line in lines if line not in found]
    if others:
        print("\n".join(others), file=sys.stderr)
    return found[0] if found else None
