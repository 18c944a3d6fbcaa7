"""``export-stock`` never replaces what it did not write (issue 14, defects 1 and 5): a trained model of the
export's name, an export changed since, other files. Refusals are one line and leave no folder behind."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from tloss_nnunet.cli import main

STOCK = "nnUNetTrainer__nnUNetPlans__2d"


def _model(root: Path, trainer: str = "nnUNetTrainerTLoss_5epochs") -> Path:
    folder = root / "Dataset777_X" / f"{trainer}__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        (folder / name).write_text(json.dumps({"name": name}))
    for kind in ("final", "best"):
        torch.save({"network_weights": {"w": torch.ones(2)}, "trainer_name": trainer,
                    "init_args": {"configuration": "2d"}, "tloss_state": {"nu": 1.5}},
                   folder / "fold_0" / f"checkpoint_{kind}.pth")
    return folder


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["export-stock", *argv, "--quiet"])
    return code, err.getvalue()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def trained_baseline(tmp_path: Path) -> Path:
    """A stock nnU-Net model trained where the export would go (the README's baseline)."""
    baseline = _model(tmp_path / "results", trainer="nnUNetTrainer").parent
    (baseline / STOCK / "training_log.txt").write_text("epoch 0 ...")
    return baseline


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_trained_model_is_never_replaced(tmp_path, trained_baseline, overwrite):
    model = _model(tmp_path / "mine")
    before = _tree(trained_baseline)
    code, err = _cli(str(model), str(trained_baseline), *(["--overwrite"] if overwrite else []))
    assert code == 2 and err.count("\n") == 1
    assert "is a trained nnU-Net model, not an earlier export; export-stock never replaces it" in err
    assert _tree(trained_baseline) == before
    assert sorted(p.name for p in trained_baseline.iterdir()) == [STOCK]  # no staging folder left


def test_an_earlier_export_is_replaced_only_with_overwrite(tmp_path):
    model, out = _model(tmp_path / "mine"), tmp_path / "out"
    assert _cli(str(model), str(out))[0] == 0
    code, err = _cli(str(model), str(out))
    assert code == 2 and "is an earlier export; pass --overwrite to replace it" in err
    assert _cli(str(model), str(out), "--overwrite")[0] == 0
    marker = json.loads((out / STOCK / "tloss_export.json").read_text())
    assert marker["tool"] == "tloss-nnunet export-stock" and "fold_0/checkpoint_final.pth" in marker["files"]


@pytest.mark.parametrize("change", ["retrained", "added_log", "other_files"])
def test_a_changed_export_or_other_content_is_never_replaced(tmp_path, change):
    model, out = _model(tmp_path / "mine"), tmp_path / "out"
    target = out / STOCK
    if change == "other_files":
        target.mkdir(parents=True)
        (target / "notes.txt").write_text("mine")
        expected = "holds other files, not an earlier export; export-stock never replaces it"
    else:
        assert _cli(str(model), str(out))[0] == 0
        if change == "retrained":  # nnUNetv2_train -tr nnUNetTrainer --c continued in the export
            torch.save({"network_weights": {"w": torch.zeros(2)}}, target / "fold_0" / "checkpoint_final.pth")
        else:
            (target / "training_log_2024.txt").write_text("epoch 1")
        expected = "is an earlier export but changed since"
    before = _tree(out)
    code, err = _cli(str(model), str(out), "--overwrite")
    assert code == 2 and expected in err and "never replaces it" in err
    assert _tree(out) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_dict"])
def test_a_damaged_checkpoint_is_one_line_and_leaves_no_folder(tmp_path, damage):
    model = _model(tmp_path / "mine")
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    data = checkpoint.read_bytes()
    if damage == "not_a_dict":
        torch.save([1, 2, 3], checkpoint)
    else:
        checkpoint.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00" * 300, "empty": b""}[damage])
    out = tmp_path / "new" / "Dataset777_X"
    code, err = _cli(str(model), str(out))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(checkpoint) in err
    assert not (tmp_path / "new").exists()  # neither the output folder nor its new parent stays behind


def test_an_empty_target_folder_counts_as_new(tmp_path):
    model, out = _model(tmp_path / "mine"), tmp_path / "out"
    (out / STOCK).mkdir(parents=True)
    assert _cli(str(model), str(out))[0] == 0
    assert (out / STOCK / "fold_0" / "checkpoint_best.pth").is_file()
