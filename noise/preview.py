"""A PNG grid to look at the noise: per case the image (or clean mask) and a noisy-vs-clean overlay.

Overlay colours: green = foreground in both, red = added by the noise (false positive),
blue = removed by the noise (false negative), black = background in both. Each overlay is titled
with the noise kind and the achieved noise rate ``(FP + FN) / fg_clean``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from tloss_nnunet.noise.apply import apply_noise
from tloss_nnunet.noise.mask_io import read_binary_mask
from tloss_nnunet.noise.settings import CaseNoise, NoiseSetting

#: Extensions tried, in order, for ``<image_dir>/<case>.<ext>``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Case pairs (image + overlay) per grid row.
PAIRS_PER_ROW = 4

_KEPT, _ADDED, _REMOVED = (0.2, 0.8, 0.2), (0.9, 0.15, 0.15), (0.2, 0.4, 1.0)


def preview_cases(plan: Mapping[str, CaseNoise], count: int) -> list[str]:
    """The first ``count`` corrupted cases in sorted order, topped up with clean ones if needed."""
    noisy = [case for case, spec in plan.items() if spec.kind != "clean"]
    clean = [case for case, spec in plan.items() if spec.kind == "clean"]
    return (noisy + clean)[:count]


def find_image(image_dir: Path, case: str) -> Path | None:
    """``image_dir/<case>.<ext>`` for the first existing extension of :data:`IMAGE_EXTENSIONS`."""
    for extension in IMAGE_EXTENSIONS:
        path = image_dir / f"{case}{extension}"
        if path.is_file():
            return path
    return None


def image_is_readable(path: Path) -> bool:
    """Whether OpenCV can decode ``path``."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR) is not None


def _load_image(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """RGB uint8 image resized (for display only) to the mask's (H, W)."""
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if image.shape[:2] != shape:
        image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return image


def overlay(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB: green kept, red added, blue removed, black elsewhere."""
    rgb = np.zeros((*clean.shape, 3))
    rgb[clean & noisy] = _KEPT
    rgb[~clean & noisy] = _ADDED
    rgb[clean & ~noisy] = _REMOVED
    return rgb


def write_preview(
    path: Path,
    setting: NoiseSetting,
    cases: Sequence[str],
    masks: Mapping[str, Path],
    plan: Mapping[str, CaseNoise],
    image_paths: Mapping[str, Path | None],
    unbiased: bool,
) -> None:
    """Draw the grid for ``cases`` of one setting and save it as a PNG at ``path``."""
    # A bare Figure renders with Agg and leaves pyplot's global backend/state untouched.
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    pairs_per_row = min(PAIRS_PER_ROW, max(1, len(cases)))
    rows = math.ceil(len(cases) / pairs_per_row)
    figure = Figure(figsize=(2.4 * 2 * pairs_per_row, 2.7 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, 2 * pairs_per_row, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for index, case in enumerate(cases):
        clean, _ = read_binary_mask(masks[case])
        result = apply_noise(clean, plan[case], setting.beta, unbiased=unbiased)
        left, right = axes[index // pairs_per_row, 2 * (index % pairs_per_row) : 2 * (index % pairs_per_row) + 2]
        image_path = image_paths.get(case)
        if image_path is not None:
            left.imshow(_load_image(image_path, clean.shape))
        else:
            left.imshow(clean, cmap="gray", vmin=0, vmax=1)
        left.set_title(case, fontsize=8)
        right.imshow(overlay(clean, result.mask), interpolation="nearest")
        rate = "n/a" if math.isnan(result.noise_rate) else f"{result.noise_rate:.2f}"
        flag = " *" if result.note else ""
        right.set_title(f"{result.kind}, rate {rate}{flag}", fontsize=8)
    legend = [Patch(color=_KEPT, label="kept"), Patch(color=_ADDED, label="added"),
              Patch(color=_REMOVED, label="removed")]
    figure.legend(handles=legend, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    direction_mode = "unbiased directions" if unbiased else "published directions"
    figure.suptitle(
        f"{setting.name} ({direction_mode}); rate = (FP+FN)/clean area; * = see noise_log.csv notes",
        fontsize=9,
    )
    figure.savefig(path, dpi=100)
