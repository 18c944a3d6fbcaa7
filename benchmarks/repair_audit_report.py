"""Step 1 of the label-repair study: our audit scores and cleanlab's on the same cross-fitted probabilities.

AUROC: the probability that a random corrupted case is more suspect than a random clean one (ties count half).
AP: average precision (scikit-learn's `average_precision_score`). Precision@k: the share of corrupted cases
among the k most suspect, k = the number of corrupted cases. Per noise kind: that kind's cases against the clean
cases. 95 % Student-t intervals over datasets, clipped to the metric's range; the paired difference is per
dataset, our default (`one_minus_dice`) minus cleanlab's `softmin`.
"""

from __future__ import annotations

import numpy as np

from tloss_nnunet.audit.scores import SCORE_NAMES, suspicion

from .label_audit_report import KINDS, auroc, precision_at_k
from .studykit.grid import SETTINGS, ordered
from .studykit.stats import format_cell, t_interval

__all__ = ["SCORES", "average_precision", "markdown", "record_metrics", "softmin_agreement", "suspicions"]

#: Every score of the report: ours, then cleanlab's (``1 - quality``: larger is more suspect).
SCORES: tuple[str, ...] = (*SCORE_NAMES, "cleanlab_softmin", "cleanlab_num_pixel_issues")
ANCHOR = "cleanlab_softmin"
#: "Our default" of the frozen protocol (version 1): the library's default ranking when it was frozen, which
#: step 1 compares with the anchor. The library's default has since become the softmin score, because this
#: comparison found it better (step 4 ranks by it: ``repair_retrain.STEP4_RANKING``, addendum 1.1).
PROTOCOL_RANKING = "one_minus_dice"


def suspicions(cases: list[dict], score: str) -> np.ndarray:
    """Per case, larger = more suspect: our scores by the library's orientation, cleanlab's as 1 - quality."""
    if score.startswith("cleanlab_"):
        return np.array([1.0 - c[score] for c in cases], dtype=float)
    return np.array([suspicion(c, score) for c in cases], dtype=float)


def average_precision(values: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ``values`` (larger = more suspect) for ``positive``; NaN without positives."""
    from sklearn.metrics import average_precision_score

    positive = np.asarray(positive, bool)
    return float("nan") if not positive.any() else float(average_precision_score(positive, values))


def record_metrics(record: dict) -> dict[str, dict[str, float]]:
    """score -> {auroc, ap, precision_at_k, auroc_<kind>, ap_<kind>} of one audit record (noisy settings)."""
    cases = record["cases"]
    corrupted = np.array([c["corrupted"] for c in cases])
    out = {}
    for score in SCORES:
        if any(score not in c for c in cases):
            continue
        values = suspicions(cases, score)
        if np.isnan(values).any():
            continue
        metrics = {"auroc": auroc(values, corrupted), "ap": average_precision(values, corrupted),
                   "precision_at_k": precision_at_k(values, corrupted)}
        for kind in KINDS:
            keep = np.array([c["kind"] in (kind, "clean") for c in cases])
            metrics[f"auroc_{kind}"] = auroc(values[keep], corrupted[keep])
            metrics[f"ap_{kind}"] = average_precision(values[keep], corrupted[keep])
        out[score] = metrics
    return out


def _cell(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> str:
    """Mean [95 % interval over datasets], the interval clipped to ``bounds`` (a metric's range)."""
    cell = t_interval([v for v in values if not np.isnan(v)], bounds=bounds)
    return "-" if cell.n == 0 else format_cell(cell, scale=1.0, digits=2)


def softmin_agreement(audits: list[dict]) -> str:
    """How far our ``one_minus_softmin`` is from 1 - cleanlab's softmin, on every case whose record holds both."""
    gaps = [abs(c["one_minus_softmin"] - (1.0 - c[ANCHOR])) for a in audits for c in a["cases"]
            if c.get("one_minus_softmin") is not None and c.get(ANCHOR) is not None]
    if not gaps:
        return "No audit record holds both `one_minus_softmin` and cleanlab's softmin yet."
    return (f"`one_minus_softmin` (our code) against 1 - `{ANCHOR}`, on the {len(gaps)} audited cases whose records "
            f"hold both (clean settings included): largest difference {max(gaps):.1e}.")


def markdown(audits: list[dict]) -> list[str]:
    """The step-1 section: per setting and score AUROC / AP / precision@k, per noise kind, paired differences,
    and how closely our softmin score matches cleanlab's (every audit, clean ones included)."""
    agreement = softmin_agreement(audits)
    audits = [a for a in audits if a["n_corrupted"] > 0]
    if not audits:
        return ["No audit of a noisy setting yet."]
    by = {(a["setting"], a["dataset"]): record_metrics(a) for a in audits}
    settings = ordered({a["setting"] for a in audits}, SETTINGS)
    folds = audits[0]["folds"]
    lines = [__doc__.split("\n\n", 1)[1].strip(), "",
             f"Audit models: {len(folds)}-fold cross-fitting of {audits[0]['n_train']} training cases, the default "
             f"T-Loss trainer, at most {audits[0]['iterations']} iterations (kept epoch: nnU-Net's checkpoint_best "
             "on the noisy validation cases). Kept iterations: median "
             f"{np.median([f['kept_iteration'] for a in audits for f in a['folds']]):.0f}.", "",
             "| setting | score | datasets | corrupted / cases | AUROC | AP | precision@k |",
             "|---|---|---|---|---|---|---|"]
    for setting in settings:
        datasets = sorted(d for s, d in by if s == setting)
        n_bad = np.mean([a["n_corrupted"] for a in audits if a["setting"] == setting])
        for score in SCORES:
            rows = [by[(setting, d)][score] for d in datasets if score in by[(setting, d)]]
            if rows:
                lines.append(f"| {setting} | {score} | {len(rows)} | {n_bad:.1f} / {audits[0]['n_train']} | "
                             + " | ".join(_cell([r[m] for r in rows]) for m in ("auroc", "ap", "precision_at_k"))
                             + " |")
    lines += ["", f"Per noise kind (AUROC / AP of that kind's cases against the clean cases), `{PROTOCOL_RANKING}` "
              f"and `{ANCHOR}`:", "", "| setting | score | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * 3]
    for setting in settings:
        for score in (PROTOCOL_RANKING, ANCHOR):
            rows = [m[score] for (s, _), m in by.items() if s == setting]
            lines.append(f"| {setting} | {score} | " + " | ".join(
                f"{_cell([r[f'auroc_{k}'] for r in rows])} / {_cell([r[f'ap_{k}'] for r in rows])}" for k in KINDS)
                + " |")
    lines += ["", f"Paired by dataset, `{PROTOCOL_RANKING}` minus `{ANCHOR}`:", "",
              "| setting | datasets | AUROC difference | AP difference | ours >= cleanlab (AUROC, mean) |",
              "|---|---|---|---|---|"]
    for setting in settings:
        rows = [m for (s, _), m in by.items() if s == setting]
        diff = {k: [r[PROTOCOL_RANKING][k] - r[ANCHOR][k] for r in rows] for k in ("auroc", "ap")}
        verdict = "yes" if np.mean(diff["auroc"]) >= 0 else "no"
        lines.append(f"| {setting} | {len(rows)} | {_cell(diff['auroc'], (-1.0, 1.0))} | "
                     f"{_cell(diff['ap'], (-1.0, 1.0))} | {verdict} |")
    return [*lines, "", agreement]
