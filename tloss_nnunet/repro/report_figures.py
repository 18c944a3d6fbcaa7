"""The demo report's figures: ``curves.png`` (nu and pseudo-Dice over epochs) and ``cases.png`` (test cases,
a corrupted training case, each model's prediction). Written atomically (:mod:`tloss_nnunet.atomic`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from tloss_nnunet.atomic import atomic_target  # noqa: E402
from tloss_nnunet.repro.report_inputs import DemoReport, TrainerResult, cases_for_grid, noisy_examples  # noqa: E402

__all__ = ["plot_cases", "plot_curves"]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RuntimeError(f"cannot read image {path}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)


def _read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise RuntimeError(f"cannot read segmentation {path}")
    return (mask > 0) if mask.ndim == 2 else (mask[..., 0] > 0)


def _model_colors() -> list[tuple[float, float, float]]:
    """Matplotlib's default colour cycle as RGB triples: model i is drawn in colour i everywhere."""
    return [to_rgb(c) for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]]


def plot_curves(results: Sequence[TrainerResult], path: Path) -> None:
    """Two panels over epochs: nu of the T-Loss model(s) (left) and nnU-Net's pseudo-Dice on the
    validation cases for every model (right; solid: EMA ``ema_fg_dice``, dotted: per epoch ``mean_fg_dice``)."""
    fig, (ax_nu, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    colors = _model_colors()
    for i, result in enumerate(results):
        color = colors[i % len(colors)]
        nu = result.logging.get("nu")
        if nu:
            ax_nu.plot(range(len(nu)), nu, "o-", color=color, label=f"{result.label} ({result.trainer})")
        for key, style in (("ema_fg_dice", "o-"), ("mean_fg_dice", "o:")):
            values = result.logging.get(key)
            if values:
                ax_dice.plot(range(len(values)), values, style, color=color, markersize=3,
                             label=f"{result.label}: {key}")
    ax_nu.set_title("T-Loss nu (end of each training epoch)")
    ax_nu.set_xlabel("epoch")
    ax_nu.set_ylabel("nu")
    if ax_nu.lines:
        ax_nu.legend(fontsize=8)
    else:
        ax_nu.text(0.5, 0.5, "no nu logged", ha="center", va="center", transform=ax_nu.transAxes)
    ax_dice.set_title("pseudo-Dice on the validation cases")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("Dice")
    ax_dice.set_ylim(0, 1)
    ax_dice.legend(fontsize=8, loc="lower right")
    for ax in (ax_nu, ax_dice):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_cases(report: DemoReport, path: Path) -> None:
    """Grid, one row per test case: image | clean truth | a noisy training mask | prediction of each model.

    The test masks are clean, so the third column shows a different case: a corrupted TRAINING case
    (its clean mask outlined in green, the noisy mask the network was trained on filled in red).
    Predictions are filled in the model's colour with the clean truth outlined in green.
    """
    data = report.data
    cases = cases_for_grid(report)
    examples = noisy_examples(data, len(cases))
    columns = 3 + len(report.results)
    fig, axes = plt.subplots(len(cases), columns, figsize=(2.3 * columns, 2.5 * len(cases) + 0.3), squeeze=False)
    try:
        fills = _model_colors()  # the same colour per model as in curves.png
        for row, case in enumerate(cases):
            image = _read_rgb(data.noisy_dataset / "imagesTs" / f"{case}_0000.png")
            truth = _read_mask(data.noisy_dataset / "labelsTs" / f"{case}.png")
            axes[row, 0].imshow(image)
            axes[row, 0].set_title(f"test {case}", fontsize=8)
            _show_mask(axes[row, 1], image, truth, (0.1, 0.8, 0.1), None)
            axes[row, 1].set_title("clean truth", fontsize=8)
            if row < len(examples):
                train_case, kind = examples[row]
                train_image = _read_rgb(data.noisy_dataset / "imagesTr" / f"{train_case}_0000.png")
                noisy = _read_mask(data.noisy_dataset / "labelsTr" / f"{train_case}.png")
                clean = _read_mask(data.clean_dataset / "labelsTr" / f"{train_case}.png")
                _show_mask(axes[row, 2], train_image, noisy, (0.9, 0.1, 0.1), clean)
                axes[row, 2].set_title(f"TRAINING {train_case}\n{kind}: red noisy, green clean", fontsize=7)
            else:
                axes[row, 2].text(0.5, 0.5, "no corrupted\ntraining case", ha="center", va="center", fontsize=8)
            for j, result in enumerate(report.results):
                prediction = _read_mask(result.predictions / f"{case}.png")
                _show_mask(axes[row, 3 + j], image, prediction, fills[j % len(fills)], truth)
                dice = result.evaluation.per_case.get(case, math.nan)
                axes[row, 3 + j].set_title(f"{result.label}\nDice {dice:.3f}", fontsize=8)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"clean test cases (first {len(cases)} by id); models trained on alpha={data.alpha:g}, "
                     f"beta={data.beta:g} noisy masks", fontsize=9)
        fig.tight_layout()
        _save_figure(fig, path)
    finally:
        plt.close(fig)  # also when a file is missing


def _show_mask(ax: plt.Axes, image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float],
               outline: np.ndarray | None) -> None:
    """``image`` with ``mask`` filled half-transparent in ``color`` and ``outline``'s border drawn in green."""
    shown = image.astype(np.float32) / 255.0
    shown[mask] = 0.45 * shown[mask] + 0.55 * np.asarray(color, np.float32)
    ax.imshow(np.clip(shown, 0, 1))
    if outline is not None and outline.any() and not outline.all():
        ax.contour(outline.astype(np.float32), levels=[0.5], colors=[(0.1, 0.9, 0.1)], linewidths=1.2)


def _save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
