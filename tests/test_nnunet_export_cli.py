"""``tloss-nnunet ext-path`` and ``export-stock`` on hand-made model folders (no training needed)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import pytest
import torch

from tloss_nnunet.cli import main
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet import ext_trainer_path
from tloss_nnunet.nnunet.export import KNOWN_TLOSS_TRAINERS, export_stock_model

MODEL = "nnUNetTrainerTLoss_5epochs__nnUNetPlans__2d"


def _model_folder(root, trainer: str = "nnUNetTrainerTLoss_5epochs", folds=(0, 1)) -> str:
    folder = root / "Dataset777_X" / f"{trainer}__nnUNetPlans__2d"
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps({"name": name}))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        for kind in ("final", "best"):
            torch.save({
                "network_weights": {"w": torch.full((2, 2), float(fold))},
                "trainer_name": trainer,
                "init_args": {"configuration": "2d"},
                "inference_allowed_mirroring_axes": (0, 1),
                "logging": {"train_losses": [1.0], "nu": [1.5]},
                "tloss_state": {"loss": {"log_nu": torch.tensor(math.log(1.5))}, "nu_optimizer": {}},
            }, folder / f"fold_{fold}" / f"checkpoint_{kind}.pth")
    return str(folder)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_ext_path_prints_the_shim_folder():
    code, out, _ = _cli(["ext-path"])
    assert code == 0 and out.strip() == ext_trainer_path()
    assert sorted(os.listdir(out.strip())) in (["tloss_nnunet_ext_trainers.py"],
                                              ["__pycache__", "tloss_nnunet_ext_trainers.py"])


def test_one_list_of_trainers_is_what_the_modules_the_package_the_shim_and_export_hold(monkeypatch):
    import contextlib
    import io

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    import tloss_nnunet.nnunet as package
    from tloss_nnunet.nnunet import variants
    from tloss_nnunet.nnunet.ext_trainer import tloss_nnunet_ext_trainers as shim
    from tloss_nnunet.nnunet.trainer_names import TRAINER_NAMES, VARIANT_NAMES

    defined = [name for name, obj in vars(variants).items()
               if isinstance(obj, type) and obj.__module__ == variants.__name__]
    assert defined == list(VARIANT_NAMES) == variants.__all__
    # What nnU-Net's lookup can find in the shim: exactly the list, nothing of the reproduction kit's.
    findable = {name for name, obj in vars(shim).items() if isinstance(obj, type) and issubclass(obj, nnUNetTrainer)}
    assert findable == set(TRAINER_NAMES) == KNOWN_TLOSS_TRAINERS and shim.__all__ == list(TRAINER_NAMES)
    assert set(TRAINER_NAMES) <= set(package.__all__)
    monkeypatch.setenv("nnUNet_extTrainer", ext_trainer_path())
    for name in TRAINER_NAMES:
        with contextlib.redirect_stdout(io.StringIO()):
            found = recursive_find_trainer_class_by_name(name)
        assert found is getattr(package, name) is getattr(shim, name)


def test_kit_tloss_trainers_found_by_nnunet_export_without_force(tmp_path, monkeypatch):
    from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
    from tloss_nnunet.repro import trainer_search_path
    from tloss_nnunet.repro.ext_trainer import tloss_nnunet_repro_trainers as kit_shim

    monkeypatch.setenv("nnUNet_extTrainer", trainer_search_path())
    kit_tloss = [name for name in kit_shim.__all__ if issubclass(getattr(kit_shim, name), nnUNetTrainerTLoss)]
    assert "nnUNetTrainerTLoss_demo" in kit_tloss  # (the study trainers are T-Loss ones too)
    model = _model_folder(tmp_path, trainer="nnUNetTrainerTLoss_demo", folds=(0,))
    result = export_stock_model(model, str(tmp_path / "out"), progress=False)
    assert result.source_trainer == "nnUNetTrainerTLoss_demo" and len(result.checkpoints) == 2
    # A stock-loss trainer of the kit is found too, but it is no T-Loss trainer: --force stays required.
    stock = _model_folder(tmp_path / "stock", trainer="nnUNetTrainerGCELoss_tiny", folds=(0,))
    with pytest.raises(InputError, match="--force"):
        export_stock_model(stock, str(tmp_path / "out2"), progress=False)


def test_export_rewrites_trainer_and_drops_tloss_state(tmp_path):
    model = _model_folder(tmp_path)
    out = tmp_path / "colleague" / "Dataset777_X"
    code, stdout, _ = _cli(["export-stock", model, str(out), "--quiet"])
    assert code == 0 and "exported 4 checkpoint(s)" in stdout
    target = out / "nnUNetTrainer__nnUNetPlans__2d"
    assert sorted(p.name for p in out.iterdir()) == [target.name]  # no staging folder left behind
    for fold in (0, 1):
        ckpt = torch.load(target / f"fold_{fold}" / "checkpoint_final.pth", weights_only=False)
        assert ckpt["trainer_name"] == "nnUNetTrainer"
        assert "tloss_state" not in ckpt and "nu" not in ckpt["logging"]
        assert torch.equal(ckpt["network_weights"]["w"], torch.full((2, 2), float(fold)))
    assert json.loads((target / "plans.json").read_text()) == {"name": "plans.json"}
    provenance = json.loads((target / "tloss_export.json").read_text())
    assert provenance["source_trainer"] == "nnUNetTrainerTLoss_5epochs"
    assert provenance["checkpoints"][os.path.join("fold_0", "checkpoint_final.pth")]["nu"] == pytest.approx(1.5)


def test_existing_export_needs_overwrite(tmp_path):
    model = _model_folder(tmp_path)
    out = tmp_path / "out"
    export_stock_model(model, str(out), progress=False)
    code, _, err = _cli(["export-stock", model, str(out), "--quiet"])
    assert code == 2 and "--overwrite" in err
    stale = out / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0" / "checkpoint_best.pth"
    stale.write_bytes(b"old")
    assert _cli(["export-stock", model, str(out), "--quiet", "--overwrite"])[0] == 2  # changed: not replaced
    assert stale.read_bytes() == b"old"
    stale.unlink()
    export_stock_model(model, str(out), overwrite=True, progress=False)  # the export writes it again
    assert torch.load(stale, weights_only=False)["trainer_name"] == "nnUNetTrainer"
    assert sorted(p.name for p in out.iterdir()) == ["nnUNetTrainer__nnUNetPlans__2d"]


def test_foreign_trainer_needs_force(tmp_path):
    model = _model_folder(tmp_path, trainer="MyTrainerWithOwnNetwork")
    with pytest.raises(InputError, match="--force"):
        export_stock_model(model, str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out" / "nnUNetTrainer__nnUNetPlans__2d").exists()
    assert not (tmp_path / "out").exists()  # nor the staging folder, nor the output folder it created
    result = export_stock_model(model, str(tmp_path / "out"), force=True, progress=False)
    assert len(result.checkpoints) == 4


@pytest.mark.parametrize("problem, message", [
    ("missing", "does not exist"),
    ("bad_name", "TRAINER__PLANS__CONFIGURATION"),
    ("no_checkpoints", "no fold_"),
    ("no_plans", "missing plans.json"),
])
def test_bad_model_folders_are_reported(tmp_path, problem, message):
    if problem == "missing":
        model = str(tmp_path / "nope__nnUNetPlans__2d")
    elif problem == "bad_name":
        model = str(tmp_path / "just_a_folder")
        os.makedirs(model)
    else:
        model = _model_folder(tmp_path, folds=() if problem == "no_checkpoints" else (0,))
        if problem == "no_plans":
            os.remove(os.path.join(model, "plans.json"))
    code, _, err = _cli(["export-stock", model, str(tmp_path / "out"), "--quiet"])
    assert code == 2 and message in err and err.startswith("tloss-nnunet export-stock: error:")
