"""The demo report's text: content as blocks, rendered to Markdown and HTML, and the numbers as JSON.

A block is ``("h1"|"h2"|"p", text)``, ``("ul", [items])``, ``("table", header, rows)`` or
``("img", file, alt)``; :func:`report_blocks` decides the content once, both renderers only lay it out.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from tloss_nnunet.repro.report_inputs import DemoReport

__all__ = ["Block", "render_html", "render_markdown", "report_blocks", "results_json"]


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
