"""The stock nnU-Net v2 commands on CPU with the T-Loss trainer found through ``nnUNet_extTrainer``.

tiny 2D dataset -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train -tr nnUNetTrainerTLoss_tiny -> --c (nu restored
exactly) -> nnUNetv2_predict -> nnUNetv2_evaluate_folder; then ``tloss-nnunet export-stock`` and stock
nnUNetv2_predict WITHOUT the plugin on the export (identical predictions). ``--val`` goes through the same
``load_checkpoint`` as ``--c`` and is not run again here (each nnU-Net command costs ~20 s on 2 cores).
``-num_gpus`` cannot run here: nnU-Net forces CUDA + NCCL for it (the DDP step logic is tested with gloo in
test_nnunet_ddp.py). The ``tloss-nnunet`` commands run in process through ``tloss_nnunet.cli.main``; the trained model
is the session's (conftest.py, nnunet_commands.py).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from nnunet_commands import DATASET_ID, TRAINER, private_results
from nnunet_commands import cli as _cli
from nnunet_commands import run as _run
from PIL import Image

from tloss_nnunet.nnunet.checkpoint_keys import LOG_NU_KEY, TLOSS_STATE_KEY, TLossState

pytestmark = [pytest.mark.slow]


def _load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_ext_path_holds_exactly_one_shim_module(trained_tloss_model):
    assert os.path.isabs(trained_tloss_model["ext"])
    assert [n for n in os.listdir(trained_tloss_model["ext"])
            if not n.startswith("__")] == ["tloss_nnunet_ext_trainers.py"]


def test_training_writes_nu_everywhere(trained_tloss_model):
    fold = os.path.join(trained_tloss_model["model"], "fold_0")
    checkpoint = _load(os.path.join(fold, "checkpoint_final.pth"))
    assert checkpoint["trainer_name"] == TRAINER
    assert set(checkpoint[TLOSS_STATE_KEY]) == {"loss", "nu_optimizer", "log_precision"}  # nu once, as log nu
    state = TLossState.from_dict(checkpoint[TLOSS_STATE_KEY])
    assert state.nu != pytest.approx(1.0, abs=1e-4)  # it was learned
    assert len(checkpoint["logging"]["nu"]) == 2 and checkpoint["logging"]["nu"][-1] == pytest.approx(state.nu)
    with Image.open(os.path.join(fold, "progress.png")) as image:
        assert image.height > 5400  # nnU-Net's 3 panels (5400 px) + the nu panel
    assert os.path.isfile(os.path.join(fold, "validation", "summary.json"))


def test_continue_restores_nu_exactly(trained_tloss_model, tmp_path):
    model = private_results(trained_tloss_model, tmp_path)  # --c re-saves the checkpoints: not the shared model's
    fold = os.path.join(model["model"], "fold_0")
    before = TLossState.from_dict(_load(os.path.join(fold, "checkpoint_final.pth"))[TLOSS_STATE_KEY])
    result = _run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-device", "cpu", "--c"],
                  model["train_env"])
    assert "T-Loss state restored" in result.stdout
    after = TLossState.from_dict(_load(os.path.join(fold, "checkpoint_final.pth"))[TLOSS_STATE_KEY])
    # --c on a finished run trains 0 epochs and re-saves: anything not restored would be back at its initial value.
    assert torch.equal(after.loss[LOG_NU_KEY], before.loss[LOG_NU_KEY])
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(after.nu_optimizer["state"][0][key], before.nu_optimizer["state"][0][key])


def _predict(trained_tloss_model, env: dict, trainer: str, out: str) -> dict[str, np.ndarray]:
    _run(["nnUNetv2_predict", "-i", os.path.join(trained_tloss_model["raw"], "imagesTs"), "-o", out,
          "-d", str(DATASET_ID), "-c", "2d", "-f", "0", "-tr", trainer,
          "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    return {n: np.asarray(Image.open(os.path.join(out, n))) for n in sorted(os.listdir(out)) if n.endswith(".png")}


def test_predict_evaluate_and_stock_export(trained_tloss_model, tmp_path):
    pred_dir = str(tmp_path / "pred")
    ours = _predict(trained_tloss_model, trained_tloss_model["train_env"], TRAINER, pred_dir)
    assert sorted(ours) == ["test_000.png", "test_001.png"]
    _run(["nnUNetv2_evaluate_folder", os.path.join(trained_tloss_model["raw"], "labelsTs"), pred_dir,
          "-djfile", os.path.join(trained_tloss_model["model"], "dataset.json"),
          "-pfile", os.path.join(trained_tloss_model["model"], "plans.json")], trained_tloss_model["env"])
    with open(os.path.join(pred_dir, "summary.json")) as f:
        summary = json.load(f)
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0 and len(summary["metric_per_case"]) == 2

    # A colleague's results folder, without the plugin: stock nnUNetTrainer predicts identically.
    colleague = tmp_path / "colleague_results"
    out_parent = colleague / os.path.basename(trained_tloss_model["raw"])
    assert "exported 2 checkpoint(s)" in _cli(["export-stock", trained_tloss_model["model"], str(out_parent),
                                              "--quiet"])
    exported = out_parent / "nnUNetTrainer__nnUNetPlans__2d"
    checkpoint = _load(str(exported / "fold_0" / "checkpoint_final.pth"))
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and "tloss_state" not in checkpoint
    stock_env = dict(trained_tloss_model["env"], nnUNet_results=str(colleague))
    assert "nnUNet_extTrainer" not in stock_env
    stock = _predict(trained_tloss_model, stock_env, "nnUNetTrainer", str(tmp_path / "pred_stock"))
    assert sorted(stock) == sorted(ours)
    for name in ours:
        np.testing.assert_array_equal(stock[name], ours[name])
