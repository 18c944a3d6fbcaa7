"""The demo's report folder: ``report.md`` / ``report.html`` (same content), ``curves.png``, ``cases.png``,
``results.json``.

Every number comes from the run's own files: Dice values from :class:`~tloss_nnunet.repro.pipeline.Evaluation`
(nnU-Net's ``summary.json`` and the prediction files), curves from the ``logging`` dict of each model's
``checkpoint_final.pth``, pictures from the raw dataset and the prediction folders. Files are written
under a temporary name and renamed, so a report is never half-written.

    paths = write_report(report, Path("reports/demo"))
    print(paths.markdown)
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
import numpy as np  # noqa: E402

from tloss_nnunet.atomic import atomic_target, write_json, write_text  # noqa: E402
from tloss_nnunet.repro.pipeline import Evaluation  # noqa: E402

__all__ = [
    "DemoData",
    "DemoReport",
    "ReportPaths",
    "TrainerResult",
    "cases_for_grid",
    "load_training_log",
    "noisy_examples",
    "plot_cases",
    "plot_curves",
    "render_html",
    "render_markdown",
    "report_blocks",
    "write_report",
]


# ----------------------------------------------------------------------------- inputs
@dataclass
class TrainerResult:
    """One trained model and its test-set evaluation.

    Attributes:
        label: short human name, e.g. ``"T-Loss"``.
        trainer: nnU-Net trainer class name (``-tr``).
        model_folder: ``.../<trainer>__nnUNetPlans__2d``.
        predictions: folder of the test-set predictions (``<case>.png``).
        evaluation: the scores (see :class:`~tloss_nnunet.repro.pipeline.Evaluation`).
        logging: nnU-Net's per-epoch log of ``checkpoint_final.pth`` (``ema_fg_dice``, ``mean_fg_dice``, ``nu``...).
    """

    label: str
    trainer: str
    model_folder: Path
    predictions: Path
    evaluation: Evaluation
    logging: dict[str, list[float]]


@dataclass
class DemoData:
    """The noisy training set and the clean test set the models saw.

    Attributes:
        noisy_dataset: raw folder of the noisy dataset (``imagesTr``/``labelsTr`` noisy, ``imagesTs``/``labelsTs`` clean).
        clean_dataset: raw folder of its clean twin (same images, clean ``labelsTr``).
        alpha, beta: the noise setting.
        n_train, n_val, n_test: cases per split (training cases are the ones that may be corrupted).
        noise_kinds: ``{kind: count}`` over the training cases (``clean``, ``dilate``, ``erode``, ``affine``).
        size: image side length after conversion (pixels).
        seed: the seed of the synthetic release and of the noise protocol.
        source: where the images come from, one sentence.
    """

    noisy_dataset: Path
    clean_dataset: Path
    alpha: float
    beta: float
    n_train: int
    n_val: int
    n_test: int
    noise_kinds: dict[str, int]
    size: int
    seed: int
    source: str


@dataclass
class DemoReport:
    """Everything the report shows. ``results[0]`` is the T-Loss model, ``results[1]`` its stock twin."""

    data: DemoData
    schedule: str
    device: str
    results: list[TrainerResult]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    grid_cases: int = 4


@dataclass
class ReportPaths:
    folder: Path
    markdown: Path
    html: Path
    curves: Path
    cases: Path
    results: Path


# ----------------------------------------------------------------------------- reading run files
def load_training_log(fold_folder: Path) -> dict[str, list[float]]:
    """nnU-Net's per-epoch ``logging`` dict of ``fold_folder/checkpoint_final.pth`` as plain float lists."""
    import torch  # only here: the rest of the report does not need it

    checkpoint = torch.load(Path(fold_folder) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    logging = checkpoint.get("logging") or {}
    out: dict[str, list[float]] = {}
    for key, values in logging.items():
        try:
            out[key] = [float(v) for v in values]
        except (TypeError, ValueError):
            continue  # per-class lists (dice_per_class_or_region) are not plotted
    return out


def read_noise_log(dataset: Path) -> dict[str, str]:
    """``{training case: noise kind}`` from the converter's ``noise_log.tsv``."""
    lines = (Path(dataset) / "noise_log.tsv").read_text().splitlines()[1:]
    return {parts[0]: parts[1] for parts in (line.split("\t") for line in lines if line.strip())}


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


def cases_for_grid(report: DemoReport) -> list[str]:
    """The first ``grid_cases`` test cases in id order (a fixed rule, not a selection by score)."""
    return sorted(report.results[0].evaluation.per_case)[: report.grid_cases]


def noisy_examples(data: DemoData, count: int) -> list[tuple[str, str]]:
    """``count`` corrupted training cases ``(case, kind)``, taking the kinds in turn (dilate, erode, affine)."""
    kinds = read_noise_log(data.noisy_dataset)
    by_kind: dict[str, list[str]] = {}
    for case, kind in sorted(kinds.items()):
        if kind != "clean":
            by_kind.setdefault(kind, []).append(case)
    order = [k for k in ("dilate", "erode", "affine") if k in by_kind] + sorted(set(by_kind) - {"dilate", "erode", "affine"})
    picked: list[tuple[str, str]] = []
    for i in range(max((len(v) for v in by_kind.values()), default=0)):
        for kind in order:
            if i < len(by_kind[kind]) and len(picked) < count:
                picked.append((by_kind[kind][i], kind))
    return picked


# ----------------------------------------------------------------------------- figures
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


# ----------------------------------------------------------------------------- document
Block = tuple  # ("h1"|"h2"|"p", text) | ("ul", [items]) | ("table", header, rows) | ("img", file, alt)


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def report_blocks(report: DemoReport, curves_name: str = "curves.png", cases_name: str = "cases.png") -> list[Block]:
    """The report's content as a list of blocks, rendered by :func:`render_markdown` / :func:`render_html`."""
    data, results = report.data, report.results
    names = " vs ".join(f"`{r.trainer}` ({r.label})" for r in results)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(data.noise_kinds.items()))
    blocks: list[Block] = [
        ("h1", "T-Loss demo: nnU-Net trained on noisy masks, tested on clean masks"),
        ("p", f"Trainers: {names}; the same nnU-Net plans, data and schedule, only the loss differs."),
        ("h2", "Data"),
        ("ul", [
            f"source: {data.source}",
            f"noisy training set `{data.noisy_dataset.name}`: {data.n_train} training cases with noise "
            f"alpha={data.alpha:g}, beta={data.beta:g} ({kinds}), {data.n_val} clean validation cases",
            f"clean test set: {data.n_test} cases (`imagesTs` / `labelsTs` of `{data.noisy_dataset}`)",
            f"images {data.size} x {data.size} px, seed {data.seed}",
        ]),
        ("h2", "Training"),
        ("ul", [f"schedule: {report.schedule}", f"device: {report.device}"] + list(report.notes)),
        ("h2", "Dice on the clean test set"),
        ("p", "mean = mean of the per-case Dice of nnU-Net's `nnUNetv2_evaluate_folder` (summary.json); "
              "pooled = Dice over all test pixels pooled (the paper's metric), computed from the prediction files."),
        ("table", ["trainer", "loss", "mean Dice", "pooled Dice", "final nu"],
         [[f"`{r.trainer}`", r.label, _fmt(r.evaluation.dice_mean), _fmt(r.evaluation.dice_pooled),
           _fmt(r.logging["nu"][-1]) if r.logging.get("nu") else "-"] for r in results]),
    ]
    if len(results) == 2:
        mean_gap = results[0].evaluation.dice_mean - results[1].evaluation.dice_mean
        pooled_gap = results[0].evaluation.dice_pooled - results[1].evaluation.dice_pooled
        blocks.append(("p", f"{results[0].label} minus {results[1].label}: mean Dice {mean_gap:+.4f}, pooled Dice "
                            f"{pooled_gap:+.4f} (one short run on synthetic data; differences of this size can "
                            f"change with the seed and the schedule)."))
    case_ids = sorted(set().union(*(r.evaluation.per_case for r in results)))
    blocks += [
        ("h2", "Per test case"),
        ("table", ["case"] + [r.label for r in results],
         [[case] + [_fmt(r.evaluation.per_case.get(case, math.nan)) for r in results] for case in case_ids]),
        ("h2", "Training curves"),
        ("img", curves_name, "nu and pseudo-Dice over epochs"),
        ("h2", "Test cases"),
        ("p", "Columns: test image, clean truth, a corrupted TRAINING case (the test masks are clean; this "
              "shows what the networks were trained on: noisy mask in red, its clean mask outlined in green), "
              "then each model's prediction (filled) with the clean truth outlined in green."),
        ("img", cases_name, "test cases and predictions"),
    ]
    if report.seconds:
        blocks += [("h2", "Wall times"),
                   ("table", ["step", "seconds"], [[step, f"{s:.1f}"] for step, s in report.seconds.items()]
                    + [["total", f"{sum(report.seconds.values()):.1f}"]])]
    blocks += [
        ("h2", "Files"),
        ("ul", [f"{r.label}: model `{r.model_folder}`, predictions `{r.predictions}`, nnU-Net summary "
                f"`{r.evaluation.summary_path}`" for r in results]),
    ]
    return blocks


def render_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}")
        elif kind == "h2":
            out.append(f"## {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape ``text`` and turn Markdown's `code` spans into <code> elements."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def render_html(blocks: Sequence[Block], title: str = "T-Loss demo report") -> str:
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(str(c))}</td>" for c in row) + "</tr>"
                           for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<p><img src="{html.escape(block[1])}" alt="{html.escape(block[2])}"></p>')
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}"
             "img{max-width:100%}code{background:#f2f2f2}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def results_json(report: DemoReport) -> dict:
    """The report's numbers in machine-readable form (``results.json``)."""
    return {
        "data": {"noisy_dataset": str(report.data.noisy_dataset), "alpha": report.data.alpha,
                 "beta": report.data.beta, "n_train": report.data.n_train, "n_val": report.data.n_val,
                 "n_test": report.data.n_test, "noise_kinds": report.data.noise_kinds, "size": report.data.size,
                 "seed": report.data.seed},
        "schedule": report.schedule,
        "device": report.device,
        "seconds": report.seconds,
        "trainers": [{
            "label": r.label, "trainer": r.trainer, "model_folder": str(r.model_folder),
            "predictions": str(r.predictions), "summary": str(r.evaluation.summary_path),
            "dice_mean": _json_float(r.evaluation.dice_mean), "dice_pooled": _json_float(r.evaluation.dice_pooled),
            "per_case": {k: _json_float(v) for k, v in sorted(r.evaluation.per_case.items())},
            "final_nu": r.logging["nu"][-1] if r.logging.get("nu") else None,
            "epochs": len(r.logging.get("mean_fg_dice", [])),
        } for r in report.results],
    }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


# ----------------------------------------------------------------------------- writing
def write_report(report: DemoReport, folder: Path) -> ReportPaths:
    """Write the report files into ``folder`` (created) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(folder, folder / "report.md", folder / "report.html", folder / "curves.png",
                        folder / "cases.png", folder / "results.json")
    plot_curves(report.results, paths.curves)
    plot_cases(report, paths.cases)
    blocks = report_blocks(report, paths.curves.name, paths.cases.name)
    write_json(paths.results, results_json(report))
    write_text(paths.markdown, render_markdown(blocks))
    write_text(paths.html, render_html(blocks))
    return paths
