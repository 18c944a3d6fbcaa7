"""Pixel work of the converters: decode, check, resize and encode, all with OpenCV.

Resizing follows the benchmark protocol (T-Loss repository, ``datasets/noise/data_preprocessing.py``):

* image: ``cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)`` on uint8 pixels;
* mask: every non-zero pixel becomes 1 first, then ``cv2.resize(mask01, (size, size),
  interpolation=cv2.INTER_NEAREST)`` (OpenCV's nearest mapping, ``src = floor(dst * scale)``).

Colour images stay in OpenCV's BGR order from decoding to encoding: resizing acts on each
channel alone, and ``cv2.imencode`` expects BGR, so the PNG written holds the original RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from tloss_nnunet.converters.native_stderr import captured_native_stderr, jpeg_corruption

# EXIF orientation is ignored, as skimage/PIL (the reference's readers) do; rotating the photo
# but not its mask would misalign them.
_COLOR_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_UNCHANGED_FLAGS = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
_GRAY_FLAGS = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION
_JPEG_START = b"\xff\xd8"


class DecodeError(ValueError):
    """The bytes are not a readable image (empty, truncated, corrupt or unsupported)."""


def _decode(data: bytes, flags: int) -> np.ndarray:
    if not data:
        raise DecodeError("empty file")
    try:
        if data[:2] == _JPEG_START:  # libjpeg only warns about damaged data: catch its warnings
            with captured_native_stderr() as messages:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
            corruption = jpeg_corruption(messages)
            if corruption:
                raise DecodeError(f"corrupt JPEG (libjpeg: {corruption})")
        else:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as err:  # raised for some malformed headers instead of returning None
        raise DecodeError("unreadable or corrupt image") from err
    if image is None or image.size == 0:
        raise DecodeError("unreadable or corrupt image")
    return image


def decode_color(data: bytes) -> np.ndarray:
    """Decode to (H, W, 3) uint8 **BGR** (grey images are repeated, alpha is dropped)."""
    return _decode(data, _COLOR_FLAGS)


def decode_gray(data: bytes) -> tuple[np.ndarray, bool]:
    """Decode to (H, W) uint8 grey; also return whether the file stored colour channels.

    Colour (BGR or BGRA) becomes grey with ``cv2.COLOR_BGR2GRAY`` (0.299 R + 0.587 G + 0.114 B,
    exact for R == G == B, the case of X-rays saved as RGB); 16-bit data is scaled to 8 bits.
    """
    image = _decode(data, _UNCHANGED_FLAGS)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DecodeError(f"unsupported pixel type {image.dtype}")
    stored_color = image.ndim == 3 and image.shape[2] > 1
    if image.ndim == 3:
        code = {1: None, 3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}.get(image.shape[2], -1)
        if code == -1:
            raise DecodeError(f"unsupported number of channels {image.shape[2]}")
        image = image[:, :, 0] if code is None else cv2.cvtColor(image, code)
    return image, stored_color


def decode_mask(data: bytes) -> np.ndarray:
    """Decode a mask to (H, W) uint8 (colour masks are converted to grey first)."""
    return _decode(data, _GRAY_FLAGS)


def mask_value_problem(mask: np.ndarray) -> str | None:
    """Return ``None`` if ``mask`` holds only {0, 255} or only {0, 1}, else a description.

    Uses a 256-bin histogram (one pass, no sort): cheap even for 6k x 4k masks.
    """
    counts = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel()
    present = {int(v) for v in np.flatnonzero(counts)}
    if present <= {0, 255} or present <= {0, 1}:
        return None
    shown = sorted(present)
    listed = ", ".join(map(str, shown[:8])) + (", ..." if len(shown) > 8 else "")
    return f"mask is not binary: values {{{listed}}} (expected only 0/255 or 0/1)"


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size x size`` with bilinear interpolation; ``size == 0`` keeps the image."""
    if size == 0:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def binarize_and_resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Return the (size, size) (or native, for ``size == 0``) uint8 0/1 mask of ``mask > 0``."""
    mask01 = (mask > 0).astype(np.uint8)
    if size == 0:
        return mask01
    return cv2.resize(mask01, (size, size), interpolation=cv2.INTER_NEAREST)


def encode_png(image: np.ndarray) -> bytes:
    """Encode (H, W) or (H, W, 3 BGR) uint8 pixels as PNG bytes (OpenCV's default compression)."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - only on exotic arrays we never pass
        raise RuntimeError(f"PNG encoding failed for an array of shape {image.shape}")
    return buffer.tobytes()
