"""From the stock-command long-horizon runs to ``horizon_nnunet.json`` (one entry per run and checkpoint), its Markdown
report and a plot of nnU-Net's own validation curves.

Each run gives two entries: its arm with ``checkpoint_final.pth`` (``dice_ce``, ``tloss``, ``tloss_freeze``) and
with nnU-Net's ``checkpoint_best.pth`` (``dice_ce_best``, ``tloss_best``, ``tloss_freeze_best``). Statistics over
datasets, 95 % Student-t intervals, differences paired by dataset, Dice bounds [0, 1] and differences [-1, 1]
(:mod:`benchmarks.studykit.stats`). Beside them, the in-process study's difference on the same datasets
(``horizon.json`` next to the output), so that the signs can be compared. Addendum 1.2's decision: the T-Loss recipe
with the highest noisy-validation Dice inside nnU-Net (its moving average of the pseudo Dice: at the last epoch for
a final-checkpoint arm, its maximum for a ``_best`` arm), averaged over the datasets and settings, and whether it
confirms version 2's pick.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text

from .studykit.config import StudyConfig
from .studykit.plots import figure
from .studykit.stats import format_cell, over_datasets, paired

PROTOCOL = ("Protocol: [`horizon-protocol.md`](../horizon-protocol.md), addenda 1.1 and 1.2 (frozen 2026-12-03, "
            "each before its runs).")
ARM_ORDER = ("dice_ce", "dice_ce_best", "tloss", "tloss_best", "tloss_freeze", "tloss_freeze_best")
#: Addendum 1.2: the T-Loss recipes its rule compares, the one version 2 picked in process, and the default.
RECIPES = ("tloss", "tloss_best", "tloss_freeze", "tloss_freeze_best")
VERSION_2_PICK = "tloss_freeze_best"
DEFAULT_RECIPE = "tloss"
DICE, DIFF = (0.0, 1.0), (-1.0, 1.0)
BEST = "checkpoint_best.pth"


def derive(runs: list[dict]) -> list[dict]:
    """Entries ``{dataset, setting, arm, seed, final: {checkpoint, test_dice_pooled, test_dice_mean}}``."""
    entries = []
    for run in runs:
        base = {"dataset": run["dataset"], "setting": run["setting"], "seed": run["seed"], "trainer": run["trainer"]}
        entries.append({**base, "arm": run["loss"], "final": {
            "checkpoint": "checkpoint_final.pth", "test_dice_pooled": run["dice_pooled"],
            "test_dice_mean": run["dice_mean"]}})
        best = (run.get("checkpoints") or {}).get(BEST)
        if best is not None:
            entries.append({**base, "arm": f"{run['loss']}_best", "final": {
                "checkpoint": BEST, "test_dice_pooled": best["dice_pooled"], "test_dice_mean": best["dice_mean"]}})
    return entries


def validation_dice(run: dict, best: bool) -> float | None:
    """nnU-Net's moving average of the pseudo Dice on the noisy validation cases at the checkpoint the arm keeps:
    the last epoch's (``checkpoint_final.pth``) or its maximum (``checkpoint_best.pth``, the epoch it kept)."""
    ema = (run.get("nnunet_log") or {}).get("ema_fg_dice") or []
    if not ema:
        return None
    return float(max(ema) if best else ema[-1])


def decision(runs: list[dict], expected: list[tuple]) -> dict:
    """Addendum 1.2's rule: per recipe the mean validation Dice over its (dataset, setting) runs; the pick when
    every planned run of the recipes is in (``pick`` None otherwise) and whether it is version 2's pick."""
    planned = {(d, s, a) for d, s, a, _ in expected if a in {r.removesuffix("_best") for r in RECIPES}}
    done = {(r["dataset"], r["setting"], r["loss"]) for r in runs}
    scores: dict[str, float] = {}
    counts: dict[str, int] = {}
    for recipe in RECIPES:
        arm, best = recipe.removesuffix("_best"), recipe.endswith("_best")
        values = [v for r in runs if r["loss"] == arm and (v := validation_dice(r, best)) is not None]
        if values:
            scores[recipe], counts[recipe] = float(np.mean(values)), len(values)
    complete = planned <= done and len(scores) == len(RECIPES)
    pick = max(scores, key=scores.__getitem__) if complete else None
    return {"validation_dice": scores, "runs": counts, "pick": pick,
            "confirmed": None if pick is None else pick == VERSION_2_PICK}


def _decision_lines(runs: list[dict], entries: list[dict], expected: list[tuple]) -> list[str]:
    result = decision(runs, expected)
    if not result["validation_dice"]:
        return []
    settings = list(dict.fromkeys(s for _, s, _, _ in expected))
    lines = ["## Addendum 1.2: the default recipe", "",
             "Noisy-validation Dice x100 inside nnU-Net (its moving average of the pseudo Dice on the 4 validation "
             "cases: last epoch for `checkpoint_final.pth`, maximum for `checkpoint_best.pth`), mean over datasets "
             "and settings; clean-test Dice against the default (`tloss`), paired by dataset, beside it and not "
             "used to decide.", "",
             "| recipe | runs | validation Dice | " + " | ".join(f"test vs tloss pooled, {s}" for s in settings) + " |",
             "|---|---|---|" + "---|" * len(settings)]
    base = {setting: _per_dataset(entries, setting, DEFAULT_RECIPE, "test_dice_pooled") for setting in settings}
    for recipe in RECIPES:
        if recipe not in result["validation_dice"]:
            continue
        cells = []
        for setting in settings:
            own = _per_dataset(entries, setting, recipe, "test_dice_pooled")
            cells.append("-" if recipe == DEFAULT_RECIPE or not own or not base[setting]
                         else format_cell(paired(own, base[setting], bounds=DIFF)))
        lines.append(f"| {recipe} | {result['runs'][recipe]} | {100 * result['validation_dice'][recipe]:.1f} | "
                     + " | ".join(cells) + " |")
    if result["pick"] is None:
        lines += ["", "No pick while planned runs of these recipes are missing."]
    else:
        verdict = ("confirms version 2's pick: `nnUNetTrainerTLoss_freeze` with `checkpoint_best.pth` becomes the "
                   "default recipe" if result["confirmed"] else
                   f"does not confirm version 2's pick (`{VERSION_2_PICK}`): the default stays `nnUNetTrainerTLoss` "
                   "with `checkpoint_final.pth`")
        lines += ["", f"The rule picks **{result['pick']}**, which {verdict}."]
    return [*lines, ""]


def _per_dataset(entries: list[dict], setting: str, arm: str, field: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for e in entries:
        if e["setting"] == setting and e["arm"] == arm:
            values.setdefault(e["dataset"], []).append(e["final"][field])
    return {dataset: float(np.mean(v)) for dataset, v in values.items()}


def _inprocess_rows(summary: Path) -> list[dict]:
    """The in-process study's entries (``horizon.json`` beside the output), read once; [] when it is absent."""
    return json.loads(summary.read_text())["runs"] if summary.exists() else []


def _inprocess(rows: list[dict], setting: str, arm: str, datasets: set[str]) -> dict[str, float]:
    """The in-process study's pooled clean-test Dice of ``arm`` per dataset (only ``datasets``)."""
    return {r["dataset"]: r["final"]["test_dice_pooled"] for r in rows
            if r["setting"] == setting and r["arm"] == arm and r["dataset"] in datasets}


def _setting_table(entries: list[dict], setting: str, inprocess: list[dict]) -> list[str]:
    lines = [f"## {setting}", "",
             "| arm | datasets | test Dice pooled | test Dice mean per case | vs dice_ce pooled | vs dice_ce mean "
             "| vs dice_ce_best pooled | vs dice_ce_best mean | in-process study, same datasets: vs dice_ce pooled |",
             "|---|---|---|---|---|---|---|---|---|"]
    arms = [a for a in ARM_ORDER if any(e["setting"] == setting and e["arm"] == a for e in entries)]
    for arm in arms:
        pooled = _per_dataset(entries, setting, arm, "test_dice_pooled")
        mean = _per_dataset(entries, setting, arm, "test_dice_mean")
        cells = [str(len(pooled)), format_cell(over_datasets({k: [v] for k, v in pooled.items()}, bounds=DICE)),
                 format_cell(over_datasets({k: [v] for k, v in mean.items()}, bounds=DICE))]
        for reference in ("dice_ce", "dice_ce_best"):
            for field, values in (("test_dice_pooled", pooled), ("test_dice_mean", mean)):
                other = _per_dataset(entries, setting, reference, field)
                cells.append("-" if arm == reference or not other else
                             format_cell(paired(values, other, bounds=DIFF)))
        own = _inprocess(inprocess, setting, arm, set(pooled))
        base = _inprocess(inprocess, setting, "dice_ce", set(pooled))
        cells.append("-" if arm == "dice_ce" or not own or not base else format_cell(paired(own, base, bounds=DIFF)))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(runs: list[dict], entries: list[dict], config: StudyConfig, expected: list[tuple],
             inprocess_summary: Path, plot_name: str) -> str:
    inprocess = _inprocess_rows(inprocess_summary)
    done = {(r["dataset"], r["setting"], r["loss"], r["seed"]) for r in runs}
    missing = [key for key in expected if key not in done]
    wall = [r["wall_s"] for r in runs if not r.get("model_reused")]
    lines = ["# The long-horizon check inside nnU-Net (stock commands)", "", PROTOCOL, "",
             f"Configuration `{config.name}`: `nnUNetv2_train` for {config.iterations} iterations "
             f"({config.iterations // config.iterations_per_epoch} epochs of {config.iterations_per_epoch}), batch "
             f"{config.batch_size}, encoder widths {list(config.features)}, nnU-Net's full augmentation; fold 0 = 16 "
             "training and 4 noisy validation cases. Clean-test Dice x100 from `nnUNetv2_evaluate_folder`, mean over "
             "datasets [95 % t-interval over datasets]; differences paired by dataset, in Dice points. nnU-Net does "
             "not seed its training: one run per dataset and arm.", "",
             f"Measured cost: median {np.median(wall):.0f} s per run ({len(wall)} runs, one process each)."
             if wall else "", ""]
    if missing:
        lines += [f"**Partial results**: {len(runs)} of {len(expected)} planned runs are in; missing: "
                  + ", ".join(f"{s} {a} {d}" for d, s, a, _ in missing), ""]
    for setting in dict.fromkeys(s for _, s, _, _ in expected):
        if any(e["setting"] == setting for e in entries):
            lines += _setting_table(entries, setting, inprocess)
    lines += _decision_lines(runs, entries, expected)
    lines += [f"![nnU-Net's validation pseudo Dice]({plot_name})", ""]
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> Path:
    """nnU-Net's moving average of the validation pseudo Dice (noisy labels) per epoch, per setting and arm."""
    settings = list(dict.fromkeys(r["setting"] for r in runs))
    with figure(path, 1, len(settings), figsize=(6 * len(settings), 4), squeeze=False) as (_, axes):
        for ax, setting in zip(axes[0], settings):
            for arm in sorted({r["loss"] for r in runs if r["setting"] == setting}):
                curves = [r["nnunet_log"]["ema_fg_dice"] for r in runs
                          if r["setting"] == setting and r["loss"] == arm and r.get("nnunet_log")]
                if not curves:
                    continue
                length = min(len(c) for c in curves)
                data = np.array([c[:length] for c in curves])
                line, = ax.plot(np.arange(1, length + 1), data.mean(0), label=f"{arm} ({len(curves)})")
                ax.fill_between(np.arange(1, length + 1), data.min(0), data.max(0), color=line.get_color(), alpha=0.2)
            ax.set_title(f"{setting}: nnU-Net's EMA pseudo Dice (noisy validation)")
            ax.set_xlabel("epoch")
            ax.legend()
    return path


def write_summary(runs: list[dict], out: Path, config: StudyConfig, expected: list[tuple]) -> list[Path]:
    """Write ``out`` (horizon_nnunet.json), its ``.md`` and ``<out stem>.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = derive(runs)
    write_text(out, json.dumps({"runs": entries}, indent=1) + "\n")
    write_text(out.with_suffix(".md"), markdown(runs, entries, config, expected, out.with_name("horizon.json"),
                                                 out.with_suffix(".png").name))
    return [out, out.with_suffix(".md"), plot(runs, out.with_suffix(".png"))]
