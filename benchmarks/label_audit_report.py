"""Tables and a plot of the label-audit evaluation: how well each score finds the corrupted training cases.

AUROC: the probability that a random corrupted case scores as more suspect than a random clean one (Mann-Whitney,
ties count half). Precision@k: the share of corrupted cases among the k most suspect, k = the number of corrupted
cases (so precision = recall there). Per noise kind: AUROC of the cases of that kind against the clean cases.
Intervals: 95 % Student-t over seeds; tloss - dice_ce differences are paired by seed (same data split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from tloss_nnunet.atomic import write_text
from tloss_nnunet.audit.scores import SCORE_NAMES, suspicion

from .studykit.plots import figure
from .studykit.stats import format_cell, t_interval

ARM_ORDER = ("tloss", "dice_ce")
KINDS = ("dilate", "erode", "affine")


def auroc(suspicion: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``suspicion`` (larger = more suspect) for the ``positive`` cases; NaN when
    either class is empty."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(suspicion)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_k(suspicion: np.ndarray, positive: np.ndarray, k: int | None = None) -> float:
    """Share of positives among the ``k`` largest suspicions (default k = number of positives; stable order)."""
    positive = np.asarray(positive, bool)
    k = int(positive.sum()) if k is None else k
    if k == 0:
        return float("nan")
    top = np.argsort(-np.asarray(suspicion), kind="stable")[:k]
    return float(positive[top].mean())


def _suspicion(cases: list[dict], score: str) -> np.ndarray:
    """The library's orientation of ``score`` (larger = more suspect) for every case record."""
    return np.array([suspicion(c, score) for c in cases], dtype=float)


def run_metrics(run: dict) -> dict[str, dict[str, float]]:
    """score -> {"auroc", "precision_at_k", "auroc_<kind>"...} for one run (scores the arm has)."""
    cases = run["cases"]
    corrupted = np.array([c["corrupted"] for c in cases])
    out = {}
    for score in SCORE_NAMES:
        values = _suspicion(cases, score)
        if np.isnan(values).any():
            continue
        metrics = {"auroc": auroc(values, corrupted), "precision_at_k": precision_at_k(values, corrupted)}
        for kind in KINDS:
            keep = np.array([c["kind"] in (kind, "clean") for c in cases])
            metrics[f"auroc_{kind}"] = auroc(values[keep], corrupted[keep])
            metrics[f"n_{kind}"] = int(sum(c["kind"] == kind for c in cases))
        out[score] = metrics
    return out


def _cells(runs: list[dict]) -> dict[tuple[str, str, str], dict[str, list[float]]]:
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for run in runs:
        for score, metrics in run_metrics(run).items():
            cell = cells.setdefault((run["setting"], run["loss"], score), {})
            for name, value in metrics.items():
                cell.setdefault(name, []).append(value)
    return cells


def _two(values: list[float]) -> str:
    cell = t_interval(values)
    return "-" if cell.n == 0 else format_cell(cell, scale=1.0, digits=2)


def _settings(runs: list[dict]) -> list[str]:
    return sorted({r["setting"] for r in runs}, key=lambda s: (s != "clean", s))


def markdown(runs: list[dict]) -> str:
    """The whole report: per setting, arm and score the AUROC and precision@k; per noise kind; paired tloss -
    dice_ce difference of their default scores."""
    cells = _cells(runs)
    arms = [a for a in ARM_ORDER if any(r["loss"] == a for r in runs)]
    lines = ["# Label audit evaluation", "", __doc__.split("\n\n", 1)[1].strip(), "",
             f"{len(runs)} runs; per run {runs[0]['folds']}-fold cross-fitting of {runs[0]['n_train']} training "
             f"cases, {runs[0]['iterations']} iterations per model (config `{runs[0]['config']}`).", "",
             "| setting | arm | score | seeds | corrupted cases | AUROC | precision@k |",
             "|---|---|---|---|---|---|---|"]
    for setting in _settings(runs):
        for arm in arms:
            n_bad = [r["n_corrupted"] for r in runs if r["setting"] == setting and r["loss"] == arm]
            for score in SCORE_NAMES:
                cell = cells.get((setting, arm, score))
                if cell:
                    lines.append(f"| {setting} | {arm} | {score} | {len(cell['auroc'])} | {int(np.mean(n_bad))} | "
                                 f"{_two(cell['auroc'])} | {_two(cell['precision_at_k'])} |")
    lines += ["", "Per noise kind: AUROC of that kind's cases against the clean cases (score: `tloss_nll` for the "
              "T-Loss models, `mse` for Dice+CE); n = cases of that kind per run.", "",
              "| setting | arm | " + " | ".join(f"{k} (n)" for k in KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for setting in _settings(runs):
        for arm in arms:
            cell = cells.get((setting, arm, "tloss_nll" if arm == "tloss" else "mse"))
            if cell:
                kinds = [f"{_two(cell[f'auroc_{k}'])} ({np.mean(cell[f'n_{k}']):.0f})" for k in KINDS]
                lines.append(f"| {setting} | {arm} | " + " | ".join(kinds) + " |")
    lines += ["", "Paired by seed, AUROC of the T-Loss model's `tloss_nll` minus the Dice+CE model's `mse`:", ""]
    for setting in _settings(runs):
        by = {(r["loss"], r["seed"]): run_metrics(r) for r in runs if r["setting"] == setting}
        diffs = [by[("tloss", s)]["tloss_nll"]["auroc"] - by[("dice_ce", s)]["mse"]["auroc"]
                 for (arm, s) in by if arm == "tloss" and ("dice_ce", s) in by]
        if diffs:
            lines.append(f"- {setting}: {_two(diffs)} ({len(diffs)} seeds)")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    """AUROC per setting, one bar per (arm, score), error bars = 95 % intervals over seeds."""
    cells = _cells(runs)
    settings = _settings(runs)
    series = [(arm, score) for arm in ARM_ORDER for score in SCORE_NAMES
              if any((s, arm, score) in cells for s in settings)]
    with figure(path, figsize=(max(6, 2.2 * len(settings)), 4)) as (_, ax):
        _draw(ax, cells, settings, series)


def _draw(ax, cells: dict, settings: list[str], series: list[tuple[str, str]]) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (arm, score) in enumerate(series):
        stats_ = [t_interval(cells.get((s, arm, score), {}).get("auroc", [])) for s in settings]
        x = np.arange(len(settings)) + (i - (len(series) - 1) / 2) * width
        ax.bar(x, [c.mean for c in stats_], width, yerr=[c.half_width or 0 for c in stats_], capsize=3,
               label=f"{arm}: {score}")
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(settings)), settings)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("AUROC (corrupted vs clean training cases)")
    ax.legend(fontsize=7, ncol=2, loc="lower left")


def write_summary(runs: list[dict], out: Path) -> list[Path]:
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    write_text(md, markdown(runs))
    plot(runs, png)
    return [md, png]
