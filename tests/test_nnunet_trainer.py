"""nnUNetTrainerTLoss in process on tiny preprocessed datasets: wiring, checkpoints, logging, variants, 3D, regions."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from tloss_nnunet.nnunet import (
    NnUNetTLoss,
    nnUNetTrainerTLoss,
    nnUNetTrainerTLoss_nuPlateau,
    nnUNetTrainerTLoss_tiny,
)
from tloss_nnunet.nnunet.nu_plateau import ScaledPolyLRScheduler
from tloss_nnunet.nnunet.variants import (
    nnUNetTrainerTLoss_Adam1en3,
    nnUNetTrainerTLoss_cap20,
    nnUNetTrainerTLoss_relative,
)
from tloss_nnunet.repro.inprocess import make_trainer, plan_and_preprocess_in_process
from tloss_nnunet.repro.nnunet_env import nnunet_env
from tloss_nnunet.repro.synthetic_datasets import write_synthetic_dataset

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
DATASETS = {"2d": (611, "2d", 8, 32), "3d": (612, "3d_fullres", 6, 24), "regions_ignore": (613, "2d", 8, 32)}
FINGERPRINT_SAMPLES = 10**6  # nnU-Net's 10^8 cost ~20 CPU-s per tiny dataset; its statistics are not tested here


@pytest.fixture(scope="module")
def nnunet_dirs(tmp_path_factory):
    env = nnunet_env(tmp_path_factory.mktemp("nnunet_inprocess"), base={"nnUNet_n_proc_DA": "0",
                                                                        "nnUNet_def_n_proc": "1"})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield {key: Path(value) for key, value in env.items() if key in NNUNET_FOLDERS}


@pytest.fixture(scope="module")
def prepared(nnunet_dirs):
    """Lazily write + preprocess each tiny dataset once per module; returns a function kind -> (id, config)."""
    done = {}

    def get(kind: str) -> tuple[int, str]:
        if kind not in done:
            dataset_id, configuration, n, size = DATASETS[kind]
            write_synthetic_dataset(str(nnunet_dirs["nnUNet_raw"]), dataset_id, kind, num_train=n, num_test=0,
                                    size=size)
            plan_and_preprocess_in_process(dataset_id, (configuration,), foreground_samples=FINGERPRINT_SAMPLES)
            done[kind] = (dataset_id, configuration)
        return done[kind]

    return get


def _started(trainer_class, dataset_id, configuration, continue_training=False):
    trainer = make_trainer(trainer_class, dataset_id, configuration, 0, torch.device("cpu"),
                           continue_training=continue_training)
    trainer.on_train_start()
    return trainer


def _tloss_chain(trainer) -> NnUNetTLoss:
    return trainer.loss.loss if trainer.enable_deep_supervision else trainer.loss


def test_wiring_one_tloss_separate_nu_optimiser(prepared):
    trainer = make_trainer(nnUNetTrainerTLoss, *prepared("2d"), 0)
    trainer.initialize()
    assert _tloss_chain(trainer).tloss is trainer.tloss
    network_params = {id(p) for p in trainer.network.parameters()}
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == network_params
    assert trainer.nu_optimizer.param_groups[0]["params"] == [trainer.tloss.log_nu]
    assert trainer.nu_optimizer.param_groups[0]["weight_decay"] == 0
    trainer.lr_scheduler.step(500)  # the poly schedule halves the network lr ...
    assert trainer.optimizer.param_groups[0]["lr"] < trainer.initial_lr
    assert trainer.nu_optimizer.param_groups[0]["lr"] == trainer.nu_lr  # ... and never touches nu's
    assert trainer.loss.weight_factors[-1] == 0 and trainer.loss.weight_factors[0] > trainer.loss.weight_factors[1]
    assert "nu" in trainer.logger.local_logger.my_fantastic_logging


def test_checkpoint_round_trip_is_exact(prepared, tmp_path):
    dataset_id, configuration = prepared("2d")
    trainer = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration)
    trainer.on_epoch_start()
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(next(trainer.dataloader_train)) for _ in range(3)]
    trainer.on_train_epoch_end(outputs)
    assert trainer.tloss.nu != pytest.approx(1.0, abs=1e-4)  # nu moved
    ours, stock = str(tmp_path / "ours.pth"), str(tmp_path / "stock.pth")
    trainer.save_checkpoint(ours)
    nnUNetTrainer.save_checkpoint(trainer, stock)
    saved = torch.load(ours, map_location="cpu", weights_only=False)
    stock_keys = set(torch.load(stock, map_location="cpu", weights_only=False))
    assert set(saved) == stock_keys | {"tloss_state"}  # every stock key, plus ours
    assert saved["trainer_name"] == "nnUNetTrainerTLoss_tiny"
    assert saved["logging"]["nu"] == [trainer.tloss.nu]

    resumed = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration, continue_training=True)
    resumed.load_checkpoint(ours)
    assert torch.equal(resumed.tloss.log_nu.detach(), trainer.tloss.log_nu.detach())
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(resumed.nu_optimizer.state_dict()["state"][0][key],
                           trainer.nu_optimizer.state_dict()["state"][0][key])
    assert resumed.logger.get_value("nu", step=None) == [trainer.tloss.nu]
    # The same batch from both states gives the same next nu: training continues exactly.
    batch = next(trainer.dataloader_train)
    trainer.train_step(copy.deepcopy(batch))
    resumed.train_step(copy.deepcopy(batch))
    assert torch.equal(resumed.tloss.log_nu.detach(), trainer.tloss.log_nu.detach())

    # nu is saved once (log nu in the loss state dict). The previous version's entry, which also held the
    # natural nu (and, before the label audit, no lambda), resumes to the same state.
    assert set(saved["tloss_state"]) == {"loss", "nu_optimizer", "log_precision"}
    previous = {k: v for k, v in saved["tloss_state"].items() if k != "log_precision"}
    previous["nu"] = math.exp(float(previous["loss"]["log_nu"])) + 1e-8
    torch.save(dict(saved, tloss_state=previous), str(tmp_path / "previous.pth"))
    from_previous = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration, continue_training=True)
    from_previous.load_checkpoint(str(tmp_path / "previous.pth"))
    assert torch.equal(from_previous.tloss.log_nu.detach(), saved["tloss_state"]["loss"]["log_nu"])
    assert from_previous.nu_optimizer.state_dict()["state"][0]["step"] == saved["tloss_state"]["nu_optimizer"][
        "state"][0]["step"]

    # An older checkpoint without tloss_state (and without the nu log) still loads, with a warning.
    del saved["tloss_state"], saved["logging"]["nu"]
    old = str(tmp_path / "old.pth")
    torch.save(saved, old)
    legacy = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration, continue_training=True)
    with pytest.warns(UserWarning, match="no 'tloss_state'"):
        legacy.load_checkpoint(old)
    assert legacy.tloss.nu == pytest.approx(legacy.tloss_nu_init)
    assert [math.isnan(v) for v in legacy.logger.get_value("nu", step=None)] == [True]
    legacy.on_epoch_start()
    legacy.on_train_epoch_start()
    legacy.on_train_epoch_end([legacy.train_step(next(legacy.dataloader_train))])  # logging works after load


class _FastPlateau(nnUNetTrainerTLoss_nuPlateau):
    # Record every iteration and call any change below 1.0 a plateau, so the rule fires within a few steps.
    nu_plateau_kwargs = {"record_every": 1, "patience": 6, "window": 5, "threshold": 1.0}


def test_nu_plateau_drop_survives_schedule_and_checkpoint(prepared, tmp_path):
    dataset_id, configuration = prepared("2d")
    trainer = _started(_FastPlateau, dataset_id, configuration)
    assert isinstance(trainer.lr_scheduler, ScaledPolyLRScheduler)
    trainer.on_train_epoch_start()
    poly = trainer.optimizer.param_groups[0]["lr"]
    for _ in range(6):
        trainer.train_step(next(trainer.dataloader_train))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(poly * 0.1)
    assert trainer.nu_optimizer.param_groups[0]["lr"] == trainer.nu_lr  # nu's lr never decays
    trainer.lr_scheduler.step(1)  # next epoch: poly rewrites the lr, the drop stays
    expected = trainer.initial_lr * (1 - 1 / trainer.num_epochs) ** 0.9 * 0.1
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    path = str(tmp_path / "plateau.pth")
    trainer.save_checkpoint(path)
    resumed = _started(_FastPlateau, dataset_id, configuration, continue_training=True)
    resumed.load_checkpoint(path)
    resumed.lr_scheduler.step(1)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    assert resumed.nu_plateau.state_dict() == trainer.nu_plateau.state_dict()


class _RecordEveryStep(nnUNetTrainerTLoss_nuPlateau):
    nu_plateau_kwargs = {"record_every": 1, "patience": 100, "window": 5, "threshold": 1e-4}


def test_nu_plateau_records_log_nu(prepared):
    trainer = _started(_RecordEveryStep, *prepared("2d"))
    trainer.on_train_epoch_start()
    log_nus = []
    for _ in range(2):
        trainer.train_step(next(trainer.dataloader_train))
        log_nus.append(float(trainer.tloss.log_nu.detach()))
    assert trainer.nu_plateau.records == log_nus  # the released code's raw parameter, not nu


def test_load_checkpoint_accepts_a_dict(prepared, tmp_path):
    dataset_id, configuration = prepared("2d")
    trainer = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration)
    trainer.on_train_epoch_start()
    trainer.train_step(next(trainer.dataloader_train))
    path = str(tmp_path / "dict.pth")
    trainer.save_checkpoint(path)
    resumed = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration, continue_training=True)
    resumed.load_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    assert torch.equal(resumed.tloss.log_nu.detach(), trainer.tloss.log_nu.detach())
    assert resumed.current_epoch == trainer.current_epoch + 1
    with pytest.raises(TypeError, match="checkpoint path or dict"):
        resumed.load_checkpoint(42)


@pytest.mark.parametrize("trainer_class, cap, optimizer, lr, plateau", [
    (nnUNetTrainerTLoss, 100.0, torch.optim.SGD, 1e-2, False),  # the default chosen by the memorisation study
    (nnUNetTrainerTLoss_relative, 1.0, torch.optim.SGD, 1e-2, False),
    (nnUNetTrainerTLoss_cap20, 20.0, torch.optim.SGD, 1e-2, False),
    (nnUNetTrainerTLoss_nuPlateau, None, torch.optim.SGD, 1e-2, True),
    (nnUNetTrainerTLoss_Adam1en3, None, torch.optim.Adam, 1e-3, False),
])
def test_recipe_variants(prepared, trainer_class, cap, optimizer, lr, plateau):
    trainer = make_trainer(trainer_class, *prepared("2d"), 0)
    trainer.initialize()
    assert trainer.tloss.mean_weight_cap == cap
    assert type(trainer.optimizer) is optimizer and trainer.optimizer.param_groups[0]["lr"] == lr
    assert (trainer.nu_plateau is not None) is plateau
    assert trainer.nu_optimizer.param_groups[0]["params"] == [trainer.tloss.log_nu]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["3d", "regions_ignore"])
def test_training_steps_on_3d_and_regions_with_ignore(prepared, kind):
    dataset_id, configuration = prepared(kind)
    trainer = _started(nnUNetTrainerTLoss_tiny, dataset_id, configuration)
    assert trainer.label_manager.has_regions == (kind == "regions_ignore")
    assert trainer.tloss.sigmoid == (kind == "regions_ignore")
    if kind == "regions_ignore":
        assert trainer.label_manager.ignore_label == 3
    trainer.on_train_epoch_start()
    log_nus, losses = [float(trainer.tloss.log_nu)], []
    for _ in range(3):
        losses.append(float(trainer.train_step(next(trainer.dataloader_train))["loss"]))
        log_nus.append(float(trainer.tloss.log_nu))
    assert all(math.isfinite(v) for v in losses)
    # Every step moves log nu (Adam's step is ~lr whatever the gradient's size; the net change over three steps
    # can be tiny when their signs alternate, so each step is checked, not the sum).
    assert all(after != before for before, after in zip(log_nus, log_nus[1:])), log_nus
    trainer.on_validation_epoch_start()
    with torch.no_grad():
        val = trainer.validation_step(next(trainer.dataloader_val))
    assert math.isfinite(float(val["loss"]))
    assert os.path.isfile(os.path.join(trainer.output_folder_base, "plans.json"))


def test_fingerprint_extractor_draws_the_asked_number_of_foreground_samples(nnunet_dirs):
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    from tloss_nnunet.repro.inprocess import fingerprint_extractor

    write_synthetic_dataset(str(nnunet_dirs["nnUNet_raw"]), 614, "2d", num_train=2, num_test=0, size=16)
    assert fingerprint_extractor(None) is DatasetFingerprintExtractor
    extractor = fingerprint_extractor(1000)(614, 1)
    assert isinstance(extractor, DatasetFingerprintExtractor)
    assert extractor.num_foreground_voxels_for_intensitystats == 1000
    assert DatasetFingerprintExtractor(614, 1).num_foreground_voxels_for_intensitystats == 10e7  # nnU-Net's own
    with pytest.raises(ValueError, match="at least 1"):
        fingerprint_extractor(0)
