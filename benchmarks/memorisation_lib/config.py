"""What the memorisation study runs: its configurations and its arms (one nnU-Net trainer class per arm)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tloss_nnunet.errors import InputError

#: Arm name -> the nnU-Net trainer class (by name, found in the package's trainer modules) that the arm trains.
#: "dice_ce" is nnU-Net's stock trainer, "tloss" the default T-Loss trainer (mean_weight_cap 100, chosen by this
#: study), the "tloss_*" arms T-Loss recipes of tloss_nnunet.nnunet.variants, and "ce" / "dice" / "gce" the other
#: baselines: nnU-Net's own CE-only and Dice-only trainer variants and the kit's generalised cross-entropy (q 0.7).
ARMS: dict[str, str] = {
    "dice_ce": "nnUNetTrainer",
    "tloss": "nnUNetTrainerTLoss",
    "tloss_absolute": "nnUNetTrainerTLoss_absolute",
    "tloss_relative": "nnUNetTrainerTLoss_relative",
    "tloss_plateau": "nnUNetTrainerTLoss_nuPlateau",
    "tloss_adam": "nnUNetTrainerTLoss_Adam1en3",
    "tloss_cap20": "nnUNetTrainerTLoss_cap20",
    "ce": "nnUNetTrainerCELoss",
    "dice": "nnUNetTrainerDiceLoss",
    "gce": "nnUNetTrainerGCELoss",
}

#: Environment variable naming the configuration the nnU-Net check's trainers use (nnU-Net starts them in a
#: process of its own).
CONFIG_VARIABLE = "TLOSS_MEMORISATION_CONFIG"

#: The study's noise settings (the paper's grid).
SETTINGS: tuple[str, ...] = ("clean", "a0.3b0.5", "a0.3b0.7", "a0.5b0.5", "a0.5b0.7", "a0.7b0.5", "a0.7b0.7")


@dataclass(frozen=True)
class MemoConfig:
    """Data, network and schedule of one study configuration.

    Data: a synthetic ISIC-2017-like release of ``n_train`` / ``n_val`` / ``n_test`` cases converted to
    ``image_size``-squared nnU-Net raw datasets with the paper's noise (noisy labelsTr, clean labelsTs).
    Network: nnU-Net's own plans for that data with the encoder widths replaced by ``features`` (the
    planned 32..512 costs 0.7 s per iteration on one CPU core; the topology and everything else is nnU-Net's).
    Schedule: ``iterations`` steps of batch ``batch_size`` drawn from the training cases, nnU-Net's poly lr
    stepped every ``iterations_per_epoch`` (an nnU-Net "epoch"); ``augmentation`` "flips" mirrors each sample
    along each axis with probability 0.5, "none" feeds the cases as they are. Every ``log_every`` iterations the
    network is evaluated on all training and test cases.
    """

    name: str
    n_train: int
    n_val: int
    n_test: int
    image_size: int
    iterations: int
    iterations_per_epoch: int
    batch_size: int
    log_every: int
    features: tuple[int, ...]
    augmentation: str = "flips"
    release_min_size: int = 96
    release_max_size: int = 160
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4))
    notes: str = ""

    def describe(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, MemoConfig] = {
    "smoke": MemoConfig(name="smoke", n_train=6, n_val=2, n_test=4, image_size=32, iterations=8,
                        iterations_per_epoch=4, batch_size=4, log_every=4, features=(4, 8, 16), seeds=(0,),
                        release_min_size=40, release_max_size=56, notes="plumbing check; the numbers mean nothing"),
    "cpu": MemoConfig(name="cpu", n_train=16, n_val=4, n_test=48, image_size=64, iterations=800,
                      iterations_per_epoch=50, batch_size=8, log_every=50, features=(8, 16, 32, 64, 128),
                      notes="few training cases, light augmentation, many passes: the regime where a network "
                            "can fit every training mask"),
}


def narrow_architecture(arch_kwargs: dict, features: tuple[int, ...]) -> dict:
    """nnU-Net's planned PlainConvUNet kwargs with the encoder widths ``features`` (and so ``len(features)``
    stages: the first ones of the plan, with their kernel sizes, strides and convolutions per stage)."""
    n = len(features)
    if n > arch_kwargs["n_stages"]:
        raise ValueError(f"{n} feature widths for a network nnU-Net planned with {arch_kwargs['n_stages']} stages")
    return {**arch_kwargs, "n_stages": n, "features_per_stage": list(features),
            "kernel_sizes": arch_kwargs["kernel_sizes"][:n], "strides": arch_kwargs["strides"][:n],
            "n_conv_per_stage": arch_kwargs["n_conv_per_stage"][:n],
            "n_conv_per_stage_decoder": arch_kwargs["n_conv_per_stage_decoder"][:n - 1]}


def get_config(name: str) -> MemoConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise InputError(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}.") from None
