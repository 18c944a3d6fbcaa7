"""The in-process engine: a real nnU-Net trainer, trained in this process on in-memory batches, evaluated as it goes.

The trainer object is the one ``nnUNetv2_train -tr <class>`` builds (plans, network, loss, optimisers, its
``train_step`` with clipping, the T-Loss's nu optimiser and plateau rule, deep supervision); only the data
feeding is the study's: batches of ``batch_size`` training cases drawn with a seeded generator (optionally
mirrored), with nnU-Net's own deep-supervision target downsampling, and nnU-Net's poly lr stepped once per
"epoch" of ``iterations_per_epoch`` iterations as ``on_train_epoch_start`` does. Feeding the arrays directly
keeps a 2000-iteration run at a few minutes on one CPU core and lets every run of a seed see the same batches.

Every ``log_every`` iterations the network (deep supervision off, eval mode) predicts all training and test
cases, and the run records (see :func:`evaluate`): the Dice of the corrupted training cases against their
noisy and their clean masks and the memorisation index M = Dice(noisy) - Dice(clean), the Dice on the clean
(uncorrupted) training cases, the clean-test Dice, nu, per-case MSE and the T-Loss's per-image weight
(nu + D) / (nu + S_b) averaged over corrupted and over clean cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tloss_nnunet.repro.nnunet_env import nnunet_env

from .arms import trainer_class, trainer_name
from .config import StudyConfig
from .data import load_split, load_training_and_test, prepare_family, training_case_ids, validation_split
from .grid import parse_setting
from .metrics import dice_mean, dice_pooled
from .store import machine_description

ENGINE = "nnunet-inprocess"

CONFIGURATION = "2d"
FOLD = 0


@dataclass(frozen=True)
class SettingData:
    """One noise setting as arrays: training images (N, 3, H, W) float32 with their given (noisy) and clean
    label maps (N, 1, H, W) int16, ``corrupted`` (N,) bool (label differs from the clean one), the clean test
    split, and optionally validation cases (V, 3, H, W) with their given (noisy) labels (V, 1, H, W) int16."""

    images: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    corrupted: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None

    @classmethod
    def load(cls, dataset_dir: Path, clean_dir: Path, validation: bool = False) -> SettingData:
        """The setting's arrays; with ``validation`` the training cases are split as nnU-Net's fold 0
        (:func:`~.data.validation_split`) and the validation part keeps its given labels."""
        if not validation:
            train, test, clean_labels, corrupted = load_training_and_test(dataset_dir, clean_dir)
            return cls(train.images, train.labels.astype(np.int16), clean_labels.astype(np.int16), corrupted,
                       test.images, test.labels.astype(np.int16))
        train_ids, val_ids = validation_split(training_case_ids(dataset_dir))
        train, test, clean_labels, corrupted = load_training_and_test(dataset_dir, clean_dir, train_ids)
        val = load_split(dataset_dir, "Tr", val_ids)
        return cls(train.images, train.labels.astype(np.int16), clean_labels.astype(np.int16), corrupted,
                   test.images, test.labels.astype(np.int16), val.images, val.labels.astype(np.int16))


def activate(work_dir: Path) -> None:
    """Point this process's nnU-Net at ``work_dir`` (:func:`~tloss_nnunet.repro.nnunet_env.nnunet_env`); before
    nnU-Net is first imported, which reads its folders then (the pool's workers inherit them)."""
    os.environ.update(nnunet_env(work_dir))


def plans_identifier(config: StudyConfig) -> str:
    return "nnUNetPlans_memo" + "-".join(str(f) for f in config.features)


def prepare(work_dir: Path, config: StudyConfig, **options: int) -> dict[str, Path]:
    """Write (or reuse) the dataset family, plan and preprocess its clean member with nnU-Net, and derive the
    study's plans (nnU-Net's, with encoder widths ``config.features``). Returns setting -> raw dataset folder.
    ``options``: ``release_seed`` / ``noise_seed`` / ``first_id`` of :func:`~.data.prepare_family`.

    Every run builds its trainer on the clean dataset's plans and preprocessed folder (the noisy members share
    its images; the labels a run trains on come from the arrays of :class:`SettingData`).
    """
    from tloss_nnunet.repro.inprocess import plan_and_preprocess_in_process
    from tloss_nnunet.repro.study_trainers import narrow_architecture

    family = prepare_family(Path(work_dir), config, verify=False, **options)
    clean_id, _ = family.dataset("clean")
    preprocessed = Path(os.environ["nnUNet_preprocessed"])
    folders = list(preprocessed.glob(f"Dataset{clean_id}_*"))
    if not folders or not (folders[0] / "nnUNetPlans.json").exists():
        with contextlib.redirect_stdout(io.StringIO()):
            plan_and_preprocess_in_process(clean_id, foreground_samples=config.fingerprint_samples)
        folders = list(preprocessed.glob(f"Dataset{clean_id}_*"))
    plans = json.loads((folders[0] / "nnUNetPlans.json").read_text())
    plans["plans_name"] = plans_identifier(config)
    architecture = plans["configurations"][CONFIGURATION]["architecture"]
    architecture["arch_kwargs"] = narrow_architecture(architecture["arch_kwargs"], config.features)
    (folders[0] / f"{plans['plans_name']}.json").write_text(json.dumps(plans, indent=1))
    return {setting: path for setting, (_, path) in family.datasets.items()}


def _batch(data: SettingData, rng: np.random.Generator,
           config: StudyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, the chosen training indices): nnU-Net's loader names a batch's cases under "keys"."""
    chosen = rng.choice(len(data.images), min(config.batch_size, len(data.images)), replace=False)
    x, y = data.images[chosen], data.labels[chosen]
    if config.augmentation == "flips":
        flips = rng.random((len(chosen), 2)) < 0.5
        x, y = x.copy(), y.copy()
        for i, (flip_h, flip_w) in enumerate(flips):
            axes = tuple(axis for axis, flip in ((1, flip_h), (2, flip_w)) if flip)
            if axes:
                x[i], y[i] = np.flip(x[i], axes), np.flip(y[i], axes)
    elif config.augmentation != "none":
        raise ValueError(f"unknown augmentation {config.augmentation!r}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y), chosen


@torch.no_grad()
def foreground_probabilities(network: torch.nn.Module, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, 3, H, W) -> (N, H, W) float64 softmax probability of class 1."""
    out = [torch.softmax(network(torch.from_numpy(images[i:i + batch])).float(), 1)[:, 1].double().numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def evaluate(trainer, data: SettingData, nu: float | None) -> dict:
    """Predict every training and test case with the current network and measure memorisation.

    Returns a dict: dice_noisy / dice_clean (pooled Dice of the corrupted training cases against their given
    and their clean masks; None without corrupted cases), memorisation (their difference), dice_train_clean
    (pooled Dice on the uncorrupted training cases), train_agreement (pooled Dice of all training cases against
    their given labels), test_dice (pooled, clean test labels), test_dice_mean, with validation arrays
    val_dice_noisy / val_dice_noisy_mean (pooled / mean per-case Dice against the given validation labels),
    mse_corrupted / mse_clean (mean over cases of the per-case mean squared residual of the foreground
    probability against the given mask), weight_corrupted / weight_clean (mean T-Loss weight
    (nu + D) / (nu + S_b), D = H * W, S_b the case's squared residual sum; None without nu).
    """
    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    try:
        prob_train = foreground_probabilities(trainer.network, data.images)
        prob_test = foreground_probabilities(trainer.network, data.test_images)
        prob_val = None if data.val_images is None else foreground_probabilities(trainer.network, data.val_images)
    finally:
        trainer.set_deep_supervision_enabled(True)
        trainer.network.train()
    pred_train = (prob_train > 0.5)[:, None].astype(np.int16)
    pred_test = (prob_test > 0.5)[:, None].astype(np.int16)
    bad, good = data.corrupted, ~data.corrupted
    record: dict = {"dice_noisy": None, "dice_clean": None, "memorisation": None}
    if bad.any():
        noisy = dice_pooled(pred_train[bad], data.labels[bad])
        clean = dice_pooled(pred_train[bad], data.clean_labels[bad])
        record.update(dice_noisy=noisy, dice_clean=clean, memorisation=noisy - clean)
    record["dice_train_clean"] = dice_pooled(pred_train[good], data.labels[good]) if good.any() else None
    record["train_agreement"] = dice_pooled(pred_train, data.labels)
    record["test_dice"] = dice_pooled(pred_test, data.test_labels)
    record["test_dice_mean"] = dice_mean(pred_test, data.test_labels)
    if prob_val is not None:
        pred_val = (prob_val > 0.5)[:, None].astype(np.int16)
        record["val_dice_noisy"] = dice_pooled(pred_val, data.val_labels)
        record["val_dice_noisy_mean"] = dice_mean(pred_val, data.val_labels)
    sum_sq = ((prob_train - data.labels[:, 0]) ** 2).reshape(len(prob_train), -1).sum(axis=1)
    count = prob_train[0].size
    weight = None if nu is None else (nu + count) / (nu + sum_sq)
    for name, members in (("corrupted", bad), ("clean", good)):
        record[f"mse_{name}"] = float((sum_sq[members] / count).mean()) if members.any() else None
        record[f"weight_{name}"] = float(weight[members].mean()) if weight is not None and members.any() else None
    return record


def train(arm: str, seed: int, data: SettingData, config: StudyConfig, clean_dataset: str, device: str = "cpu",
          on_log: Callable[[int, object, list[float]], None] | None = None, ignore_label: int | None = None):
    """Train ``arm``'s trainer on ``data``'s training cases with ``seed``; return the trained trainer.

    The seed fixes the network initialisation and the batch sequence (the same for every arm). Every
    ``log_every`` iterations and at the end, ``on_log(iteration, trainer, losses so far)`` is called.
    With ``ignore_label`` the trainer is built as for a dataset.json with ``"ignore": ignore_label``
    (:func:`with_ignore_label`): pixels of ``data.labels`` with that value enter no loss term.
    """
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

    from tloss_nnunet.repro.inprocess import make_trainer

    if config.iterations % config.iterations_per_epoch:
        raise ValueError("iterations must be a multiple of iterations_per_epoch")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = make_trainer(trainer_class(arm), clean_dataset, CONFIGURATION, FOLD, torch.device(device),
                               plans_identifier=plans_identifier(config))
        trainer.num_iterations_per_epoch = config.iterations_per_epoch
        trainer.num_epochs = config.iterations // config.iterations_per_epoch
        if ignore_label is not None:
            with_ignore_label(trainer, ignore_label)
        trainer.initialize()
    downsample = DownsampleSegForDSTransform(trainer._get_deep_supervision_scales())
    losses: list[float] = []
    iteration = 0
    for epoch in range(trainer.num_epochs):
        trainer.lr_scheduler.step(epoch)
        trainer.network.train()
        for _ in range(config.iterations_per_epoch):
            x, y, chosen = _batch(data, rng, config)
            per_sample = [downsample._apply_to_segmentation(torch.from_numpy(s)) for s in y]
            target = [torch.stack(scale) for scale in zip(*per_sample)]
            with contextlib.redirect_stdout(io.StringIO()):
                losses.append(float(trainer.train_step({"data": torch.from_numpy(x), "target": target,
                                                         "keys": [f"train{i:04d}" for i in chosen]})["loss"]))
            iteration += 1
            if on_log is not None and (iteration % config.log_every == 0 or iteration == config.iterations):
                on_log(iteration, trainer, losses)
    return trainer


def with_ignore_label(trainer, value: int) -> None:
    """Give a not yet initialised trainer nnU-Net's ignore label ``value`` (dataset.json ``"labels"`` gains
    ``"ignore": value``; nnU-Net requires max(label) + 1). ``initialize`` then builds the loss with it: nnU-Net's
    DC_and_CE masks those pixels, the T-Loss adapter counts only valid elements. The network's outputs are
    unchanged (the ignore label is no class)."""
    trainer.dataset_json = {**trainer.dataset_json, "labels": {**trainer.dataset_json["labels"], "ignore": value}}
    trainer.label_manager = trainer.plans_manager.get_label_manager(trainer.dataset_json)


def run(arm: str, setting: str, seed: int, data: SettingData, config: StudyConfig, clean_dataset: str,
        device: str = "cpu") -> dict:
    """Train ``arm`` on ``setting`` with ``seed`` (:func:`train`) and return the run's record (everything but
    ``machine``): ``curve`` is ``[[iteration, M, test_dice, nu or None], ...]`` and ``log`` the full
    :func:`evaluate` record per log point."""
    start = time.perf_counter()
    alpha, beta = parse_setting(setting)
    log: list[dict] = []

    def record(iteration: int, trainer, losses: list[float]) -> None:
        tloss = getattr(trainer, "tloss", None)
        nu = None if tloss is None else tloss.nu
        entry = {"iteration": iteration, "nu": nu, "lr": trainer.optimizer.param_groups[0]["lr"],
                 "loss": float(np.mean(losses[-config.log_every:]))}
        entry.update(evaluate(trainer, data, nu))
        log.append(entry)

    train(arm, seed, data, config, clean_dataset, device, on_log=record)
    final = log[-1]
    onset = next((e["iteration"] for e in log if e["memorisation"] is not None and e["memorisation"] > 0), None)
    return {
        "setting": setting, "alpha": alpha, "beta": beta, "loss": arm, "trainer": trainer_name(arm), "seed": seed,
        "test_dice_final": final["test_dice"], "dice_pooled": final["test_dice"], "dice_mean": final["test_dice_mean"],
        "memorisation_final": final["memorisation"], "onset": onset, "nu_final": final["nu"],
        "n_corrupted": int(data.corrupted.sum()), "n_train": int(len(data.corrupted)),
        "curve": [[e["iteration"], e["memorisation"], e["test_dice"], e["nu"]] for e in log],
        "log": log, "wall_s": round(time.perf_counter() - start, 2), "engine": ENGINE,
        "config": config.name, "iterations": config.iterations,
    }


_DATA: dict[tuple[str, str, bool], SettingData] = {}


def run_job(arm: str, setting: str, seed: int, dataset_dir: str, clean_dir: str, config: StudyConfig,
            device: str = "cpu", validation: bool = False, extra: dict | None = None) -> dict:
    """:func:`run` as a driver job: the setting's arrays loaded once per process (with a validation split when
    ``validation``), ``machine`` and the fields of ``extra`` recorded."""
    key = (dataset_dir, clean_dir, validation)
    if key not in _DATA:  # runs cycle through the settings; each family member is a few MB
        _DATA[key] = SettingData.load(Path(dataset_dir), Path(clean_dir), validation)
    record = run(arm, setting, seed, _DATA[key], config, Path(clean_dir).name, device)
    record["machine"] = machine_description(device)
    record.update(extra or {})
    return record
