"""Reading an nnU-Net v2 checkpoint file once, checked, with the SHA-256 of its bytes.

One place says what makes a file a usable checkpoint: ``torch.load`` reads it (a truncated or damaged file, text,
a tensor are refused in one line) and it holds what nnU-Net's predictor reads (``network_weights``, ``init_args``
with the ``configuration``, ``trainer_name``; ``nnUNetPredictor.initialize_from_trained_model_folder``). The
digest comes from the same read (a checkpoint is tens of MB: read once, hashed once) and is kept for the rest of
the process, keyed by path, inode, size and the modification and change times (any write or ``touch`` moves the
change time, which no user can set back), so later callers get it for free.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path

from tloss_nnunet.errors import InputError

__all__ = ["PREDICTOR_KEYS", "checkpoint_sha256", "read_checkpoint"]

#: What nnU-Net's predictor takes from a checkpoint (``inference_allowed_mirroring_axes`` is optional there).
PREDICTOR_KEYS = ("network_weights", "init_args", "trainer_name")

_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes; hashed once per process while the file is not written to."""
    path = Path(path)
    key = _key(path)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _DIGESTS[key]


def _problem(checkpoint: object) -> str | None:
    """Why nnU-Net's predictor could not use this loaded object; None when it can."""
    if not isinstance(checkpoint, Mapping):
        return f"holds a {type(checkpoint).__name__}, not a checkpoint dict"
    missing = [key for key in PREDICTOR_KEYS if key not in checkpoint]
    if missing:
        return f"lacks {', '.join(missing)}"
    if not isinstance(checkpoint["network_weights"], Mapping):
        return f"its network_weights is a {type(checkpoint['network_weights']).__name__}, not a state dict"
    if not isinstance(checkpoint["init_args"], Mapping) or "configuration" not in checkpoint["init_args"]:
        return "its init_args has no configuration"
    if not isinstance(checkpoint["trainer_name"], str):
        return f"its trainer_name is a {type(checkpoint['trainer_name']).__name__}, not a name"
    return None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, str]:
    """(the loaded checkpoint, the SHA-256 of its bytes); anything nnU-Net's predictor could not use is an
    :class:`InputError` naming the file and what to do."""
    import torch

    path = Path(path)
    try:
        key, data = _key(path), path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch reports damage as RuntimeError, EOFError, UnpicklingError...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"{path}: cannot be read as a checkpoint (truncated or damaged?): {reason}; train the "
                         "fold again or restore the file") from None
    problem = _problem(checkpoint)
    if problem:
        raise InputError(f"{path}: not an nnU-Net v2 checkpoint ({problem}); point at a fold's "
                         "checkpoint_final.pth written by nnUNetv2_train")
    _DIGESTS[key] = hashlib.sha256(data).hexdigest()
    return dict(checkpoint), _DIGESTS[key]
