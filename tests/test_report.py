"""Unit tests of tloss_nnunet.repro.report on a hand-made run (raw datasets, predictions, evaluations, logs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tloss_nnunet.repro import report as rp
from tloss_nnunet.repro.pipeline import Evaluation

TEST_CASES = ["ISIC_0000010", "ISIC_0000011", "ISIC_0000012"]
TRAIN_KINDS = {"ISIC_0000001": "dilate", "ISIC_0000002": "clean", "ISIC_0000003": "erode",
               "ISIC_0000004": "affine", "ISIC_0000005": "dilate"}


def _disk(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius ** 2).astype(np.uint8)


def _run(tmp_path: Path) -> rp.DemoReport:
    """Two datasets (clean / noisy twins) of 16 px cases, two models' predictions, evaluations and logs."""
    noisy, clean = tmp_path / "raw" / "Dataset501_ISIC2017_a07b07", tmp_path / "raw" / "Dataset500_ISIC2017_clean"
    for folder in (noisy / "imagesTr", noisy / "labelsTr", noisy / "imagesTs", noisy / "labelsTs", clean / "labelsTr"):
        folder.mkdir(parents=True)
    image = np.full((16, 16, 3), 200, np.uint8)
    for case, kind in TRAIN_KINDS.items():
        cv2.imwrite(str(noisy / "imagesTr" / f"{case}_0000.png"), image)
        cv2.imwrite(str(clean / "labelsTr" / f"{case}.png"), _disk(16, 4))
        cv2.imwrite(str(noisy / "labelsTr" / f"{case}.png"), _disk(16, 6 if kind == "dilate" else 4))
    (noisy / "noise_log.tsv").write_text("case\tkind\tnoise_rate\tnote\n" + "".join(
        f"{c}\t{k}\t0.5\t\n" for c, k in TRAIN_KINDS.items()))
    for case in TEST_CASES:
        cv2.imwrite(str(noisy / "imagesTs" / f"{case}_0000.png"), image)
        cv2.imwrite(str(noisy / "labelsTs" / f"{case}.png"), _disk(16, 5))
    results = []
    for label, trainer, radius, dice, nu in (("T-Loss", "nnUNetTrainerTLoss_demo", 5, 0.91234, [1.0, 1.5, 2.25]),
                                             ("stock Dice+CE", "nnUNetTrainer_demo", 3, 0.45678, None)):
        predictions = tmp_path / "pred" / trainer
        predictions.mkdir(parents=True)
        for case in TEST_CASES:
            cv2.imwrite(str(predictions / f"{case}.png"), _disk(16, radius))
        per_case = {c: dice - 0.01 * i for i, c in enumerate(TEST_CASES)}
        evaluation = Evaluation(per_case=per_case, dice_mean=float(np.mean(list(per_case.values()))),
                                dice_pooled=dice + 0.00321, summary_path=predictions / "summary.json")
        logging = {"ema_fg_dice": [0.2, 0.4, 0.6], "mean_fg_dice": [0.2, 0.6, 0.8], "train_losses": [1, 0.5, 0.2]}
        if nu:
            logging["nu"] = nu
        results.append(rp.TrainerResult(label, trainer, tmp_path / "models" / trainer, predictions, evaluation,
                                        logging))
    data = rp.DemoData(noisy_dataset=noisy, clean_dataset=clean, alpha=0.7, beta=0.7, n_train=5, n_val=2,
                       n_test=3, noise_kinds={"clean": 1, "dilate": 2, "erode": 1, "affine": 1}, size=16, seed=0,
                       source="hand-made test data")
    return rp.DemoReport(data=data, schedule="demo: 3 epochs x 2 iterations", device="cpu", results=results,
                         seconds={"train T-Loss": 12.5}, grid_cases=2)


def test_write_report_writes_every_file_with_the_evaluation_numbers(tmp_path: Path) -> None:
    report = _run(tmp_path)
    paths = rp.write_report(report, tmp_path / "report")
    for png in (paths.curves, paths.cases):
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    markdown, html = paths.markdown.read_text(), paths.html.read_text()
    for result in report.results:
        assert result.trainer in markdown and result.trainer in html
        for value in (result.evaluation.dice_mean, result.evaluation.dice_pooled, *result.evaluation.per_case.values()):
            assert f"{value:.4f}" in markdown and f"{value:.4f}" in html
    assert "alpha=0.7, beta=0.7" in markdown and "| 2.2500 |" in markdown  # final nu of the T-Loss model
    assert '<img src="curves.png"' in html and '<img src="cases.png"' in html
    assert "![nu and pseudo-Dice over epochs](curves.png)" in markdown
    saved = json.loads(paths.results.read_text())
    assert [t["trainer"] for t in saved["trainers"]] == ["nnUNetTrainerTLoss_demo", "nnUNetTrainer_demo"]
    assert saved["trainers"][0]["per_case"] == report.results[0].evaluation.per_case
    assert saved["trainers"][1]["dice_pooled"] == report.results[1].evaluation.dice_pooled
    assert saved["trainers"][0]["final_nu"] == 2.25 and saved["trainers"][1]["final_nu"] is None
    gap = report.results[0].evaluation.dice_pooled - report.results[1].evaluation.dice_pooled
    assert f"pooled Dice {gap:+.4f}" in markdown
    assert not list(paths.folder.glob(".*tmp"))  # no temporary files left


def test_report_shows_missing_dice_as_not_available(tmp_path: Path) -> None:
    report = _run(tmp_path)
    report.results[1].evaluation.per_case[TEST_CASES[0]] = math.nan
    markdown = rp.render_markdown(rp.report_blocks(report))
    assert f"| {TEST_CASES[0]} | {report.results[0].evaluation.per_case[TEST_CASES[0]]:.4f} | n/a |" in markdown


def test_grid_shows_first_cases_by_id_and_corrupted_training_cases_kind_by_kind(tmp_path: Path) -> None:
    report = _run(tmp_path)
    assert rp.cases_for_grid(report) == TEST_CASES[:2]
    assert rp.noisy_examples(report.data, 4) == [("ISIC_0000001", "dilate"), ("ISIC_0000003", "erode"),
                                                 ("ISIC_0000004", "affine"), ("ISIC_0000005", "dilate")]


def test_grid_fails_clearly_when_a_prediction_is_missing(tmp_path: Path) -> None:
    report = _run(tmp_path)
    (report.results[1].predictions / f"{TEST_CASES[0]}.png").unlink()
    with pytest.raises(RuntimeError, match="cannot read segmentation"):
        rp.plot_cases(report, tmp_path / "cases.png")
    assert not (tmp_path / "cases.png").exists()


def test_html_escapes_text_and_renders_code_spans() -> None:
    blocks = [("h1", "a <b> & c"), ("p", "use `x < y`"), ("table", ["k"], [["`v`"]]), ("ul", ["i"])]
    html = rp.render_html(blocks)
    assert "<h1>a &lt;b&gt; &amp; c</h1>" in html and "<code>x &lt; y</code>" in html
    assert "<td><code>v</code></td>" in html and "<li>i</li>" in html
    assert rp.render_markdown(blocks).startswith("# a <b> & c\n\nuse `x < y`\n\n| k |\n|---|\n| `v` |")
