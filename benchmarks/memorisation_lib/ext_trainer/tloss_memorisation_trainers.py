"""nnU-Net trainers of the memorisation study's check inside nnU-Net (``nnUNetv2_train -tr ...``).

Found through ``nnUNet_extTrainer`` (the study adds this folder); not meant to be imported directly. Each is a
stock trainer with the schedule and network width of the study's configuration (named by
``TLOSS_MEMORISATION_CONFIG``, default "cpu"): ``iterations`` steps of batch ``batch_size`` in epochs of
``iterations_per_epoch`` (5 validation iterations per epoch: they only feed nnU-Net's progress log), and
nnU-Net's planned network narrowed to the encoder widths ``features`` (``narrow_architecture``, as the
in-process engine does). Everything else (data loading, augmentation, loss, optimiser, final validation,
inference) is nnU-Net's, or for the T-Loss trainer the default ``nnUNetTrainerTLoss``.
"""

import os
import sys
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

# nnU-Net imports this file as a top-level module: make the study's configuration importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from memorisation_lib.config import CONFIG_VARIABLE, get_config, narrow_architecture  # noqa: E402

from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss  # noqa: E402

_CONFIG = get_config(os.environ.get(CONFIG_VARIABLE, "cpu"))


class _MemorisationSchedule:
    """Mixin: the study's schedule, batch size and network width on top of any nnU-Net trainer."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = _CONFIG.iterations_per_epoch
        self.num_epochs = _CONFIG.iterations // _CONFIG.iterations_per_epoch
        self.num_val_iterations_per_epoch = 5

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if not self.is_ddp:
            self.batch_size = _CONFIG.batch_size

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> torch.nn.Module:
        arch_kwargs = narrow_architecture(configuration_manager.network_arch_init_kwargs, _CONFIG.features)
        return get_network_from_plans(configuration_manager.network_arch_class_name, arch_kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import, num_input_channels,
                                      num_output_channels, allow_init=True, deep_supervision=enable_deep_supervision)

class nnUNetTrainer_memorisation(_MemorisationSchedule, nnUNetTrainer):
    """nnU-Net's stock trainer (Dice + CE) on the memorisation study's schedule."""


class nnUNetTrainerTLoss_memorisation(_MemorisationSchedule, nnUNetTrainerTLoss):
    """The default T-Loss trainer on the memorisation study's schedule."""
