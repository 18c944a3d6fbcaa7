"""The audit's output files: ``suspects.csv`` (every case, ranked), ``suspects.md`` and ``suspects.png``.

Each is written to a temporary name and moved into place (:mod:`tloss_nnunet.atomic`), so an interrupted audit
never leaves half a table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_text
from tloss_nnunet.audit.gallery import draw_rows
from tloss_nnunet.audit.scores import SCORE_NAMES, CaseScores

__all__ = ["CSV_COLUMNS", "GalleryCase", "write_csv", "write_gallery", "write_markdown"]

#: Columns of suspects.csv, in order.
CSV_COLUMNS = ("case", "rank", *SCORE_NAMES, "fold", "held_out", "valid_elements")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, ranked: Sequence[CaseScores]) -> None:
    """One row per case, most suspect first; a score the model cannot give (``tloss_*`` without nu) is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, scores in enumerate(ranked, start=1):
        row = {**scores.as_dict(), "rank": rank}
        writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
    write_text(path, buffer.getvalue())


def write_markdown(path: Path, ranked: Sequence[CaseScores], *, model: str, rank_by: str, folds: dict[int, dict],
                   top_k: int, not_held_out: str = "", skipped_folds: str = "") -> None:
    """A short summary: what was scored, with what, how many cases were held out (``not_held_out``: the line
    saying which were not and what to do), and the top ``top_k``; ``skipped_folds``: the line naming folds left
    out for lack of a checkpoint."""
    held_out = sum(bool(s.extra.get("held_out")) for s in ranked)
    lines = [f"# Label audit of `{model}`", "",
             f"{len(ranked)} training cases scored, ranked by `{rank_by}` (most suspect first).", ""]
    for fold, info in sorted(folds.items()):
        nu = "no nu (not a T-Loss model)" if info["nu"] is None else f"nu = {info['nu']:.4g}"
        lines.append(f"- fold {fold}: {info['cases']} case(s), {info['held_out']} held out; {nu}")
    lines.append("")
    if skipped_folds:
        lines += [f"**{skipped_folds}.**", ""]
    if held_out < len(ranked):
        lines += [f"**{len(ranked) - held_out} case(s) were scored by a model that trained on them.** A network fits "
                  "its own training labels, wrong ones included, so these scores understate how wrong a label is. "
                  + (not_held_out or "Train every fold of the cross-validation and audit again: each case is then "
                     "scored by the fold that held it out."), ""]
    lines += ["| rank | case | " + " | ".join(SCORE_NAMES) + " | fold | held out |",
              "|---|---|" + "---|" * len(SCORE_NAMES) + "---|---|"]
    for rank, s in enumerate(ranked[:top_k], start=1):
        values = " | ".join(_cell(getattr(s, n)) or "-" for n in SCORE_NAMES)
        held = "yes" if s.extra.get("held_out") else "no"
        lines.append(f"| {rank} | {s.case} | {values} | {s.extra.get('fold')} | {held} |")
    lines += ["", "Scores: `tloss_nll` = Student-t NLL per element under the fold's nu, `tloss_weight` = the "
              "T-Loss's per-image weight (nu + D) / (nu + S) (small = suspect), `mse` = mean squared residual of the "
              "foreground probabilities, `one_minus_dice` = 1 - Dice of the prediction against the label, "
              "`one_minus_softmin` = 1 - cleanlab's softmin label quality (a soft minimum, temperature 0.1, of each "
              "pixel's probability of its given label). "
              "Full table: `suspects.csv`; pictures: `suspects.png`.", ""]
    write_text(path, "\n".join(lines))


class GalleryCase:
    """One row of the gallery: a 2D view of the image, its given label and the model's prediction."""

    def __init__(self, case: str, rank: int, image: np.ndarray, label: np.ndarray, prediction: np.ndarray,
                 score: float, score_name: str) -> None:
        self.case, self.rank, self.score, self.score_name = case, rank, score, score_name
        self.image, self.label, self.prediction = image, label, prediction


def write_gallery(path: Path, cases: Sequence[GalleryCase]) -> None:
    """One row per case: image, given label, prediction, and their disagreement (red: label only, blue:
    prediction only), titled with rank, case and score."""
    rows = []
    for item in cases:
        label, prediction = item.label > 0, item.prediction > 0
        disagreement = np.zeros((*label.shape, 3))
        disagreement[label & ~prediction] = (0.85, 0.1, 0.1)
        disagreement[prediction & ~label] = (0.1, 0.3, 0.9)
        disagreement[label & prediction] = (0.75, 0.75, 0.75)
        rows.append((f"#{item.rank} {item.case}, {item.score_name} = {item.score:.4g}",
                     [(item.image, "image"), (item.label, "given label"), (item.prediction, "prediction"),
                      (disagreement, "red: label only, blue: prediction only")]))
    draw_rows(path, rows, columns=4)
