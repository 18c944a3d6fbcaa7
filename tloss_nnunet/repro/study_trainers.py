"""nnU-Net trainers of the studies' baselines and schedules (reproduction kit; found through the kit's shim).

Every loss of a study must train on the same schedule, so each baseline exists in the schedules the studies use,
named as nnU-Net names its variants (``-tr`` matches class names only):

============  ==============================  ==============================  ==============================
loss          default schedule (1000 epochs)  ``_50epochs`` (GPU study)       ``_tiny`` (smoke, 2 x 4 iters)
============  ==============================  ==============================  ==============================
tloss         nnUNetTrainerTLoss              nnUNetTrainerTLoss_50epochs     nnUNetTrainerTLoss_tiny
dice_ce       nnUNetTrainer                   nnUNetTrainer_50epochs          nnUNetTrainerDiceCE_tiny
ce            nnUNetTrainerCELoss             nnUNetTrainerCELoss_50epochs    nnUNetTrainerCELoss_tiny
dice          nnUNetTrainerDiceLoss           nnUNetTrainerDiceLoss_50epochs  nnUNetTrainerDiceLoss_tiny
gce           nnUNetTrainerGCELoss            nnUNetTrainerGCELoss_50epochs   nnUNetTrainerGCELoss_tiny
gce_q04       nnUNetTrainerGCELoss_q04        -                               -
============  ==============================  ==============================  ==============================

The T-Loss, Dice+CE, CE and Dice classes of the first two columns are nnU-Net's own or the T-Loss trainer's
(:mod:`tloss_nnunet.nnunet.variants`); this module adds the GCE trainer and the missing schedule twins
(:func:`~tloss_nnunet.nnunet.schedules.on_schedule`), the stock Dice+CE ``_tiny`` twin included. The studies'
arm registry (``benchmarks/studykit/arms.py``) names them.

``nnUNetTrainer_study`` / ``nnUNetTrainerTLoss_study`` / ``nnUNetTrainerTLoss_freeze_study``: the stock trainer,
the default T-Loss trainer and its per-case weight freeze
(:class:`~tloss_nnunet.nnunet.variants.nnUNetTrainerTLoss_freeze`) on the sizes of a study's configuration, read
when the trainer is built from :data:`STUDY_SIZES_VARIABLE` (JSON with ``iterations``, ``iterations_per_epoch``,
``batch_size`` and ``features``, as :func:`study_sizes` writes it): that schedule (5 validation iterations per
epoch: they only feed nnU-Net's progress log), that batch size, and nnU-Net's planned network narrowed to the
encoder widths ``features`` (:func:`narrow_architecture`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TypeVar

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerCELoss import nnUNetTrainerCELoss
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerDiceLoss import nnUNetTrainerDiceLoss
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from tloss_nnunet.nnunet.loss_adapter import deep_supervision_weights
from tloss_nnunet.nnunet.schedules import FIFTY_EPOCHS, TINY, Schedule, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
from tloss_nnunet.nnunet.variants import nnUNetTrainerTLoss_freeze
from tloss_nnunet.repro.baselines import GeneralizedCrossEntropyLoss

Trainer = TypeVar("Trainer", bound=type)

#: The classes this module defines, for the kit's nnU-Net shim.
TRAINER_NAMES = (
    "nnUNetTrainerDiceCE_tiny",
    "nnUNetTrainerGCELoss",
    "nnUNetTrainerGCELoss_q04",
    "nnUNetTrainerGCELoss_50epochs",
    "nnUNetTrainerGCELoss_tiny",
    "nnUNetTrainerCELoss_50epochs",
    "nnUNetTrainerCELoss_tiny",
    "nnUNetTrainerDiceLoss_50epochs",
    "nnUNetTrainerDiceLoss_tiny",
    "nnUNetTrainer_study",
    "nnUNetTrainerTLoss_study",
    "nnUNetTrainerTLoss_freeze_study",
)
__all__ = ["STUDY_SIZES_VARIABLE", "TRAINER_NAMES", "narrow_architecture", "on_study_sizes", "study_sizes",
           *TRAINER_NAMES]

#: Environment variable with the sizes of the ``_study`` trainers (nnU-Net builds them in a process of its own).
STUDY_SIZES_VARIABLE = "TLOSS_STUDY_SIZES"


def study_sizes(iterations: int, iterations_per_epoch: int, batch_size: int, features: Sequence[int]) -> str:
    """The value of :data:`STUDY_SIZES_VARIABLE` for these sizes."""
    if iterations % iterations_per_epoch:
        raise ValueError("iterations must be a multiple of iterations_per_epoch")
    return json.dumps({"iterations": iterations, "iterations_per_epoch": iterations_per_epoch,
                       "batch_size": batch_size, "features": list(features)})


def _sizes() -> dict:
    value = os.environ.get(STUDY_SIZES_VARIABLE)
    if not value:
        raise RuntimeError(f"the _study trainers need {STUDY_SIZES_VARIABLE} (see study_sizes)")
    return json.loads(value)


def _study_schedule() -> Schedule:
    sizes = _sizes()
    return Schedule(sizes["iterations"] // sizes["iterations_per_epoch"], sizes["iterations_per_epoch"], 5)


def narrow_architecture(arch_kwargs: dict, features: Sequence[int]) -> dict:
    """nnU-Net's planned PlainConvUNet kwargs with the encoder widths ``features`` (and so ``len(features)``
    stages: the first ones of the plan, with their kernel sizes, strides and convolutions per stage)."""
    n = len(features)
    if n > arch_kwargs["n_stages"]:
        raise ValueError(f"{n} feature widths for a network nnU-Net planned with {arch_kwargs['n_stages']} stages")
    return {**arch_kwargs, "n_stages": n, "features_per_stage": list(features),
            "kernel_sizes": arch_kwargs["kernel_sizes"][:n], "strides": arch_kwargs["strides"][:n],
            "n_conv_per_stage": arch_kwargs["n_conv_per_stage"][:n],
            "n_conv_per_stage_decoder": arch_kwargs["n_conv_per_stage_decoder"][:n - 1]}


def on_study_sizes(cls: Trainer) -> Trainer:
    """Class decorator (with ``on_schedule(_study_schedule)``): the study's batch size and network width."""

    def _set_batch_size_and_oversample(self) -> None:
        super(cls, self)._set_batch_size_and_oversample()
        if not self.is_ddp:
            self.batch_size = _sizes()["batch_size"]

    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> torch.nn.Module:
        arch_kwargs = narrow_architecture(configuration_manager.network_arch_init_kwargs, _sizes()["features"])
        return get_network_from_plans(configuration_manager.network_arch_class_name, arch_kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import, num_input_channels,
                                      num_output_channels, allow_init=True, deep_supervision=enable_deep_supervision)

    cls._set_batch_size_and_oversample = _set_batch_size_and_oversample
    cls.build_network_architecture = staticmethod(build_network_architecture)
    return cls


class nnUNetTrainerGCELoss(nnUNetTrainer):
    """nnU-Net's default trainer with the generalised cross-entropy (q = ``gce_q``) as its loss.

    Label maps only (like nnU-Net's CE variant); the ignore label is honoured and every deep-supervision
    scale gets nnU-Net's weights.
    """

    gce_q: float = 0.7

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise RuntimeError("nnUNetTrainerGCELoss supports label maps only, not region-based training.")
        loss = GeneralizedCrossEntropyLoss(q=self.gce_q, ignore_index=self.label_manager.ignore_label)
        if self.enable_deep_supervision:
            weights = deep_supervision_weights(len(self._get_deep_supervision_scales()),
                                               is_ddp=self.is_ddp, compiled=self._do_i_compile())
            loss = DeepSupervisionWrapper(loss, weights)
        return loss


class nnUNetTrainerGCELoss_q04(nnUNetTrainerGCELoss):
    """The GCE trainer with q = 0.4: the long-horizon study chooses q in {0.4, 0.7} on noisy validation labels."""

    gce_q = 0.4


@on_schedule(TINY)
class nnUNetTrainerDiceCE_tiny(nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE loss) on the ``_tiny`` schedule: the T-Loss ``_tiny`` trainer's twin."""


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerGCELoss_50epochs(nnUNetTrainerGCELoss): ...


@on_schedule(TINY)
class nnUNetTrainerGCELoss_tiny(nnUNetTrainerGCELoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerCELoss_50epochs(nnUNetTrainerCELoss): ...


@on_schedule(TINY)
class nnUNetTrainerCELoss_tiny(nnUNetTrainerCELoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerDiceLoss_50epochs(nnUNetTrainerDiceLoss): ...


@on_schedule(TINY)
class nnUNetTrainerDiceLoss_tiny(nnUNetTrainerDiceLoss): ...


@on_study_sizes
@on_schedule(_study_schedule)
class nnUNetTrainer_study(nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE) on a study's sizes (:data:`STUDY_SIZES_VARIABLE`)."""


@on_study_sizes
@on_schedule(_study_schedule)
class nnUNetTrainerTLoss_study(nnUNetTrainerTLoss):
    """The default T-Loss trainer on a study's sizes (:data:`STUDY_SIZES_VARIABLE`)."""


@on_study_sizes
@on_schedule(_study_schedule)
class nnUNetTrainerTLoss_freeze_study(nnUNetTrainerTLoss_freeze):
    """The T-Loss trainer with per-case weights frozen at the end of early learning, on a study's sizes."""
