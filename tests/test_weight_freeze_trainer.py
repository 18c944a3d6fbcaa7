"""nnUNetTrainerTLoss_freeze in process on a tiny preprocessed 2D dataset: nnU-Net's batches with their keys,
the freeze, its checkpoint round trip, logging, and nnU-Net's trainer lookup."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tloss_nnunet.nnunet import ext_trainer_path, nnUNetTrainerTLoss_tiny
from tloss_nnunet.nnunet.early_learning import EarlyLearningDetector
from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_freeze
from tloss_nnunet.nnunet.weight_cap import CappedWeightTLoss
from tloss_nnunet.repro.inprocess import make_trainer, plan_and_preprocess_in_process
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

DATASET_ID = 621


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    env = nnunet_env(tmp_path_factory.mktemp("nnunet_freeze"), base={"nnUNet_n_proc_DA": "0",
                                                                     "nnUNet_def_n_proc": "1"})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        write_synthetic_dataset(env["nnUNet_raw"], DATASET_ID, "2d", num_train=8, num_test=0, size=32)
        plan_and_preprocess_in_process(DATASET_ID, ("2d",), foreground_samples=10**6)  # nnU-Net's 10^8: ~20 CPU-s
        yield DATASET_ID, "2d"


class _Freeze(nnUNetTrainerTLoss_freeze):
    """Short epochs, and a fit that says "flat" so that the rule fires at its first test (epoch 4)."""

    def initialize(self):
        super().initialize()
        self.num_iterations_per_epoch = 2
        self.weight_freeze.detector = EarlyLearningDetector(fit=lambda epochs, agreement: (1.0, 5.0, 1.0))


def _started(dataset, trainer_class=_Freeze, continue_training=False):
    trainer = make_trainer(trainer_class, *dataset, 0, torch.device("cpu"), continue_training=continue_training)
    trainer.on_train_start()
    return trainer


def _epoch(trainer) -> None:
    trainer.on_epoch_start()
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(next(trainer.dataloader_train)) for _ in range(trainer.num_iterations_per_epoch)]
    trainer.on_train_epoch_end(outputs)
    trainer.current_epoch += 1  # what on_epoch_end does (after validation, which these tests skip)


def test_train_steps_on_nnunets_batches_freeze_log_and_resume_exactly(dataset, tmp_path):
    trainer = _started(dataset)
    assert isinstance(trainer.loss, CappedWeightTLoss) and trainer.loss.tloss is trainer.tloss
    batch = next(trainer.dataloader_train)
    assert "keys" in batch
    with pytest.raises(RuntimeError, match="'keys'"):
        trainer.train_step({k: v for k, v in batch.items() if k != "keys"})
    for epoch in range(4):
        _epoch(trainer)
        freeze = trainer.weight_freeze
        assert freeze.steps_in_epoch == 0 and len(freeze.detector.history) == epoch + 1
        assert freeze.frozen == (epoch == 3)
    assert freeze.detector.fired_epoch == 4
    seen = set(freeze.last_weight)
    assert seen and seen <= set(trainer.do_split()[0])  # nnU-Net's identifiers of the fold's training cases
    assert freeze.caps == freeze.last_weight and all(w >= 1 for w in freeze.caps.values())
    logged = list(trainer.logger.get_value("train_agreement", step=None))
    assert len(logged) == 4 and all(0 <= a <= 1 for a in logged) and logged == freeze.detector.history
    assert len(trainer.logger.get_value("weight_capped", step=None)) == 4
    nu_before = float(trainer.tloss.log_nu.detach())
    _epoch(trainer)  # after the freeze: nu keeps learning
    assert float(trainer.tloss.log_nu.detach()) != nu_before

    path = str(tmp_path / "freeze.pth")
    trainer.save_checkpoint(path)
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert saved["tloss_state"]["weight_freeze"]["caps"] == freeze.caps
    resumed = _started(dataset, continue_training=True)
    resumed.load_checkpoint(path)
    assert resumed.weight_freeze.state_dict() == freeze.state_dict()
    assert resumed.logger.get_value("train_agreement", step=None) == logged + [freeze.detector.history[-1]] \
        == freeze.detector.history
    batch = next(trainer.dataloader_train)  # the same batch from both states: the same step
    trainer.train_step(copy.deepcopy(batch))
    resumed.train_step(copy.deepcopy(batch))
    assert resumed.weight_freeze.state_dict() == trainer.weight_freeze.state_dict()
    assert torch.equal(resumed.tloss.log_nu.detach(), trainer.tloss.log_nu.detach())
    for a, b in zip(resumed.network.parameters(), trainer.network.parameters()):
        assert torch.equal(a, b)


def test_a_default_trainer_checkpoint_resumes_with_a_warning(dataset, tmp_path):
    default = _started(dataset, nnUNetTrainerTLoss_tiny)
    default.on_train_epoch_start()
    default.train_step(next(default.dataloader_train))
    path = str(tmp_path / "default.pth")
    default.save_checkpoint(path)
    resumed = _started(dataset, continue_training=True)
    with pytest.warns(UserWarning, match="per-case weight state"):
        resumed.load_checkpoint(path)
    assert not resumed.weight_freeze.frozen and resumed.weight_freeze.detector.history == []
    assert [math.isnan(v) for v in resumed.logger.get_value("train_agreement", step=None)] == [True]
    _epoch(resumed)  # logging and training work after the load


def test_nnunet_finds_the_variant_through_the_shim(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", ext_trainer_path())
    found = recursive_find_trainer_class_by_name("nnUNetTrainerTLoss_freeze")
    assert found.__name__ == "nnUNetTrainerTLoss_freeze"
