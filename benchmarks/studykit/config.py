"""The one configuration type of the studies: data, network width and schedule of one configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tloss_nnunet.errors import InputError

__all__ = ["SMOKE_FINGERPRINT_SAMPLES", "StudyConfig", "get_config"]

#: ``fingerprint_samples`` of the smoke configurations (plumbing checks: the statistics to ~4 digits suffice).
SMOKE_FINGERPRINT_SAMPLES = 10**6


@dataclass(frozen=True)
class StudyConfig:
    """Data, network and schedule of one study configuration.

    Data: a synthetic ISIC-2017-like release of ``n_train`` / ``n_val`` / ``n_test`` cases (image widths in
    [``release_min_size``, ``release_max_size``]) converted to ``image_size``-squared nnU-Net raw datasets with the
    paper's noise (noisy labelsTr, clean labelsTs).

    In-process engine: nnU-Net's own plans with the encoder widths replaced by ``features``; ``iterations`` steps
    of batch ``batch_size``, nnU-Net's poly lr stepped every ``iterations_per_epoch`` (an nnU-Net "epoch");
    ``augmentation`` "flips" mirrors each sample along each axis with probability 0.5, "none" feeds the cases as
    they are; every ``log_every`` iterations the network is evaluated on all training and test cases.

    ``fingerprint_samples``: foreground voxels nnU-Net's fingerprint draws when the in-process engine plans
    (None: nnU-Net's 10^8; smoke configurations take fewer, see
    :func:`tloss_nnunet.repro.inprocess.fingerprint_extractor`).

    Stock-command engine: the trainers of schedule ``schedule`` (``benchmarks.studykit.arms``): ``"tiny"``,
    ``"50epochs"``, ``"default"``, or ``"study"`` (this configuration's sizes above).
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
    schedule: str = "study"
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4))
    fingerprint_samples: int | None = None
    notes: str = ""

    def describe(self) -> dict:
        """The configuration as a JSON-ready dict (written next to the synthetic release)."""
        return asdict(self)


def get_config(configs: dict[str, StudyConfig], name: str) -> StudyConfig:
    """``configs[name]``, or InputError naming the choices."""
    try:
        return configs[name]
    except KeyError:
        raise InputError(f"unknown config {name!r}; choose from {', '.join(configs)}.") from None
