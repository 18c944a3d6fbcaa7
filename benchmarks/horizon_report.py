"""From the long-horizon study's runs to ``horizon.json`` (one entry per run and checkpoint rule), its Markdown
report and one plot per setting.

Every trained run gives the entries of the arms its rules keep (``studykit/selection.py``): ``dice_ce`` /
``dice_ce_best`` / ``dice_ce_elr``, the same for ``tloss``, and the GCE runs ``gce_q04`` / ``gce_q07`` (their last
checkpoint) from which ``gce`` takes, per setting, the q whose final validation Dice averaged over datasets is
higher. Statistics are over datasets (a dataset's seeds averaged first), 95 % Student-t intervals, differences
paired by dataset; Dice bounds [0, 1], differences [-1, 1] (:mod:`benchmarks.studykit.stats`). Missing runs are
listed and everything computable from the others is reported.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text

from .studykit.config import StudyConfig
from .studykit.grid import SETTINGS, ordered
from .studykit.plots import figure
from .studykit.selection import RULES, select
from .studykit.stats import format_cell, over_datasets, paired

#: The trained arms of version 2 (``horizon.VARIANT_ARMS``, which --variants plans): their runs make the report
#: cite version 2.
VERSION_2_ARMS = ("tloss_freeze",)
PROTOCOL = ("Protocol: [`horizon-protocol.md`](../horizon-protocol.md), version 1 (frozen 2026-12-03, "
            "before any of its runs).")
PROTOCOL_V2 = ("Protocol: [`horizon-protocol.md`](../horizon-protocol.md), version 1 and version 2 (the recipes "
               "added later: " + ", ".join(f"`{a}`" for a in VERSION_2_ARMS) + "), each frozen 2026-12-03 before "
               "its runs.")
HEADLINE = ("a0.7b0.7", "a0.5b0.7")
GCE_TRAINED = {"gce_q04": "gce_q04", "gce": "gce_q07"}  # trained arm -> reported name
GCE_Q = {"gce_q04": 0.4, "gce_q07": 0.7}
#: The T-Loss recipes the decision compares: version 1's, then the variants a later version adds
#: (``horizon.VARIANT_ARMS``: the trained arm and its checkpoint_best rule).
TLOSS_RECIPES = ("tloss", "tloss_best", "tloss_elr", "tloss_freeze", "tloss_freeze_best")
ARM_ORDER = ("dice_ce", "dice_ce_best", "dice_ce_elr", "tloss", "tloss_best", "tloss_elr", "tloss_freeze",
             "tloss_freeze_best", "tloss_freeze_elr", "gce", "gce_q04", "gce_q07")
MEMORISING = 0.01  # a rise of M over the last 500 iterations above this: "still memorising"
DICE, DIFF = (0.0, 1.0), (-1.0, 1.0)


def _entry(run: dict, arm: str, rule: str, index: int) -> dict:
    log = run["log"]
    kept = log[index]
    return {"dataset": run["dataset"], "setting": run["setting"], "arm": arm, "seed": run["seed"],
            "trained_arm": run["loss"], "rule": rule,
            "curve": [[e["iteration"], e["test_dice"], e["test_dice_mean"], e.get("val_dice_noisy")] for e in log],
            "final": {"iteration": kept["iteration"], "test_dice_pooled": kept["test_dice"],
                      "test_dice_mean": kept["test_dice_mean"], "val_dice_noisy": kept.get("val_dice_noisy")}}


def derive(runs: list[dict], config: StudyConfig) -> tuple[list[dict], dict[str, str]]:
    """The horizon.json entries of ``runs`` and, per setting, the note on GCE's q (which q, on how many datasets)."""
    entries: list[dict] = []
    for run in runs:
        if run["loss"] in GCE_TRAINED:
            entries.append(_entry(run, GCE_TRAINED[run["loss"]], "last", len(run["log"]) - 1))
            continue
        for rule, suffix in RULES.items():
            try:
                index = select(rule, run["log"], config.iterations_per_epoch)
            except ValueError:  # no validation Dice in this run: the best rule cannot be applied
                continue
            entries.append(_entry(run, run["loss"] + suffix, rule, index))
    notes: dict[str, str] = {}
    for setting in ordered({e["setting"] for e in entries}, SETTINGS):
        val = {name: _per_dataset(entries, setting, name, "val_dice_noisy") for name in GCE_Q}
        both = set(val["gce_q04"]) & set(val["gce_q07"])
        if not any(val.values()):
            continue
        common = both or set(val["gce_q04"]) | set(val["gce_q07"])
        means = {name: float(np.mean([v[d] for d in common if d in v])) for name, v in val.items()
                 if any(d in v for d in common)}
        chosen = max(means, key=lambda name: (means[name], -GCE_Q[name]))
        notes[setting] = (f"q = {GCE_Q[chosen]:g} (validation Dice " + ", ".join(
            f"q {GCE_Q[n]:g}: {100 * m:.1f}" for n, m in sorted(means.items())) + f"; {len(common)} dataset(s)"
            + ("" if both else ", not every q ran: chosen among those that did") + ")")
        entries += [{**e, "arm": "gce", "q": GCE_Q[chosen]} for e in entries
                    if e["setting"] == setting and e["arm"] == chosen]
    return entries, notes


def _per_dataset(entries: list[dict], setting: str, arm: str, field: str) -> dict[str, float]:
    """Dataset -> the mean over its seeds of ``final[field]`` (datasets without a value left out)."""
    seeds: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        if e["setting"] == setting and e["arm"] == arm and e["final"].get(field) is not None:
            seeds[e["dataset"]].append(e["final"][field])
    return {d: float(np.mean(v)) for d, v in seeds.items()}


def _at(run: dict, iteration: int) -> dict:
    """The log point of ``run`` closest to ``iteration``."""
    return min(run["log"], key=lambda e: abs(e["iteration"] - iteration))


def _name(arm: str) -> str:
    """The reported name of a trained arm (the GCE runs by their q; ``gce`` is the q chosen on validation)."""
    return GCE_TRAINED.get(arm, arm)


def _missing_text(runs: list[dict], expected: list[tuple]) -> list[str]:
    have = {(r["dataset"], r["setting"], r["loss"], r["seed"]) for r in runs}
    missing = [key for key in expected if key not in have]
    if not missing:
        return [f"All {len(expected)} planned runs are in.", ""]
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dataset, setting, arm, seed in missing:
        groups[(setting, arm)].append(f"{dataset}/{seed}")
    lines = [f"**Partial results**: {len(expected) - len(missing)} of {len(expected)} planned runs are in; "
             "missing (dataset/seed):", ""]
    lines += [f"- {setting} {arm}: {', '.join(keys)}" for (setting, arm), keys in groups.items()]
    return lines + [""]


def _setting_table(entries: list[dict], setting: str) -> list[str]:
    lines = ["| arm | datasets | test Dice pooled | test Dice mean per case | vs dice_ce pooled | vs dice_ce mean "
             "| vs dice_ce_best pooled | vs dice_ce_best mean |", "|---|---|---|---|---|---|---|---|"]
    arms = ordered({e["arm"] for e in entries if e["setting"] == setting}, ARM_ORDER)
    views = ("test_dice_pooled", "test_dice_mean")
    values = {(arm, v): _per_dataset(entries, setting, arm, v) for arm in arms for v in views}
    for arm in arms:
        cells = [format_cell(over_datasets({d: [x] for d, x in values[(arm, v)].items()}, bounds=DICE))
                 for v in views]
        for base in ("dice_ce", "dice_ce_best"):
            for v in views:
                if arm == base or (base, v) not in values:
                    cells.append("-")
                else:
                    cells.append(format_cell(paired(values[(arm, v)], values[(base, v)], bounds=DIFF)))
        lines.append(f"| {arm} | {len(values[(arm, views[0])])} | " + " | ".join(cells) + " |")
    return lines


def _memorising_table(runs: list[dict]) -> list[str]:
    lines = ["| setting | arm | datasets | median rise of M over the last 500 iterations | verdict |",
             "|---|---|---|---|---|"]
    for setting in ordered({r["setting"] for r in runs if r["setting"] != "clean"}, SETTINGS):
        for arm in sorted({r["loss"] for r in runs if r["setting"] == setting}, key=_name):
            rises = [r["log"][-1]["memorisation"] - _at(r, r["log"][-1]["iteration"] - 500)["memorisation"]
                     for r in runs if r["setting"] == setting and r["loss"] == arm
                     and r["log"][-1]["memorisation"] is not None
                     and _at(r, r["log"][-1]["iteration"] - 500)["memorisation"] is not None]
            if not rises:
                continue
            rise = float(np.median(rises))
            verdict = "still memorising" if rise > MEMORISING else "finished"
            lines.append(f"| {setting} | {_name(arm)} | {len(rises)} | {rise:+.3f} | {verdict} |")
    return lines


def _test_dice_at(runs: list[dict], setting: str, arm: str, iteration: int | None) -> dict[str, float]:
    """Dataset -> pooled test Dice of ``arm`` at the log point nearest ``iteration`` (None: the last), seeds
    averaged."""
    seeds: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        if r["setting"] == setting and r["loss"] == arm:
            point = r["log"][-1] if iteration is None else _at(r, iteration)
            seeds[r["dataset"]].append(point["test_dice"])
    return {d: float(np.mean(v)) for d, v in seeds.items()}


def _gain_table(runs: list[dict], early: int = 800) -> list[str]:
    lines = [f"| setting | arm | datasets | vs dice_ce at iteration ~{early} | vs dice_ce at the end |",
             "|---|---|---|---|---|"]
    for setting in ordered({r["setting"] for r in runs}, SETTINGS):
        for arm in sorted({r["loss"] for r in runs if r["setting"] == setting} - {"dice_ce"}, key=_name):
            cells = [paired(_test_dice_at(runs, setting, arm, at), _test_dice_at(runs, setting, "dice_ce", at),
                            bounds=DIFF) for at in (early, None)]
            lines.append(f"| {setting} | {_name(arm)} | {cells[1].n} | {format_cell(cells[0])} | "
                         f"{format_cell(cells[1])} |")
    return lines


def _decision(entries: list[dict]) -> list[str]:
    lines = ["| recipe | " + " | ".join(f"validation Dice {s}" for s in HEADLINE) + " | mean (decides) | "
             + " | ".join(f"test Dice {s} (not used)" for s in HEADLINE) + " |", "|---|" + "---|" * 5]
    means: dict[str, float] = {}
    covered: dict[str, tuple[frozenset, ...]] = {}  # recipe -> its datasets per headline setting
    for recipe in TLOSS_RECIPES:
        val = [_per_dataset(entries, s, recipe, "val_dice_noisy") for s in HEADLINE]
        covered[recipe] = tuple(frozenset(v) for v in val)
        test = [_per_dataset(entries, s, recipe, "test_dice_pooled") for s in HEADLINE]
        if not any(val):
            continue
        per_setting = [float(np.mean(list(v.values()))) if v else None for v in val]
        means[recipe] = float(np.mean([m for m in per_setting if m is not None]))
        cells = [f"{100 * m:.1f} (n={len(v)})" if m is not None else "not run" for m, v in zip(per_setting, val)]
        cells.append(f"{100 * means[recipe]:.1f}")
        cells += [f"{100 * np.mean(list(t.values())):.1f} (n={len(t)})" if t else "not run" for t in test]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    if not means:
        return ["No T-Loss run on the headline settings yet: no decision."]
    shared = {covered[r] for r in means}
    if len(shared) > 1:  # means over different datasets are not comparable: the rule waits for the runs
        short = [r for r in means if any(len(c) < max(len(covered[o][i]) for o in means)
                                         for i, c in enumerate(covered[r]))]
        return lines + ["", "No decision yet: the recipes do not have the same datasets in both headline settings "
                        f"(fewer: {', '.join(short)})."]
    winner = max(means, key=lambda r: (means[r], -TLOSS_RECIPES.index(r)))
    return lines + ["", f"Winner by the protocol's rule: **{winner}**."]


def markdown(runs: list[dict], entries: list[dict], notes: dict[str, str], config: StudyConfig,
             expected: list[tuple]) -> str:
    """The report: missing runs, per-setting tables, memorisation check, gain at ~800 vs the end, decision."""
    datasets = sorted({r["dataset"] for r in runs})
    protocol = PROTOCOL_V2 if any(r["loss"] in VERSION_2_ARMS for r in runs) else PROTOCOL
    lines = ["# The long-horizon study", "", protocol, "",
             f"Configuration `{config.name}`: {config.iterations} iterations, datasets {', '.join(datasets)}. "
             "Clean-test Dice x100, mean over datasets [95 % t-interval over datasets]; differences paired by "
             "dataset, in Dice points.", ""]
    walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
    if walls:
        lines += [f"Measured cost: median {np.median(walls):.0f} s per run ({len(walls)} runs, one thread each).", ""]
    lines += _missing_text(runs, expected)
    for setting in ordered({e["setting"] for e in entries}, SETTINGS):
        lines += [f"## {setting}", ""] + _setting_table(entries, setting) + [""]
        if setting in notes:
            lines += [f"GCE: {notes[setting]}.", ""]
    lines += ["## Has every arm finished memorising?", "",
              f"M(end) - M(end - 500 iterations), median over datasets; above {MEMORISING} is still memorising.",
              ""] + _memorising_table(runs) + [""]
    lines += ["## Gain over Dice+CE early and at the end (same runs, last checkpoint, pooled)", ""]
    lines += _gain_table(runs) + [""]
    lines += ["## Decision: the T-Loss recipe (validation Dice on noisy labels, pooled, headline settings)", ""]
    lines += _decision(entries) + [""]
    return "\n".join(lines)


def plot(runs: list[dict], setting: str, path: Path) -> Path:
    """Test Dice, validation Dice and M against iterations per trained arm: mean over datasets, range as a band."""
    panels = (("test_dice", "clean-test Dice (pooled)"), ("val_dice_noisy", "validation Dice (noisy labels)"),
              ("memorisation", "memorisation index M"))
    with figure(path, 1, 3, figsize=(15, 4)) as (_, axes):
        for arm in sorted({r["loss"] for r in runs if r["setting"] == setting}, key=_name):
            chosen = [r for r in runs if r["setting"] == setting and r["loss"] == arm]
            iterations = [e["iteration"] for e in chosen[0]["log"]]
            for ax, (field, title) in zip(axes, panels):
                rows = [[np.nan if e.get(field) is None else e[field] for e in r["log"]] for r in chosen
                        if len(r["log"]) == len(iterations)]
                data = np.array(rows, dtype=float)
                if np.isnan(data).all():
                    continue
                line, = ax.plot(iterations, np.nanmean(data, 0), label=f"{_name(arm)} ({len(rows)})")
                ax.fill_between(iterations, np.nanmin(data, 0), np.nanmax(data, 0), color=line.get_color(), alpha=0.2)
                ax.set_title(title)
                ax.set_xlabel("iteration")
        axes[0].legend()
    return path


def write_summary(runs: list[dict], out: Path, config: StudyConfig, expected: list[tuple]) -> list[Path]:
    """Write ``out`` (horizon.json), ``out`` with .md, and ``<out stem>_<setting>.png`` per setting."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entries, notes = derive(runs, config)
    write_text(out, json.dumps({"runs": entries}, indent=1) + "\n")
    write_text(out.with_suffix(".md"), markdown(runs, entries, notes, config, expected))
    settings = ordered({r["setting"] for r in runs}, SETTINGS)
    pngs = [plot(runs, s, out.with_name(f"{out.stem}_{s}.png")) for s in settings]
    return [out, out.with_suffix(".md"), *pngs]
