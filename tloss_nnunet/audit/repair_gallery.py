"""``repair.png``: the repaired cases before and after, what a user looks at before training on the new dataset.

One row per repaired case, most suspect first (at most :data:`GALLERY_CASES`): the image, the given label, the
audit's held-out prediction, the repaired label (nnU-Net's ignore label in orange) and the changes (red: given
foreground removed, blue: foreground added or class changed, orange: ignored). A dropped case shows the image,
its given label and the prediction that made it suspect. For a 3D case the slice (first spatial axis) with the
most changed pixels is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tloss_nnunet.audit.gallery import Panel, Row, draw_rows, image_view, slice_at

__all__ = ["GALLERY_CASES", "GALLERY_FILE", "RepairView", "repair_view", "write_repair_gallery"]

#: At most this many rows (the most suspect repaired cases).
GALLERY_CASES = 8
#: Written next to repair.json in the new dataset folder.
GALLERY_FILE = "repair.png"
_ORANGE, _RED, _BLUE = (1.0, 0.55, 0.0), (0.85, 0.1, 0.1), (0.1, 0.3, 0.9)


@dataclass(frozen=True)
class RepairView:
    """2D views of one repaired case; ``repaired`` is None for a dropped case, ``prediction`` None when a dropped
    case's probabilities are missing from the audit (``drop`` does not need them)."""

    case: str
    rank: int
    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray | None
    repaired: np.ndarray | None
    changed_fraction: float


def _slice_index(label: np.ndarray, repaired: np.ndarray | None) -> int | None:
    """The index along the first spatial axis with the most changed pixels (the most foreground for a dropped
    case); None (the middle) for 2D arrays or when nothing stands out."""
    if label.ndim < 3:
        return None
    marked = (label != repaired) if repaired is not None else (label > 0)
    counts = marked.reshape(marked.shape[0], -1).sum(axis=1)
    return int(counts.argmax()) if counts.any() else None


def repair_view(case: str, rank: int, image: np.ndarray, label: np.ndarray, prediction: np.ndarray | None,
                repaired: np.ndarray | None, changed_fraction: float) -> RepairView:
    """Cut the 2D views of one case: ``image`` (C, *spatial) as nnU-Net's reader gives it, ``label``,
    ``prediction`` (argmax of the held-out probabilities) and ``repaired`` (*spatial)."""
    index = _slice_index(label, repaired)
    return RepairView(case, rank, image_view(image, index), slice_at(label, index),
                      None if prediction is None else slice_at(prediction, index),
                      None if repaired is None else slice_at(repaired, index), changed_fraction)


def _label_rgb(label: np.ndarray, ignore_value: int | None) -> np.ndarray:
    """Classes as grey levels (background black), the ignore label orange."""
    ignored = label == ignore_value if ignore_value is not None else np.zeros(label.shape, dtype=bool)
    classes = np.where(ignored, 0, label).astype(float)
    top = float(classes.max()) or 1.0
    rgb = np.repeat((classes / top)[..., None], 3, axis=-1)
    rgb[ignored] = _ORANGE
    return rgb


def _changes_rgb(label: np.ndarray, repaired: np.ndarray, ignore_value: int | None) -> np.ndarray:
    rgb = np.zeros((*label.shape, 3))
    rgb[(label > 0) & (label == repaired)] = (0.75, 0.75, 0.75)
    changed = label != repaired
    ignored = changed & (repaired == ignore_value) if ignore_value is not None else np.zeros(label.shape, bool)
    rgb[changed & (repaired == 0)] = _RED
    rgb[changed & (repaired > 0) & ~ignored] = _BLUE
    rgb[ignored] = _ORANGE
    return rgb


def _row(view: RepairView, ignore_value: int | None) -> Row:
    given = _label_rgb(view.label, ignore_value)
    panels: list[Panel] = [(view.image, "image"), (given, "given label")]
    if view.prediction is not None:
        panels.append((_label_rgb(view.prediction, None), "held-out prediction"))
    if view.repaired is None:
        return f"#{view.rank} {view.case}: left out of training", panels
    panels += [(_label_rgb(view.repaired, ignore_value), "repaired label (orange: ignored)"),
               (_changes_rgb(view.label, view.repaired, ignore_value), "red: removed, blue: added, orange: ignored")]
    return f"#{view.rank} {view.case}: {100 * view.changed_fraction:.2f} % of pixels changed", panels


def write_repair_gallery(path: Path, views: list[RepairView], ignore_value: int | None) -> None:
    """Write ``repair.png`` (atomically): one row per view, in the order given."""
    rows = [_row(view, ignore_value) for view in views[:GALLERY_CASES]]
    draw_rows(path, rows, columns=max((len(panels) for _, panels in rows), default=1))
