"""From the stock-command confirmation's records (``repair_nnunet.py``) and the long-horizon check's shared stock
runs to ``repair_nnunet.json``, ``repair_nnunet.md`` and ``repair_nnunet.png``.

Arms per dataset (a0.7b0.7): ``noisy_dice_ce`` / ``noisy_tloss`` and ``clean_oracle`` (one per loss) from
``horizon_nnunet_runs.json`` (last checkpoint), ``repaired_<mode>_<loss>`` from the confirmation. Share given back
per dataset as in the in-process report (:func:`benchmarks.repair_report.shares`). Addendum 1.2's verdict: the
combination is confirmed when, over every planned dataset, the repaired run's pooled clean-test Dice is above the
noisy run of its own loss on average. Beside it, per dataset, how well each stock audit ranked the corrupted cases
(AUROC, precision@k) and what it cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text

from .horizon import summary_path
from .repair_nnunet_loop import SETTING
from .repair_report import DICE, DIFF, LOSSES, VIEWS, arm_values, share_cell, shares
from .studykit.plots import figure
from .studykit.stats import format_cell, over_datasets, paired, t_interval

PROTOCOL = ("Protocol: [`repair-protocol.md`](../repair-protocol.md), addendum 1.2 (frozen 2026-12-03 21:05 UTC, "
            "before any of its runs).")


def derive(runs: list[dict], shared: list[dict], planned: list[str]) -> list[dict]:
    """The entries of ``repair_nnunet.json``: the shared arms of the planned datasets (and of any other dataset
    with a run), then the repaired runs."""
    datasets = sorted(set(planned) | {r["dataset"] for r in runs})
    by_key = {(r["dataset"], r["setting"], r["loss"]): r for r in shared}
    entries = []
    for dataset in datasets:
        for loss in LOSSES:
            for setting, arm in ((SETTING, f"noisy_{loss}"), ("clean", "clean_oracle")):
                if (run := by_key.get((dataset, setting, loss))) is not None:
                    entries.append({"dataset": dataset, "setting": SETTING, "arm": arm, "loss": loss,
                                    "seed": run["seed"], "test_dice_pooled": run["dice_pooled"],
                                    "test_dice_mean": run["dice_mean"], "wall_s": run["wall_s"]})
    for r in sorted((r for r in runs if r["stage"] == "repair"), key=lambda r: (r["dataset"], r["arm"], r["seed"])):
        entries.append({"dataset": r["dataset"], "setting": r["setting"], "arm": r["arm"], "loss": r["trained_loss"],
                        "seed": r["seed"], "test_dice_pooled": r["dice_pooled"], "test_dice_mean": r["dice_mean"],
                        "mode": r["mode"], "rule": r["rule"], "repaired_cases": len(r["repaired_cases"]),
                        "repaired_corrupted": r["repaired_corrupted"], "n_corrupted": r["n_corrupted"],
                        "retrain_s": r["retrain_s"], "wall_s": r["wall_s"], "reused": r["model_reused"],
                        # the audit this run repaired with (trained again when its folds were lost: nnU-Net does not
                        # seed, so it can differ from the audit record)
                        "audit_auroc": r["audit_auroc"], "audit_precision_at_k": r["audit_precision_at_k"]})
    return entries


def _values(entries: list[dict], arm: str, view: str, loss: str | None = None) -> dict[str, float]:
    return arm_values(entries, SETTING, arm, view, loss)  # every entry here is of the one setting


def verdict(entries: list[dict], datasets: list[str]) -> dict:
    """Addendum 1.2's verdict per repaired arm: ``{"arm", "loss", "gain" (mean repaired - noisy, pooled, over the
    datasets with both), "missing" (planned datasets without both runs, each naming what it lacks), "confirmed"
    (None while something is missing)}``."""
    out = []
    for arm in sorted({e["arm"] for e in entries if e["arm"].startswith("repaired_")}):
        loss = next(e["loss"] for e in entries if e["arm"] == arm)
        repaired = _values(entries, arm, "test_dice_pooled")
        noisy = _values(entries, f"noisy_{loss}", "test_dice_pooled")
        gains = [repaired[d] - noisy[d] for d in datasets if d in repaired and d in noisy]
        gain = float(np.mean(gains)) if gains else None
        missing = [f"{d} ({', '.join(a for a, v in ((arm, repaired), (f'noisy_{loss}', noisy)) if d not in v)})"
                   for d in datasets if d not in repaired or d not in noisy]
        out.append({"arm": arm, "loss": loss, "gain": gain, "missing": missing,
                    "confirmed": None if missing else gain > 0})
    return {"arms": out}


def _summary_table(entries: list[dict]) -> list[str]:
    lines = ["| arm | datasets | test Dice pooled | mean per case | vs noisy, same loss (pooled) | vs noisy_tloss "
             "(pooled) | share given back, pooled | share given back, mean per case |",
             "|---|---|---|---|---|---|---|---|"]
    repaired_arms = sorted({e["arm"] for e in entries if e["arm"].startswith("repaired_")})
    for arm in [*(f"noisy_{loss}" for loss in LOSSES), *repaired_arms]:
        pooled = _values(entries, arm, "test_dice_pooled")
        if not pooled:
            continue
        cells = [format_cell(over_datasets({d: [v] for d, v in _values(entries, arm, view).items()}, bounds=DICE))
                 for view in VIEWS]
        if arm in repaired_arms:
            loss = next(e["loss"] for e in entries if e["arm"] == arm)
            cells += [format_cell(paired(pooled, _values(entries, f"noisy_{loss}", "test_dice_pooled"), bounds=DIFF)),
                      format_cell(paired(pooled, _values(entries, "noisy_tloss", "test_dice_pooled"), bounds=DIFF))]
            cells += [share_cell(*shares(_values(entries, arm, view), _values(entries, f"noisy_{loss}", view),
                                         _values(entries, "clean_oracle", view, loss))) for view in VIEWS]
        else:
            cells += ["-"] * 4
        lines.append(f"| {arm} | {len(pooled)} | " + " | ".join(cells) + " |")
    for loss in LOSSES:
        if oracle := _values(entries, "clean_oracle", "test_dice_pooled", loss):
            mean = _values(entries, "clean_oracle", "test_dice_mean", loss)
            lines.append(f"| clean_oracle ({loss}) | {len(oracle)} | "
                         + " | ".join(format_cell(over_datasets({d: [v] for d, v in x.items()}, bounds=DICE))
                                      for x in (oracle, mean)) + " | - | - | - | - |")
    return lines


def _dataset_table(entries: list[dict]) -> list[str]:
    lines = ["| dataset | arm | noisy, same loss | repaired | clean oracle | repaired cases (corrupted / corrupted in "
             "the set) | its audit: AUROC, precision@k | retraining s |", "|---|---|---|---|---|---|---|---|"]
    for e in (e for e in entries if e["arm"].startswith("repaired_")):
        noisy = _values(entries, f"noisy_{e['loss']}", "test_dice_pooled", e["loss"]).get(e["dataset"])
        oracle = _values(entries, "clean_oracle", "test_dice_pooled", e["loss"]).get(e["dataset"])
        cells = ["-" if v is None else f"{100 * v:.1f}" for v in (noisy, e["test_dice_pooled"], oracle)]
        lines.append(f"| {e['dataset']} | {e['arm']} ({e['rule']}) | " + " | ".join(cells)
                     + f" | {e['repaired_cases']} ({e['repaired_corrupted']} / {e['n_corrupted']}) | "
                     + f"{e['audit_auroc']:.2f}, {e['audit_precision_at_k']:.2f} | "
                     + ("reused" if e["reused"] else f"{e['retrain_s']:.0f}") + " |")
    return lines


def _audit_lines(audits: list[dict]) -> list[str]:
    """Per dataset: how well the stock audit's ranking finds the corrupted cases, and what it cost."""
    if not audits:
        return ["No audit has run yet."]
    lines = ["The audit records (a loop whose audit folds were lost trains them again; the per-dataset table names the "
             "AUROC of the audit each repair used).", "",
             "| dataset | ranked by | AUROC | precision@k | corrupted cases | audit s (4 folds + suspects) |",
             "|---|---|---|---|---|---|"]
    for a in sorted(audits, key=lambda a: a["dataset"]):
        lines.append(f"| {a['dataset']} | {a['rank_by']} | {a['auroc']:.2f} | {a['precision_at_k']:.2f} | "
                     f"{a['n_corrupted']} of {len(a['ranking'])} | "
                     + ("reused" if a["audit_reused"] else f"{a['audit_s']:.0f}") + " |")
    if len(audits) > 1:
        lines += ["", "Over datasets: AUROC " + format_cell(t_interval([a["auroc"] for a in audits], bounds=DICE),
                                                          1.0, 2)
                  + ", precision@k " + format_cell(t_interval([a["precision_at_k"] for a in audits], bounds=DICE),
                                                   1.0, 2) + " (mean [95 % t-interval, clipped to [0, 1]])."]
    return lines


def _verdict_lines(entries: list[dict], datasets: list[str]) -> list[str]:
    lines = [] if any(e["arm"].startswith("repaired_") for e in entries) else [
        "No repaired run yet: the loop retrains once the in-process study's winner is known (its complete "
        "headline) or a combination is named."]
    for v in verdict(entries, datasets)["arms"]:
        if v["confirmed"] is None:
            lines.append(f"- `{v['arm']}`: waiting for {'; '.join(v['missing'])} (no verdict before every planned "
                         "dataset has both runs).")
        else:
            word = "confirmed" if v["confirmed"] else "**not confirmed**"
            lines.append(f"- `{v['arm']}`: {word}: repaired - noisy_{v['loss']} = {100 * v['gain']:+.1f} pooled "
                         f"points, mean over {len(datasets)} datasets.")
    return lines


def _cost_line(entries: list[dict], audits: list[dict]) -> list[str]:
    repaired = [e["retrain_s"] for e in entries if e["arm"].startswith("repaired_") and not e["reused"]]
    trained = [a["audit_s"] for a in audits if not a["audit_reused"]]
    one = [e["wall_s"] for e in entries if e["arm"].startswith("noisy_")]
    if not repaired or not trained or not one:
        return []  # only runs that trained everything they report count
    audit, retrain = np.median(trained), np.median(repaired)
    return [f"Cost, wall seconds on this machine: audit (4 folds + suspects) median {audit:.0f} s, repair and "
            f"retraining median {retrain:.0f} s, one training (the shared noisy runs) median {np.median(one):.0f} s: "
            f"the whole loop = {(audit + retrain) / np.median(one):.1f} x one training.", ""]


def markdown(entries: list[dict], audits: list[dict], datasets: list[str]) -> str:
    lines = ["# The repair study inside nnU-Net: audit, repair, retrain with the stock commands", "", PROTOCOL, "",
             f"Setting {SETTING}; datasets {', '.join(datasets)} (one run each; nnU-Net does not seed its training). "
             "Clean-test Dice x100 of the last checkpoint, mean over datasets [95 % t-interval over datasets]; "
             "differences paired by dataset in Dice points; shares in %.", ""]
    lines += ["## Verdict (addendum 1.2)", ""] + _verdict_lines(entries, datasets) + [""]
    lines += _cost_line(entries, audits)
    lines += ["## Over datasets", ""] + _summary_table(entries) + [""]
    lines += ["## The audits (steps 1-3)", ""] + _audit_lines(audits) + [""]
    if any(e["arm"].startswith("repaired_") for e in entries):
        lines += ["## Per dataset (pooled)", ""] + _dataset_table(entries) + [""]
    return "\n".join(lines)


def plot(entries: list[dict], path: Path) -> Path:
    """Pooled clean-test Dice per dataset: the noisy run, the repaired run and the clean oracle of each loss."""
    repaired_arms = sorted({e["arm"] for e in entries if e["arm"].startswith("repaired_")})
    datasets = sorted({e["dataset"] for e in entries if e["arm"] in repaired_arms})
    with figure(path, figsize=(6, 4)) as (_, ax):
        for arm in repaired_arms:
            loss = next(e["loss"] for e in entries if e["arm"] == arm)
            series = [(f"noisy_{loss}", None), (arm, None), ("clean_oracle", loss)]
            labels = [f"noisy_{loss}", arm, f"clean_oracle_{loss}"]
            for dataset in datasets:
                ys = [_values(entries, a, "test_dice_pooled", lo).get(dataset) for a, lo in series]
                ax.plot(range(3), [np.nan if y is None else y for y in ys], "o-", alpha=0.7, label=dataset)
            ax.set_xticks(range(3), labels, fontsize=8)
        ax.set_ylabel("clean-test Dice (pooled)")
        ax.set_title(f"{SETTING}, stock nnU-Net commands")
        if repaired_arms:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no repaired run yet (the audits only)", ha="center", transform=ax.transAxes)
    return path


def write_summary(runs: list[dict], shared: list[dict], out: Path, datasets: list[str]) -> list[Path]:
    """Write ``repair_nnunet.json`` (beside ``out``), its .md and .png; ``datasets``: the planned ones."""
    summary = summary_path(out)
    entries = derive(runs, shared, datasets)
    audits = [r for r in runs if r["stage"] == "audit"]
    audit_entries = [{k: a[k] for k in ("dataset", "rank_by", "auroc", "precision_at_k", "n_corrupted", "audit_s",
                                        "audit_reused")} for a in sorted(audits, key=lambda a: a["dataset"])]
    write_text(summary, json.dumps({"runs": entries, "audits": audit_entries, **verdict(entries, datasets)},
                                   indent=1) + "\n")
    write_text(summary.with_suffix(".md"), markdown(entries, audits, datasets))
    return [summary, summary.with_suffix(".md"), plot(entries, summary.with_suffix(".png"))]
