"""Which fold scores each case, and the line ``suspects`` prints about cases no trained fold held out (no training)."""

from __future__ import annotations

from pathlib import Path

from tloss_nnunet.audit.model import AuditedModel, assign_folds, not_held_out_note
from tloss_nnunet.audit.report import write_markdown
from tloss_nnunet.audit.scores import CaseScores

CASES = [f"case_{i}" for i in range(8)]
#: nnU-Net-style 4-fold split: fold k holds out cases k and k + 4.
FOUR_FOLDS = [{"train": [c for c in CASES if c not in (CASES[k], CASES[k + 4])], "val": [CASES[k], CASES[k + 4]]}
              for k in range(4)]


def _model(splits: list[dict] | None, folds: tuple[int, ...]) -> AuditedModel:
    return AuditedModel(folder=Path("/models/Dataset501_X/T__P__2d"), dataset_name="Dataset501_X", trainer="T",
                        configuration="2d", checkpoint_name="checkpoint_final.pth", folds=folds, dataset_json={},
                        cases={c: {} for c in CASES}, splits=splits)


def _note(splits: list[dict] | None, folds: tuple[int, ...]) -> str:
    return not_held_out_note(assign_folds(_model(splits, folds)), splits, folds)


def test_every_fold_trained_holds_out_every_case_and_says_nothing():
    assert all(a.held_out for a in assign_folds(_model(FOUR_FOLDS, (0, 1, 2, 3))))
    assert _note(FOUR_FOLDS, (0, 1, 2, 3)) == ""


def test_untrained_folds_are_named_with_the_count_and_five_cases():
    note = _note(FOUR_FOLDS, (0,))
    assert note.startswith("6 of 8 training case(s) were held out by no trained fold "
                           "(case_1, case_2, case_3, case_5, case_6, ...)")
    assert "train fold(s) 1, 2, 3 of the 4-fold split: see docs/how-to/audit-labels.md" in note
    assert "--folds" not in note
    assert "(case_2, case_6)" in _note(FOUR_FOLDS, (0, 1, 3))  # two cases: no ellipsis


def test_a_one_split_file_asks_for_a_k_fold_split():
    # what `convert isic2017` writes by default: fold 0 trains on every training case; fold 1 was trained on
    # nnU-Net's random split, which the file does not hold
    official = [{"train": CASES[:6], "val": CASES[6:]}]
    note = _note(official, (0, 1))
    assert note.startswith("6 of 8 training case(s)")
    assert "6 of them are in no fold's validation set of splits_final.json: write a K-fold split" in note
    assert "--folds 5" in note and "train fold(s)" not in note


def test_no_splits_file_at_all():
    assert "no splits_final.json was found: write a K-fold split" in _note(None, (0,))


def test_the_markdown_carries_the_count_and_the_note(tmp_path):
    assignments = assign_folds(_model(FOUR_FOLDS, (0,)))
    ranked = [CaseScores(a.case, 0.1, 0.2, 100, extra={"fold": a.fold, "held_out": a.held_out})
              for a in assignments]
    note = not_held_out_note(assignments, FOUR_FOLDS, (0,))
    write_markdown(tmp_path / "suspects.md", ranked, model="m", rank_by="mse",
                   folds={0: {"nu": None, "cases": 8, "held_out": 2}}, top_k=3, not_held_out=note)
    text = (tmp_path / "suspects.md").read_text()
    assert "**6 case(s) were scored by a model that trained on them.**" in text and note in text
