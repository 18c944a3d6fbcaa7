"""From the label-repair study's records (and the long-horizon study's shared runs) to ``repair.json`` (the issue's
format), ``repair.md``, ``repair_audit.md`` (step 1) and one plot per setting.

Arms per (dataset, setting): ``noisy_dice_ce`` / ``noisy_tloss`` (the horizon study's runs, last checkpoint),
``clean_oracle`` (the horizon study's clean run of the same dataset, one entry per loss), ``repaired_<mode>_<loss>``
(the rule chosen on validation, :func:`choices`) and every candidate as ``candidate_<mode>_<rule>_<loss>``.
Share given back per dataset: (repaired - noisy) / (clean oracle - noisy), same loss; a dataset whose oracle is
less than :data:`MIN_GAP` above its noisy run has nothing to give back and is left out (counted).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text
from tloss_nnunet.audit.repair_rules import REPAIR_MODES

from .repair_audit_report import markdown as audit_markdown
from .repair_retrain import HEADLINE, RULES
from .studykit.grid import SETTINGS, ordered
from .studykit.plots import figure
from .studykit.stats import format_cell, over_datasets, paired, t_interval

PROTOCOL = ("Protocol: [`repair-protocol.md`](../repair-protocol.md), version 1 (frozen 2026-12-03, before any of "
            "its runs).")
LOSSES = ("dice_ce", "tloss")
MIN_GAP = 0.01
DICE, DIFF = (0.0, 1.0), (-1.0, 1.0)
VIEWS = {"test_dice_pooled": "pooled", "test_dice_mean": "mean per case"}


def choices(runs: list[dict]) -> dict[tuple[str, str], tuple[str, float, int]]:
    """(mode, loss) -> (rule, its mean noisy-validation Dice, runs averaged): the higher mean over the headline
    runs present (ties: the smaller fraction)."""
    out = {}
    for mode in REPAIR_MODES:
        for loss in LOSSES:
            vals = {rule: [r["val_dice_noisy"] for r in runs if r["stage"] == "repair" and r["mode"] == mode
                           and r["trained_loss"] == loss and r["arm"] == f"{mode}_{rule}_{loss}"
                           and r["setting"] in HEADLINE] for rule in RULES}
            if all(vals.values()):
                rule = max(RULES, key=lambda k: (float(np.mean(vals[k])), -RULES[k]))
                out[(mode, loss)] = (rule, float(np.mean(vals[rule])), len(vals[rule]))
    return out


def incomplete_candidates(runs: list[dict], datasets: int) -> list[str]:
    """The candidate arms (``<mode>_<rule>_<loss>``) with fewer than ``datasets`` x the headline settings runs:
    until there are none, :func:`choices` compares rules on different data and the winner is not the study's."""
    counts: dict[str, int] = {}
    for r in runs:
        if r["stage"] == "repair" and r["setting"] in HEADLINE:
            counts[r["arm"]] = counts.get(r["arm"], 0) + 1
    return [arm for mode in REPAIR_MODES for rule in RULES for loss in LOSSES
            if counts.get(arm := f"{mode}_{rule}_{loss}", 0) < datasets * len(HEADLINE)]


def winner(chosen: dict[tuple[str, str], tuple[str, float, int]]) -> tuple[str, str, str, float]:
    """The study's winner among :func:`choices`: (mode, rule, loss, its validation Dice), the highest validation
    Dice (ties: the first in :data:`REPAIR_MODES` x :data:`LOSSES` order)."""
    if not chosen:
        raise ValueError("no (mode, loss) has all its candidate rules on the headline settings yet")
    (mode, loss), (rule, value, _) = max(chosen.items(), key=lambda kv: kv[1][1])
    return mode, rule, loss, value


def _entry(dataset: str, setting: str, arm: str, run: dict, **extra) -> dict:
    return {"dataset": dataset, "setting": setting, "arm": arm, "seed": run["seed"],
            "test_dice_pooled": run["dice_pooled"], "test_dice_mean": run["dice_mean"],
            "val_dice_noisy": run["log"][-1].get("val_dice_noisy"), **extra}


def derive(runs: list[dict], shared: list[dict]) -> list[dict]:
    """The repair.json entries (see the module docstring)."""
    datasets = sorted({r["dataset"] for r in runs})
    settings = ordered({r["setting"] for r in runs}, SETTINGS)
    horizon = {(r["dataset"], r["setting"], r["loss"]): r for r in shared}
    entries = []
    for setting in settings:
        for dataset in datasets:
            for loss in LOSSES:
                if (dataset, setting, loss) in horizon:
                    entries.append(_entry(dataset, setting, f"noisy_{loss}", horizon[(dataset, setting, loss)]))
                if (dataset, "clean", loss) in horizon:
                    entries.append(_entry(dataset, setting, "clean_oracle", horizon[(dataset, "clean", loss)],
                                          loss=loss))
    chosen = choices(runs)
    for r in sorted((r for r in runs if r["stage"] == "repair"), key=lambda r: (r["setting"], r["dataset"], r["arm"])):
        mode, loss, rule = r["mode"], r["trained_loss"], r["rule"]
        extra = {"rule": rule, "repaired_cases": len(r["repaired_cases"]),
                 "repaired_corrupted": r["repaired_corrupted"], "wall_s": r["wall_s"]}
        if not r["arm"].endswith(f"_chosen_{loss}"):
            entries.append(_entry(r["dataset"], r["setting"], f"candidate_{mode}_{rule}_{loss}", r, **extra))
        if chosen.get((mode, loss), (None,))[0] == rule:
            entries.append(_entry(r["dataset"], r["setting"], f"repaired_{mode}_{loss}", r, **extra))
    return entries


def arm_values(entries: list[dict], setting: str, arm: str, view: str, loss: str | None = None) -> dict[str, float]:
    """dataset -> ``view`` of the entries of ``arm`` in ``setting`` (of ``loss``, for the per-loss arms)."""
    return {e["dataset"]: e[view] for e in entries if e["setting"] == setting and e["arm"] == arm
            and (loss is None or e.get("loss") == loss) and e[view] is not None}


def shares(repaired: dict[str, float], noisy: dict[str, float], oracle: dict[str, float]) -> tuple[list[float], int]:
    """Per-dataset shares given back (datasets with a gap of at least MIN_GAP) and how many were left out."""
    common = [d for d in repaired if d in noisy and d in oracle]
    used = [d for d in common if oracle[d] - noisy[d] >= MIN_GAP]
    return [(repaired[d] - noisy[d]) / (oracle[d] - noisy[d]) for d in used], len(common) - len(used)


def share_cell(values: list[float], left_out: int) -> str:
    cell = t_interval(values)
    if cell.n == 0:
        text = "-"
    elif cell.half_width is None:
        text = f"{100 * cell.mean:.0f} % (n=1)"
    else:
        text = f"{100 * cell.mean:.0f} % [{100 * cell.low:.0f}, {100 * cell.high:.0f}] (n={cell.n})"
    return text + (f" ({left_out} left out)" if left_out else "")


def _setting_table(entries: list[dict], setting: str) -> list[str]:
    lines = ["| arm | rule | datasets | test Dice pooled | mean per case | vs noisy, same loss (pooled) "
             "| vs noisy_tloss (pooled) | share given back, pooled | share given back, mean per case |",
             "|---|---|---|---|---|---|---|---|---|"]
    arms = [f"noisy_{loss}" for loss in LOSSES] + [f"repaired_{m}_{loss}" for m in REPAIR_MODES for loss in LOSSES]
    for arm in arms:
        pooled = arm_values(entries, setting, arm, "test_dice_pooled")
        if not pooled:
            continue
        loss = arm.rsplit("_", 1)[-1] if arm.endswith("tloss") else "dice_ce"
        rules = sorted({e.get("rule", "-") for e in entries if e["setting"] == setting and e["arm"] == arm})
        cells = [format_cell(over_datasets({d: [v] for d, v in arm_values(entries, setting, arm, view).items()},
                                           bounds=DICE)) for view in VIEWS]
        if arm.startswith("repaired_"):
            cells.append(format_cell(paired(pooled, arm_values(entries, setting, f"noisy_{loss}", "test_dice_pooled"),
                                            bounds=DIFF)))
            cells.append(format_cell(paired(pooled, arm_values(entries, setting, "noisy_tloss", "test_dice_pooled"),
                                            bounds=DIFF)))
            for view in VIEWS:
                cells.append(share_cell(*shares(arm_values(entries, setting, arm, view),
                                                 arm_values(entries, setting, f"noisy_{loss}", view),
                                                 arm_values(entries, setting, "clean_oracle", view, loss))))
        else:
            cells += ["-"] * 4
        lines.append(f"| {arm} | {', '.join(rules)} | {len(pooled)} | " + " | ".join(cells) + " |")
    for loss in LOSSES:
        oracle = arm_values(entries, setting, "clean_oracle", "test_dice_pooled", loss)
        if oracle:
            lines.append(f"| clean_oracle ({loss}) | - | {len(oracle)} | "
                         + format_cell(over_datasets({d: [v] for d, v in oracle.items()}, bounds=DICE)) + " | "
                         + format_cell(over_datasets({d: [v] for d, v in arm_values(
                             entries, setting, "clean_oracle", "test_dice_mean", loss).items()}, bounds=DICE))
                         + " | - | - | - | - |")
    return lines


def _choice_lines(runs: list[dict], planned_datasets: int | None) -> list[str]:
    chosen = choices(runs)
    if not chosen:
        return ["No (mode, loss) has all its candidate rules on the headline settings yet: no choice."]
    missing = [] if planned_datasets is None else incomplete_candidates(runs, planned_datasets)
    lines = ["| mode | loss | chosen rule | its validation Dice (noisy labels, pooled) | runs |",
             "|---|---|---|---|---|"]
    lines += [f"| {m} | {loss} | {rule} | {100 * v:.1f} | {n} |" for (m, loss), (rule, v, n) in chosen.items()]
    mode, rule, loss, value = winner(chosen)
    if missing:
        return lines + ["", f"No winner yet: {len(missing)} of {len(REPAIR_MODES) * len(RULES) * len(LOSSES)} "
                            f"candidates have fewer than the {planned_datasets * len(HEADLINE)} headline runs the "
                            f"protocol plans, so the rules above compare different runs (leading so far: {mode}, "
                            f"{rule}, {loss}, {100 * value:.1f})."]
    return lines + ["", f"Winner by the protocol's rule (highest validation Dice): **{mode}, {rule}, {loss}** "
                        f"({100 * value:.1f})."]


def _seconds(run: dict) -> float:
    """A record's cost: its CPU seconds (one thread), or its wall seconds when it predates ``cpu_s``."""
    return run["cpu_s"] if run.get("cpu_s") is not None else run["wall_s"]


def _cost_lines(runs: list[dict], shared: list[dict]) -> list[str]:
    audits = [_seconds(r) for r in runs if r["stage"] == "audit"]
    repairs = [_seconds(r) for r in runs if r["stage"] == "repair"]
    one = [r["wall_s"] for r in shared if r["loss"] in LOSSES and r["setting"] != "clean"]
    if not audits:
        return []
    walls = sum(r.get("cpu_s") is None for r in runs)
    parts = [f"audit (4 folds + scoring) median {np.median(audits):.0f} s ({len(audits)} jobs)"]
    if repairs:
        parts.append(f"one retraining median {np.median(repairs):.0f} s ({len(repairs)} runs)")
    if one:
        parts.append(f"one training (the shared noisy runs, wall time, 2 workers on 2 cores) median "
                     f"{np.median(one):.0f} s")
    total = np.median(audits) + (np.median(repairs) if repairs else 0.0)
    ratio = f"; audit + one retraining = {total / np.median(one):.1f} x one training" if one and repairs else ""
    note = f" ({walls} record(s) from before CPU time was recorded count their wall time)" if walls else ""
    return ["Cost in CPU seconds, one thread" + note + ": " + "; ".join(parts) + ratio + ".", ""]


def markdown(runs: list[dict], shared: list[dict], entries: list[dict],
             planned_datasets: int | None = None) -> str:
    settings = ordered({e["setting"] for e in entries if e["arm"].startswith(("repaired_", "candidate_"))}, SETTINGS)
    lines = ["# The label-repair study", "", PROTOCOL, "",
             f"{len(runs)} records ({sum(r['stage'] == 'audit' for r in runs)} audits); datasets "
             f"{', '.join(sorted({r['dataset'] for r in runs}))}. Clean-test Dice x100, mean over datasets [95 % "
             "t-interval over datasets]; differences paired by dataset in Dice points; shares in % (see the "
             "protocol for the near-zero rule).", ""]
    lines += _cost_lines(runs, shared)
    lines += ["## Rule per (mode, loss), chosen on the noisy validation cases", ""]
    lines += _choice_lines(runs, planned_datasets) + [""]
    for setting in settings:
        lines += [f"## {setting}", ""] + _setting_table(entries, setting) + [""]
        if setting == "clean":
            lines += ["On clean labels `noisy_*` is the clean run itself: \"vs noisy, same loss\" is the cost of "
                      "repairing labels that were right (target: no worse than -0.5 points).", ""]
    lines += ["## Step 1: the audit against cleanlab", "", "See [`repair_audit.md`](repair_audit.md).", ""]
    return "\n".join(lines)


def plot(entries: list[dict], setting: str, path: Path) -> Path:
    """Pooled test Dice per arm, grouped by loss (noisy, repaired modes, clean oracle): datasets as points, their
    mean as a bar."""
    columns = []
    for loss in LOSSES:
        arms = [f"noisy_{loss}", *(f"repaired_{m}_{loss}" for m in REPAIR_MODES), "clean_oracle"]
        columns += [(arm, loss) for arm in arms]
    columns = [(arm, loss) for arm, loss in columns if arm_values(entries, setting, arm, "test_dice_pooled",
                                                               loss if arm == "clean_oracle" else None)]
    with figure(path, figsize=(max(6, 0.9 * len(columns)), 4)) as (_, ax):
        for i, (arm, loss) in enumerate(columns):
            values = list(arm_values(entries, setting, arm, "test_dice_pooled",
                                  loss if arm == "clean_oracle" else None).values())
            ax.bar(i, np.mean(values), color="lightgrey" if loss == "dice_ce" else "lightsteelblue")
            ax.plot([i] * len(values), values, "o", ms=3, color="black")
        labels = [f"clean_oracle_{loss}" if arm == "clean_oracle" else arm for arm, loss in columns]
        ax.set_xticks(range(len(columns)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("clean-test Dice (pooled)")
        ax.set_title(setting)
    return path


def write_summary(runs: list[dict], shared: list[dict], out: Path, planned_datasets: int | None = None) -> list[Path]:
    """Write ``out`` (repair.json), its .md, ``repair_audit.md`` beside it and ``<stem>_<setting>.png``."""
    out = Path(out)
    entries = derive(runs, shared)
    write_text(out, json.dumps({"runs": entries, "choices": {f"{m}_{loss}": rule for (m, loss), (rule, _, _)
                                                             in choices(runs).items()}}, indent=1) + "\n")
    write_text(out.with_suffix(".md"), markdown(runs, shared, entries, planned_datasets))
    audit_md = out.with_name(f"{out.stem}_audit.md")
    audits = [r for r in runs if r["stage"] == "audit"]
    write_text(audit_md, "\n".join(["# The label-repair study, step 1: the audit against cleanlab", "", PROTOCOL, ""]
                                   + audit_markdown(audits)) + "\n")
    settings = ordered({e["setting"] for e in entries if e["arm"].startswith("repaired_")}, SETTINGS)
    pngs = [plot(entries, s, out.with_name(f"{out.stem}_{s}.png")) for s in settings]
    return [out, out.with_suffix(".md"), audit_md, *pngs]

