"""Pictures of cases for people to look at: 2D views of nnU-Net arrays and a grid of titled panels in a PNG.

Used by ``suspects.png`` (:mod:`tloss_nnunet.audit.report`) and ``repair.png``
(:mod:`tloss_nnunet.audit.repair_gallery`). Arrays are nnU-Net's reader layout: images (C, *spatial), labels
(*spatial) once the channel axis is taken off; 2D natural images have a leading spatial axis of size 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import atomic_target

__all__ = ["Panel", "Row", "draw_rows", "image_view", "middle_slice", "slice_at"]

#: A picture (2D grey or label values, shown scaled to their range; or (H, W, 3) RGB in [0, 1]) and its title.
Panel = tuple[np.ndarray, str]
#: One row: its title (put over the first panel) and its panels, left to right.
Row = tuple[str, Sequence[Panel]]


def middle_slice(array: np.ndarray) -> np.ndarray:
    """(*spatial) -> 2D: the middle slice along the first axis until two axes are left (2D stays as is)."""
    while array.ndim > 2:
        array = array[array.shape[0] // 2]
    return array


def slice_at(array: np.ndarray, index: int | None) -> np.ndarray:
    """(*spatial) -> 2D: slice ``index`` of the first axis (None: the middle), then middle slices."""
    if array.ndim > 2 and index is not None:
        array = array[index]
    return middle_slice(array)


def _min_max(picture: np.ndarray) -> np.ndarray:
    picture = picture.astype(float)
    span = float(picture.max() - picture.min()) or 1.0
    return (picture - picture.min()) / span


def image_view(image: np.ndarray, index: int | None = None) -> np.ndarray:
    """(C, *spatial) image -> 2D grey (the first channel), or (H, W, 3) colour for three channels, scaled to
    [0, 1] (nnU-Net's intensities may be any range: raw CT, z-scored arrays)."""
    if image.shape[0] == 3:
        return _min_max(np.stack([slice_at(image[c], index) for c in range(3)], axis=-1))
    return _min_max(slice_at(image[0], index))


def draw_rows(path: Path, rows: Sequence[Row], columns: int) -> None:
    """Write a PNG grid, one row per entry of ``rows`` and ``columns`` panels wide, atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(max(len(rows), 1), columns, figsize=(3 * columns, 3 * max(len(rows), 1)),
                             squeeze=False)
    for row_axes, (row_title, panels) in zip(axes, rows):
        for ax, (picture, title) in zip(row_axes, panels):
            # RGB pictures are in [0, 1] already; 2D ones (images, label values) are scaled to their own range
            ax.imshow(picture if picture.ndim == 3 else _min_max(picture), cmap=None if picture.ndim == 3 else "gray",
                      interpolation="nearest", vmin=0.0, vmax=1.0)
            ax.set_title(title, fontsize=9)
        # left-aligned on its own line above the panel titles: a long row title runs on over the next panels
        row_axes[0].set_title(f"{row_title}\n{row_axes[0].get_title()}", fontsize=9, loc="left")
        row_axes[0].set_title("")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
