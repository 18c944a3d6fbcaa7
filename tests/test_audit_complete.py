"""Which predictions an interrupted ``suspects`` may reuse: nnU-Net writes the probabilities, then the
segmentation, so a run killed in between leaves a whole ``.npz`` beside a half-written segmentation."""

from __future__ import annotations

import numpy as np
from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

from tloss_nnunet.audit.predict import _is_complete


def _case(folder, segmentation: bytes | None) -> None:
    np.savez_compressed(folder / "c.npz", probabilities=np.full((2, 1, 8, 8), 0.5, np.float32))
    if segmentation is not None:
        (folder / "c.png").write_bytes(segmentation)


def _png(tmp_path) -> bytes:
    NaturalImage2DIO().write_seg(np.ones((1, 8, 8), np.uint8), str(tmp_path / "whole.png"), {"spacing": (1, 1, 1)})
    return (tmp_path / "whole.png").read_bytes()


def test_a_half_written_segmentation_is_not_complete(tmp_path):
    whole = _png(tmp_path)
    folder = tmp_path / "fold_0"
    folder.mkdir()
    _case(folder, whole)
    reader = NaturalImage2DIO()
    assert _is_complete(folder, "c", ".png", reader)
    (folder / "c.png").write_bytes(whole[: len(whole) // 2])  # killed while nnU-Net wrote it
    assert not _is_complete(folder, "c", ".png", reader)
    assert _is_complete(folder, "c", ".png")  # the cheap check alone cannot tell


def test_no_segmentation_is_not_complete(tmp_path):
    _case(tmp_path, None)
    assert not _is_complete(tmp_path, "c", ".png", NaturalImage2DIO())
