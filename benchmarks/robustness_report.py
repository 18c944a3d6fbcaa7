"""The robustness grid's report: Dice tables (mean and 95 % t-interval over seeds), paired T-Loss - Dice+CE, nu,
memorisation, and the Dice-vs-noise plot, from records with the fields :data:`FIELDS`.

Intervals are :func:`benchmarks.studykit.stats.t_interval` over seeds, not clipped (the table says so); with
n = 1 there is no interval and the table says so instead of inventing one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text

from .studykit.arms import LOSS_ARMS as LOSS_PRIORITY
from .studykit.grid import SETTINGS as SETTING_NAMES
from .studykit.grid import ordered as _ordered
from .studykit.plots import figure
from .studykit.stats import Cell, format_cell, t_interval

#: The fields of a grid record (besides the run key); records may carry more (nu_trace, train_dice_noisy, ...).
FIELDS: tuple[str, ...] = ("alpha", "beta", "dice_mean", "dice_pooled", "nu_final", "wall_s", "machine")

METRICS: dict[str, str] = {"dice_mean": "mean of per-case Dice", "dice_pooled": "pooled Dice (the paper's metric)"}


def group_cells(runs: list[dict], metric: str) -> dict[tuple[str, str], Cell]:
    """(setting, loss) -> :class:`Cell` of ``metric`` over that cell's runs (one per seed)."""
    values: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        values.setdefault((run["setting"], run["loss"]), []).append(run[metric])
    return {key: t_interval(v) for key, v in values.items()}


def markdown_table(runs: list[dict], metric: str) -> str:
    """One Markdown table: rows = settings, columns = losses, cells = Dice x 100 as ``mean [low, high]``."""
    settings = _ordered({r["setting"] for r in runs}, SETTING_NAMES)
    losses = _ordered({r["loss"] for r in runs}, LOSS_PRIORITY)
    cells = group_cells(runs, metric)
    lines = ["| setting | " + " | ".join(losses) + " |", "|---|" + "---|" * len(losses)]
    for setting in settings:
        lines.append(f"| {setting} | " + " | ".join(format_cell(cells.get((setting, loss))) for loss in losses) + " |")
    return "\n".join(lines)


def tloss_vs_baseline(runs: list[dict], metric: str, baseline: str = "dice_ce") -> str:
    """Per setting, the paired difference T-Loss - baseline (same seeds) in Dice points with its t-interval."""
    by_key = {(r["setting"], r["loss"], r["seed"]): r[metric] for r in runs}
    settings = _ordered({r["setting"] for r in runs}, SETTING_NAMES)
    lines = [f"| setting | T-Loss - {baseline} (Dice points, paired by seed) | seeds |", "|---|---|---|"]
    for setting in settings:
        diffs = []
        for (st, loss, seed), value in by_key.items():
            other = by_key.get((setting, baseline, seed))
            if st == setting and loss == "tloss" and value is not None and other is not None:
                diffs.append(value - other)
        if diffs:
            cell = t_interval(diffs)
            lines.append(f"| {setting} | {format_cell(cell)} | {cell.n} |")
    return "\n".join(lines)


def _groups(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs split by (engine, config): numbers from different configurations are never pooled."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((str(run.get("engine")), str(run.get("config"))), []).append(run)
    return groups


def nu_summary(runs: list[dict]) -> str:
    """Final nu of the T-Loss runs per setting (median and range over seeds) and the median change of log nu
    from the first to the last traced iteration (Adam moves log nu by at most about lr per step: compare with
    nu_lr x iterations to see whether nu settled or was still travelling at full speed)."""
    lines = ["| setting | final nu (median, min-max over seeds) | median change of log nu over the run |",
             "|---|---|---|"]
    for setting in _ordered({r["setting"] for r in runs}, SETTING_NAMES):
        cell = [r for r in runs if r["setting"] == setting and r["loss"] == "tloss" and r["nu_final"] is not None]
        if cell:
            nus = [r["nu_final"] for r in cell]
            drift = [math.log(r["nu_trace"][-1][1]) - math.log(r["nu_trace"][0][1]) for r in cell if r.get("nu_trace")]
            lines.append(f"| {setting} | {np.median(nus):.3g} ({min(nus):.3g}-{max(nus):.3g}) | "
                         + (f"{np.median(drift):+.3f} |" if drift else "not traced |"))
    return "\n".join(lines)


def memorisation_table(runs: list[dict]) -> str:
    """Mean pooled Dice of the final model on the corrupted training cases, against noisy vs clean labels."""
    noisy = [r for r in runs if r.get("train_dice_noisy") is not None]
    if not noisy:
        return ""
    losses = _ordered({r["loss"] for r in noisy}, LOSS_PRIORITY)
    lines = ["| setting | " + " | ".join(losses) + " |", "|---|" + "---|" * len(losses)]
    for setting in _ordered({r["setting"] for r in noisy}, SETTING_NAMES):
        row = []
        for loss in losses:
            cell = [r for r in noisy if r["setting"] == setting and r["loss"] == loss]
            row.append("not run" if not cell else
                       f"{100 * np.mean([r['train_dice_noisy'] for r in cell]):.1f} / "
                       f"{100 * np.mean([r['train_dice_clean'] for r in cell]):.1f}")
        lines.append(f"| {setting} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_markdown(runs: list[dict], title: str, command: str, legend: dict[str, str],
                    describe: Callable[[str, str], str]) -> str:
    """The whole ``robustness.md``: per (engine, config) the two Dice tables, the paired T-Loss - Dice+CE
    differences, final nu, memorisation, and the list of cells that did not run.

    ``command`` re-makes the file, ``legend`` names the losses, ``describe`` turns (engine, config) into the
    configuration sentence."""
    out = [f"# {title}", "",
           "Dice x 100 on CLEAN test labels; each cell: mean over seeds [95 % t-interval over seeds]. "
           f"Generated by `{command}` from the results JSON; "
           "every number is a measured run. Intervals are not clipped to [0, 100]: a cell whose seeds disagree "
           "wildly (e.g. a loss that collapses to all-background on some seeds) gets an interval wider than the "
           "metric's range, which is the honest t-interval of those values.", "",
           "Losses: " + "; ".join(f"`{k}` = {v}" for k, v in legend.items()) + "."]
    for (engine, config), group in _groups(runs).items():
        seeds = sorted({r["seed"] for r in group})
        machines = sorted({r["machine"] for r in group})
        out += ["", f"## engine `{engine}`, config `{config}` ({len(group)} runs, seeds {seeds})", "",
                "Machine(s): " + "; ".join(machines) + ".", describe(engine, config),
                f"Wall time: {sum(r['wall_s'] for r in group) / 60:.1f} min in total, "
                f"median {np.median([r['wall_s'] for r in group]):.0f} s per run."]
        for metric, label in METRICS.items():
            out += ["", f"### {label} (`{metric}`)", "", markdown_table(group, metric)]
        if {"tloss", "dice_ce"} <= {r["loss"] for r in group}:
            out += ["", "### T-Loss minus nnU-Net's Dice+CE, paired by seed (`dice_pooled`)", "",
                    tloss_vs_baseline(group, "dice_pooled")]
        if any(r["loss"] == "tloss" for r in group):
            out += ["", "### T-Loss: final nu", "", nu_summary(group)]
        memo = memorisation_table(group)
        if memo:
            out += ["", "### Memorisation: pooled Dice on the corrupted training cases, vs noisy / vs clean labels",
                    "", "High 'vs noisy' with low 'vs clean' means the network learnt the corruptions.", "", memo]
        missing = _missing_cells(group)
        if missing:
            out += ["", "### Not run", "", "Cells of the grid with no finished run: " + ", ".join(missing) + "."]
    return "\n".join(out) + "\n"


def _missing_cells(runs: list[dict]) -> list[str]:
    """Grid cells without a run; an ablation configuration ('..._nulr...') is checked only for its own losses."""
    present = {(r["setting"], r["loss"]) for r in runs}
    ablation = any("_nulr" in str(r.get("config")) for r in runs)
    losses = _ordered({r["loss"] for r in runs}, LOSS_PRIORITY) if ablation else LOSS_PRIORITY
    return [f"{s}/{loss}" for s in SETTING_NAMES for loss in losses if (s, loss) not in present]


def plot(runs: list[dict], path: Path) -> None:
    """``path`` (PNG): per (engine, config) and metric, Dice against noise setting, one line per loss with
    95 % t-interval error bars (none where n < 2). Written atomically."""
    groups = _groups(runs)
    with figure(path, len(groups), len(METRICS), dpi=110, figsize=(6 * len(METRICS), 4 * len(groups)),
                squeeze=False) as (_, axes):
        _draw(axes, groups)


def _draw(axes, groups: dict[tuple[str, str], list[dict]]) -> None:
    for row, ((engine, config), group) in enumerate(groups.items()):
        settings = _ordered({r["setting"] for r in group}, SETTING_NAMES)
        losses = _ordered({r["loss"] for r in group}, LOSS_PRIORITY)
        for col, (metric, label) in enumerate(METRICS.items()):
            ax = axes[row][col]
            cells = group_cells(group, metric)
            bottom = _axis_bottom(cells)
            for i, loss in enumerate(losses):
                xs, ys, errs = [], [], []
                for j, setting in enumerate(settings):
                    cell = cells.get((setting, loss))
                    if cell is not None and cell.n:
                        xs.append(j + (i - (len(losses) - 1) / 2) * 0.06)  # small offsets: bars stay readable
                        ys.append(100 * cell.mean)
                        errs.append(0.0 if cell.half_width is None else 100 * cell.half_width)
                below = bool(ys) and max(ys) < bottom
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3,
                            label=f"{loss} (below the axis: see the table)" if below else loss)
            ax.set_xticks(range(len(settings)), settings, rotation=30)
            ax.set_xlim(-0.5, len(settings) - 0.5)
            ax.set_ylim(bottom, 100.5)
            ax.set_xlabel("noise setting (alpha, beta)")
            ax.set_ylabel(f"Dice x 100 ({metric})")
            ax.set_title(f"{engine}/{config}: {label}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)


def _axis_bottom(cells: dict[tuple[str, str], Cell]) -> float:
    """Lower y limit (Dice x 100): 3 points under the lowest cell mean of the losses that train at all (median
    cell mean >= 50), so the comparison stays readable when one loss collapses; that loss is then drawn below
    the axis and labelled so, and its numbers are in the table."""
    by_loss: dict[str, list[float]] = {}
    for (_, loss), cell in cells.items():
        if cell.n:
            by_loss.setdefault(loss, []).append(100 * cell.mean)
    working = [m for means in by_loss.values() if np.median(means) >= 50 for m in means]
    return max(0.0, min(working) - 3) if working else 0.0


def save_records(records: list[dict], out: Path) -> None:
    """Write ``records`` as the results file ``out`` (``{"runs": [...]}``)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_text(Path(out), json.dumps({"runs": records}, indent=1) + "\n")


def write_summary(runs: list[dict], out: Path, title: str, command: str, legend: dict[str, str],
                  describe: Callable[[str, str], str]) -> list[Path]:
    """Write ``<out>.md`` (:func:`render_markdown`) and ``<out>.png`` (:func:`plot`); return both paths."""
    md, png = Path(out).with_suffix(".md"), Path(out).with_suffix(".png")
    md.parent.mkdir(parents=True, exist_ok=True)
    write_text(md, render_markdown(runs, title, command, legend, describe))
    plot(runs, png)
    return [md, png]
