"""What the study runs: noise settings, losses, and the three configurations (smoke, cpu, gpu)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tloss_nnunet.errors import InputError
from tloss_nnunet.noise import NoiseSetting

#: The paper's grid, in the order tables and plots show it. "clean": no training case is corrupted.
SETTING_NAMES: tuple[str, ...] = ("clean", "a0.3b0.5", "a0.3b0.7", "a0.5b0.5", "a0.5b0.7", "a0.7b0.5", "a0.7b0.7")

#: Study loss names -> what they are (used in the table legend).
LOSSES: dict[str, str] = {
    "tloss": "T-Loss (learnable nu, own Adam lr 1e-3)",
    "dice_ce": "nnU-Net's stock Dice + CE (DC_and_CE_loss)",
    "ce": "cross-entropy (nnU-Net's RobustCrossEntropyLoss)",
    "dice": "soft Dice (nnU-Net's MemoryEfficientSoftDiceLoss)",
    "gce": "generalised cross-entropy, q = 0.7 (Zhang & Sabuncu 2018)",
}

#: Run order when the grid cannot finish: the headline comparison first, then the other baselines.
LOSS_PRIORITY: tuple[str, ...] = ("tloss", "dice_ce", "ce", "dice", "gce")


def setting_name(alpha: float, beta: float) -> str:
    """(0.7, 0.5) -> ``"a0.7b0.5"``; alpha = 0 -> ``"clean"``."""
    return "clean" if alpha == 0 else f"a{alpha:g}b{beta:g}"


def parse_setting(name: str) -> tuple[float, float]:
    """``"a0.7b0.5"`` -> (0.7, 0.5); ``"clean"`` -> (0.0, 0.0). Raises InputError for other names."""
    if name == "clean":
        return 0.0, 0.0
    if name.startswith("a") and "b" in name:
        try:
            alpha, beta = (float(part) for part in name[1:].split("b", 1))
            NoiseSetting(alpha, beta)  # validates the ranges
        except ValueError:
            pass
        else:
            return alpha, beta
    raise InputError(f"unknown noise setting {name!r}; expected 'clean' or e.g. 'a0.7b0.5' "
                     f"(the study's grid: {', '.join(SETTING_NAMES)}).")


@dataclass(frozen=True)
class StudyConfig:
    """Sizes and schedule of one study configuration.

    Data (both engines): a synthetic ISIC-2017-like release of ``n_train`` / ``n_val`` / ``n_test`` cases
    with image widths in [``release_min_size``, ``release_max_size``], converted to ``image_size`` squared
    nnU-Net raw datasets (clean + one per setting; noisy labelsTr, clean labelsTs).

    monai engine: a MONAI UNet with ``channels`` trained for ``iterations`` steps of batch ``batch_size``;
    SGD(lr ``lr``, momentum 0.99, Nesterov, weight decay 3e-5) with nnU-Net's poly decay for the network,
    Adam(``nu_lr``) for the T-Loss's nu; random flips and 90-degree rotations.
    nnunet engine: nnU-Net 2D with the trainers of schedule ``nnunet_schedule``
    (see ``tloss_nnunet.repro.study_trainers.STUDY_TRAINERS``).
    """

    name: str
    engine: str
    n_train: int
    n_val: int
    n_test: int
    release_min_size: int
    release_max_size: int
    image_size: int
    iterations: int
    batch_size: int
    channels: tuple[int, ...]
    lr: float = 1e-2
    nu_lr: float = 1e-3
    nu_trace_every: int = 25
    nnunet_schedule: str = "tiny"
    notes: str = ""
    seeds: tuple[int, ...] = field(default=(0, 1, 2))

    def describe(self) -> dict:
        """The configuration as a JSON-ready dict (recorded next to the runs)."""
        return asdict(self)


CONFIGS: dict[str, StudyConfig] = {
    # Seconds: for tests and a first check of an installation.
    "smoke": StudyConfig(
        name="smoke", engine="monai", n_train=8, n_val=2, n_test=4, release_min_size=40, release_max_size=56,
        image_size=32, iterations=6, batch_size=4, channels=(8, 16, 32), nu_trace_every=2, seeds=(0,),
        notes="plumbing check only: the numbers mean nothing"),
    # A few hours on 2 CPU cores for the full grid (7 settings x 5 losses x 3 seeds).
    "cpu": StudyConfig(
        name="cpu", engine="monai", n_train=120, n_val=10, n_test=60, release_min_size=96, release_max_size=160,
        image_size=64, iterations=300, batch_size=8, channels=(16, 32, 64, 128),
        notes="MONAI UNet in-process: nnU-Net costs ~20 s of fixed overhead per tiny CPU run before any "
              "useful training, which the 105-run grid cannot afford on 2 cores"),
    # The device machine: nnU-Net's own pipeline on the paper's resolution and case counts.
    "gpu": StudyConfig(
        name="gpu", engine="nnunet", n_train=2000, n_val=150, n_test=600, release_min_size=300,
        release_max_size=700, image_size=256, iterations=0, batch_size=0, channels=(), nnunet_schedule="50epochs",
        notes="nnU-Net 2D, 50 epochs x 250 iterations, ISIC-2017 case counts at 256 x 256"),
}


def get_config(name: str) -> StudyConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise InputError(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}.") from None
