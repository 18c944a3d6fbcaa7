"""The in-process engine: one run = train a MONAI UNet on one dataset of the family, test on clean labels.

Same for every loss (only the loss differs): the network, its initialisation (seeded), the batches and
augmentations (seeded), and nnU-Net's optimiser recipe: SGD(lr, momentum 0.99, Nesterov, weight decay 3e-5)
with the poly schedule lr * (1 - t / T) ** 0.9 and gradient-norm clipping at 12. The T-Loss's nu has its
own Adam (lr ``nu_lr``, constant), as in the reference and in ``nnUNetTrainerTLoss``. No deep supervision
(the reference's network had none either). The model of the last iteration is tested (no model selection,
as in the paper).

Besides the test Dice the run measures memorisation on the corrupted training cases: the Dice of the final
model's training predictions against the noisy labels it was given and against the clean ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import UNet

from .data import Split, load_training_and_test
from .grid import StudyConfig, parse_setting
from .losses import build_study_loss
from .metrics import dice_mean, dice_pooled

#: nnU-Net's recipe (nnUNetTrainer.configure_optimizers / train_step).
MOMENTUM = 0.99
WEIGHT_DECAY = 3e-5
POLY_EXPONENT = 0.9
GRAD_CLIP = 12.0


@dataclass(frozen=True)
class RunSpec:
    setting: str
    loss: str
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return self.setting, self.loss, self.seed


@dataclass(frozen=True)
class RunData:
    """What one run reads: the (possibly noisy) training split, the clean test split, and for the
    memorisation measure the clean training labels and which training cases the noise changed ((N,) bool)."""

    train: Split
    test: Split
    clean_train_labels: np.ndarray
    corrupted: np.ndarray

    @classmethod
    def load(cls, dataset_dir: Path, clean_dir: Path) -> "RunData":
        train, test, clean_labels, corrupted = load_training_and_test(dataset_dir, clean_dir)
        return cls(train=train, test=test, clean_train_labels=clean_labels, corrupted=corrupted)


def build_network(config: StudyConfig) -> UNet:
    """MONAI UNet, 3 input channels (RGB), 2 output channels (background, lesion)."""
    return UNet(spatial_dims=2, in_channels=3, out_channels=2, channels=config.channels,
                strides=(2,) * (len(config.channels) - 1), num_res_units=1)


def augment(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: random flips of each axis and a random multiple of 90-degree rotation (image and label alike)."""
    out_x, out_y = np.empty_like(images), np.empty_like(labels)
    for i in range(len(images)):
        x, y = images[i], labels[i]
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
        for axis in (1, 2):
            if rng.random() < 0.5:
                x, y = np.flip(x, axis), np.flip(y, axis)
        out_x[i], out_y[i] = x, y
    return out_x, out_y


@torch.no_grad()
def predict(network: torch.nn.Module, images: np.ndarray, device: torch.device, batch: int = 32) -> np.ndarray:
    """(N, 3, H, W) images -> (N, 1, H, W) int64 argmax label maps."""
    network.eval()
    out = [network(torch.from_numpy(images[i:i + batch]).to(device)).argmax(1, keepdim=True).cpu().numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def train_and_test(spec: RunSpec, data: RunData, config: StudyConfig, device: str = "cpu") -> dict:
    """Train one (setting, loss, seed) run and return its record (everything but ``machine``).

    Record keys: setting, alpha, beta, loss, seed, dice_mean, dice_pooled (clean test labels), nu_final
    (None for losses without nu), nu_trace ([iteration, nu] every ``nu_trace_every`` iterations),
    train_dice_noisy / train_dice_clean (pooled Dice of the final model on the corrupted training cases
    against their noisy and their clean labels; None when no case is corrupted), loss_final (mean of the last
    10% of iterations), wall_s, engine, config, iterations.
    """
    start = time.perf_counter()
    alpha, beta = parse_setting(spec.setting)
    torch_device = torch.device(device)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)

    network = build_network(config).to(torch_device)
    loss = build_study_loss(spec.loss)
    loss.module.to(torch_device)
    optimizer = torch.optim.SGD(network.parameters(), lr=config.lr, momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    nu_optimizer = (torch.optim.Adam(loss.tloss.parameters(), lr=config.nu_lr, weight_decay=0)
                    if loss.tloss is not None else None)

    n_train = len(data.train.images)
    batch_size = min(config.batch_size, n_train)
    nu_trace: list[list[float]] = []
    losses: list[float] = []
    network.train()
    for iteration in range(config.iterations):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * (1 - iteration / config.iterations) ** POLY_EXPONENT
        chosen = rng.choice(n_train, batch_size, replace=False)
        x, y = augment(data.train.images[chosen], data.train.labels[chosen], rng)
        logits = network(torch.from_numpy(x).to(torch_device))
        value = loss(logits, torch.from_numpy(y).to(torch_device))
        optimizer.zero_grad(set_to_none=True)
        if nu_optimizer is not None:
            nu_optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), GRAD_CLIP)
        optimizer.step()
        if nu_optimizer is not None:
            nu_optimizer.step()
        losses.append(float(value.detach()))
        if loss.nu is not None and (iteration % config.nu_trace_every == 0 or iteration == config.iterations - 1):
            nu_trace.append([iteration + 1, loss.nu])

    test_pred = predict(network, data.test.images, torch_device)
    train_noisy, train_clean = None, None
    if data.corrupted.any():
        train_pred = predict(network, data.train.images[data.corrupted], torch_device)
        train_noisy = dice_pooled(train_pred, data.train.labels[data.corrupted])
        train_clean = dice_pooled(train_pred, data.clean_train_labels[data.corrupted])
    tail = max(1, len(losses) // 10)
    return {
        "setting": spec.setting, "alpha": alpha, "beta": beta, "loss": spec.loss, "seed": spec.seed,
        "dice_mean": dice_mean(test_pred, data.test.labels),
        "dice_pooled": dice_pooled(test_pred, data.test.labels),
        "nu_final": loss.nu,
        "nu_trace": nu_trace,
        "train_dice_noisy": train_noisy,
        "train_dice_clean": train_clean,
        "loss_final": float(np.mean(losses[-tail:])) if losses else None,
        "wall_s": round(time.perf_counter() - start, 2),
        "engine": "monai", "config": config.name, "iterations": config.iterations,
    }
