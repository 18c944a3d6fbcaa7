"""The demo's report folder: ``report.md`` / ``report.html`` (same content), ``curves.png``, ``cases.png``,
``results.json``; the parts are :mod:`~tloss_nnunet.repro.report_inputs` (what is shown, read from the run),
:mod:`~tloss_nnunet.repro.report_figures` and :mod:`~tloss_nnunet.repro.report_document` (Markdown, HTML, JSON).

Every number comes from the run's own files: Dice values from :class:`~tloss_nnunet.repro.pipeline.Evaluation`
(nnU-Net's ``summary.json`` and the prediction files), curves from the ``logging`` dict of each model's
``checkpoint_final.pth``, pictures from the raw dataset and the prediction folders. Files are written
under a temporary name and renamed, so a report is never half-written.

    paths = write_report(report, Path("reports/demo"))
    print(paths.markdown)
"""

from __future__ import annotations

from pathlib import Path

from tloss_nnunet.atomic import write_json, write_text
from tloss_nnunet.repro import report_inputs
from tloss_nnunet.repro.report_document import render_html, render_markdown, report_blocks, results_json
from tloss_nnunet.repro.report_figures import plot_cases, plot_curves
from tloss_nnunet.repro.report_inputs import *  # noqa: F401,F403  (the report's inputs, one import away)
from tloss_nnunet.repro.report_inputs import DemoReport, ReportPaths

__all__ = [*report_inputs.__all__, "plot_cases", "plot_curves", "render_html", "render_markdown", "report_blocks",
           "write_report"]


def write_report(report: DemoReport, folder: Path) -> ReportPaths:
    """Write the report files into ``folder`` (created) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(folder, folder / "report.md", folder / "report.html", folder / "curves.png",
                        folder / "cases.png", folder / "results.json")
    plot_curves(report.results, paths.curves)
    plot_cases(report, paths.cases)
    blocks = report_blocks(report, paths.curves.name, paths.cases.name)
    write_json(paths.results, results_json(report))
    write_text(paths.markdown, render_markdown(blocks))
    write_text(paths.html, render_html(blocks))
    return paths
