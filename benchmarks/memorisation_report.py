"""From memorisation runs to the Markdown report (paired differences, onsets) and the M(t) / test-Dice(t) plots.

Intervals: for n paired seeds the 95 % Student-t interval of the per-seed differences (arm - dice_ce)
(:mod:`benchmarks.studykit.stats`). Onset: the first logged iteration with M > 0 (None: never). The check inside
nnU-Net (unseeded repetitions) compares its arms unpaired, with Welch's interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text

from .studykit.arms import ARMS
from .studykit.config import StudyConfig
from .studykit.grid import SETTINGS, ordered
from .studykit.plots import figure
from .studykit.stats import format_cell, t_interval, welch

BASELINE = "dice_ce"


def _by(runs: list[dict]) -> dict[tuple[str, str, int], dict]:
    return {(r["setting"], r["loss"], r["seed"]): r for r in runs}


def _onset_text(onsets: list[int | None]) -> str:
    never = sum(o is None for o in onsets)
    seen = sorted(o for o in onsets if o is not None)
    median = f"median {int(np.median(seen))}" if seen else "never"
    listed = ", ".join(str(o) for o in onsets)
    return f"{median}" + (f", never in {never}/{len(onsets)}" if never else "") + f" ({listed})"


def sustained_onset(curve: list[list]) -> int | None:
    """First logged iteration from which M stays > 0 to the end of the run (None: M ends <= 0 or is undefined).

    The JSON's ``onset`` (first M > 0) also counts a blip of +0.001 while the network still predicts almost
    nothing; this one marks when the corruption is reproduced for good."""
    onset = None
    for iteration, memorisation, *_ in curve:
        if memorisation is None or memorisation <= 0:
            onset = None
        elif onset is None:
            onset = iteration
    return onset


def lr_factor(run: dict, configs: dict[str, StudyConfig]) -> float:
    """Final network lr over what the poly schedule alone would give: < 1 when the nu-plateau rule dropped it."""
    per_epoch = configs[run["config"]].iterations_per_epoch
    log, epochs = run["log"], run["iterations"] // per_epoch

    def poly(iteration: int) -> float:
        return (1 - ((iteration - 1) // per_epoch) / epochs) ** 0.9

    return (log[-1]["lr"] / poly(log[-1]["iteration"])) / (log[0]["lr"] / poly(log[0]["iteration"]))


def markdown_table(runs: list[dict], configs: dict[str, StudyConfig]) -> str:
    """Per setting and arm: final clean-test Dice, its paired difference to Dice+CE, peak test Dice, final M,
    onsets of memorisation, final nu and the nu-plateau rule's lr factor."""
    by = _by(runs)
    lines = ["| setting | arm | seeds | final test Dice | vs dice_ce, paired (Dice points) | best logged test Dice "
             "| final M | first M > 0 (iteration) | M > 0 from then on | final nu | lr drops |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for setting in ordered({r["setting"] for r in runs}, SETTINGS):
        for arm in ordered({r["loss"] for r in runs if r["setting"] == setting}, tuple(ARMS)):
            cell = [r for r in runs if r["setting"] == setting and r["loss"] == arm]
            seeds = sorted(r["seed"] for r in cell)
            final = t_interval([r["test_dice_final"] for r in cell])
            diffs = [by[(setting, arm, s)]["test_dice_final"] - by[(setting, BASELINE, s)]["test_dice_final"]
                     for s in seeds if (setting, BASELINE, s) in by]
            paired = "-" if arm == BASELINE else (format_cell(t_interval(diffs)) if diffs else "no paired seed")
            peak = t_interval([max(point[2] for point in r["curve"]) for r in cell])
            memo = [r["memorisation_final"] for r in cell if r["memorisation_final"] is not None]
            memo_text = format_cell(t_interval(memo)) if memo else "no corrupted case"
            nus = [r["nu_final"] for r in cell if r["nu_final"] is not None]
            nu_text = f"{np.median(nus):.3g}" if nus else "-"
            onset = _onset_text([r["onset"] for r in cell]) if memo else "-"
            sustained = _onset_text([sustained_onset(r["curve"]) for r in cell]) if memo else "-"
            dropped = sum(lr_factor(r, configs) < 0.99 for r in cell)
            lines.append(f"| {setting} | {arm} | {len(cell)} | {format_cell(final)} | {paired} | "
                         f"{format_cell(peak)} | {memo_text} | {onset} | {sustained} | {nu_text} | "
                         f"{dropped}/{len(cell)} runs |")
    return "\n".join(lines)


def weights_table(runs: list[dict]) -> str:
    """T-Loss arms: mean per-image weight of corrupted vs clean training cases and their ratio, at the first
    log point, at the onset of memorisation of Dice+CE and at the end (median over seeds)."""
    lines = ["| setting | arm | weight corrupted / clean (first log) | (middle) | (end) "
             "| MSE corrupted / clean (end) |",
             "|---|---|---|---|---|---|"]
    for setting in ordered({r["setting"] for r in runs}, SETTINGS):
        for arm in ordered({r["loss"] for r in runs if r["setting"] == setting}, tuple(ARMS)):
            cell = [r for r in runs if r["setting"] == setting and r["loss"] == arm
                    and r["log"][-1].get("weight_corrupted") is not None]
            if not cell:
                continue
            texts = []
            for pick in (lambda log: log[0], lambda log: log[len(log) // 2], lambda log: log[-1]):
                ratios = [pick(r["log"])["weight_corrupted"] / pick(r["log"])["weight_clean"] for r in cell]
                texts.append(f"{np.median(ratios):.2f}")
            mse = [r["log"][-1]["mse_corrupted"] / r["log"][-1]["mse_clean"] for r in cell]
            lines.append(f"| {setting} | {arm} | " + " | ".join(texts) + f" | {np.median(mse):.2f} |")
    return "\n".join(lines)


def render_markdown(runs: list[dict], plot_names: list[str], configs: dict[str, StudyConfig]) -> str:
    first = runs[0]
    names = sorted({str(r.get("config")) for r in runs})
    wall = sum(r["wall_s"] for r in runs)
    text = [
        "# Memorisation study",
        "",
        f"Generated by `python -m benchmarks.memorisation --summarize` from {len(runs)} runs "
        f"(config {', '.join(names)}, {first['iterations']} iterations each, engine {first['engine']}; "
        f"{wall / 3600:.1f} CPU-hours of training on {first['machine']}).",
        "",
        "M = Dice(prediction, noisy mask) - Dice(prediction, clean mask) over the corrupted training cases: "
        "M > 0 means the network reproduces the corruption (memorisation). Test Dice: pooled over the clean "
        "test labels. Intervals: 95 % Student-t over seeds; paired differences use the same seed "
        "(same initialisation and batches) of both arms.",
        "",
        markdown_table(runs, configs),
        "",
        "Per-image T-Loss weights (nu + D) / (nu + S_b), corrupted vs clean training cases (median ratio over seeds):",
        "",
        weights_table(runs),
        "",
    ]
    text += [f"![{name}]({name})" for name in plot_names]
    return "\n".join(text) + "\n"


def plot_curves(runs: list[dict], setting: str, path: Path) -> None:
    """Two panels for one setting: M(t) and clean-test Dice(t), mean over seeds per arm with a min-max band."""
    with figure(path, 1, 2, figsize=(12, 4.2)) as (fig, axes):
        _draw_curves(fig, axes, runs, setting)


def _draw_curves(fig, axes, runs: list[dict], setting: str) -> None:
    cell_runs = [r for r in runs if r["setting"] == setting]
    for arm in ordered({r["loss"] for r in cell_runs}, tuple(ARMS)):
        curves = [np.array(r["curve"], dtype=float) for r in cell_runs if r["loss"] == arm]
        length = min(len(c) for c in curves)
        stack = np.stack([c[:length] for c in curves])
        iterations = stack[0, :, 0]
        for ax, column in ((axes[0], 1), (axes[1], 2)):
            values = stack[:, :, column]
            if np.isnan(values).all():
                continue
            line, = ax.plot(iterations, np.nanmean(values, 0), label=f"{arm} (n={len(curves)})")
            ax.fill_between(iterations, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.15)
    axes[0].axhline(0, color="black", lw=0.8)
    axes[0].set_ylabel("M = Dice(noisy) - Dice(clean), corrupted training cases")
    axes[1].set_ylabel("clean-test Dice (pooled)")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no corrupted training case", transform=ax.transAxes, ha="center")
    fig.suptitle(f"{setting}: mean over seeds, band = min-max")


def write_summary(runs: list[dict], out: Path, configs: dict[str, StudyConfig]) -> list[Path]:
    """Write ``<out>.md`` and one ``<out>_<setting>.png`` per setting; return their paths."""
    out = Path(out)
    written = []
    for setting in ordered({r["setting"] for r in runs}, SETTINGS):
        png = out.with_name(f"{out.stem}_{setting}.png")
        plot_curves(runs, setting, png)
        written.append(png)
    md = out.with_suffix(".md")
    write_text(md, render_markdown(runs, [p.name for p in written], configs))
    return [md, *written]


def check_table(runs: list[dict]) -> str:
    """nnU-Net check: pooled clean-test Dice per setting and arm, and T-Loss - Dice+CE (unpaired, Welch)."""
    lines = ["| setting | dice_ce (pooled Dice) | tloss (pooled Dice) | tloss - dice_ce (Welch 95 %) "
             "| final nu (tloss) |",
             "|---|---|---|---|---|"]
    for setting in ordered({r["setting"] for r in runs}, SETTINGS):
        values = {arm: [r["dice_pooled"] for r in runs if r["setting"] == setting and r["loss"] == arm]
                  for arm in ("dice_ce", "tloss")}
        cells = [format_cell(t_interval(values[arm])) if values[arm] else "not run" for arm in ("dice_ce", "tloss")]
        if values["dice_ce"] and values["tloss"]:
            diff, half = welch(values["tloss"], values["dice_ce"])
            delta = f"{100 * diff:+.1f}"
            if half is not None:
                delta += f" [{100 * (diff - half):+.1f}, {100 * (diff + half):+.1f}]"
        else:
            delta = "-"
        nus = [r["nu_final"] for r in runs if r["setting"] == setting and r["loss"] == "tloss" and r["nu_final"]]
        lines.append(f"| {setting} | {cells[0]} | {cells[1]} | {delta} | "
                     + (f"{np.median(nus):.3g} |" if nus else "- |"))
    return "\n".join(lines)


def write_check_summary(runs: list[dict], out: Path) -> list[Path]:
    """Write ``<out>.md`` for the nnU-Net check and return its path in a list."""
    wall = sum(r["wall_s"] for r in runs)
    trainers = {arm: ", ".join(sorted({r["trainer"] for r in runs if r["loss"] == arm}))
                for arm in ("dice_ce", "tloss")}
    md = Path(out).with_suffix(".md")
    write_text(md, "\n".join([
        "# Memorisation study: the check inside nnU-Net",
        "",
        f"{len(runs)} runs of the stock commands (plan, `nnUNetv2_train`, predict, `nnUNetv2_evaluate_folder`), "
        f"trainers `{trainers['dice_ce']}` (Dice+CE) and `{trainers['tloss']}` (the default "
        f"T-Loss), {runs[0]['iterations']} iterations each, {wall / 3600:.1f} hours in all on {runs[0]['machine']}. "
        "nnU-Net does not seed its training: repetitions are independent, the difference is unpaired.",
        "",
        check_table(runs),
        "",
    ]))
    return [md]
