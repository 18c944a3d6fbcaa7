"""Schedule and option variants of :class:`nnUNetTrainerTLoss`, named the way nnU-Net names its own.

``-tr`` matches the class name only, so every variant is a small subclass: a schedule from
:mod:`tloss_nnunet.nnunet.schedules` (whose decorator spells out the ``__init__`` signature nnU-Net records) or
a changed class attribute.

* ``nnUNetTrainerTLoss_5epochs``, ``nnUNetTrainerTLoss_50epochs``: short schedules (nnU-Net's
  ``nnUNetTrainer_5epochs`` / ``nnUNetTrainer_50epochs`` are the stock-loss twins).
* ``nnUNetTrainerTLoss_tiny``: 2 epochs x 4 iterations, 2 validation iterations, for tests and CPU smoke runs
  (its stock-loss twin ``nnUNetTrainerDiceCE_tiny`` belongs to the reproduction kit, :mod:`tloss_nnunet.repro`).
* Recipes the memorisation study (``benchmarks/memorisation.py``) compared with the default (cap 100):
  ``_absolute`` (the plain T-Loss, no cap on the step's growth), ``_relative`` / ``_cap20``
  (``mean_weight_cap`` 1 / 20), ``_nuPlateau`` (the plain T-Loss plus the reference's network-lr drop when
  log nu plateaus) and ``_Adam1en3`` (the plain T-Loss with nnU-Net's ``nnUNetTrainerVanillaAdam1en3``).
* ``nnUNetTrainerTLoss_freeze``: the default, plus each training case's weight capped, from the end of early
  learning on (detected without clean labels), at its value then (:mod:`.weight_cap`, :mod:`.weight_freeze`).
"""

from __future__ import annotations

import warnings

import torch
from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerVanillaAdam1en3

from tloss_nnunet.nnunet.checkpoint_keys import TLossState
from tloss_nnunet.nnunet.loss_adapter import deep_supervision_weights
from tloss_nnunet.nnunet.progress import ensure_logging_key
from tloss_nnunet.nnunet.schedules import FIFTY_EPOCHS, FIVE_EPOCHS, TINY, on_schedule
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss
from tloss_nnunet.nnunet.trainer_names import VARIANT_NAMES
from tloss_nnunet.nnunet.weight_cap import CappedWeightTLoss
from tloss_nnunet.nnunet.weight_freeze import WeightFreeze, ddp_merge

__all__ = list(VARIANT_NAMES)  # the classes below, in order (tests/test_nnunet_export_cli.py)


@on_schedule(FIVE_EPOCHS)
class nnUNetTrainerTLoss_5epochs(nnUNetTrainerTLoss): ...


@on_schedule(FIFTY_EPOCHS)
class nnUNetTrainerTLoss_50epochs(nnUNetTrainerTLoss): ...


@on_schedule(TINY)
class nnUNetTrainerTLoss_tiny(nnUNetTrainerTLoss): ...


class nnUNetTrainerTLoss_absolute(nnUNetTrainerTLoss):
    """The plain T-Loss (absolute per-image weights ~ 1 / MSE, normalised by D) under nnU-Net's SGD + poly."""

    tloss_mean_weight_cap = None


class nnUNetTrainerTLoss_relative(nnUNetTrainerTLoss):
    """Only relative per-image weights: the loss divided by the detached batch mean of the weights (cap 1), so
    nnU-Net's SGD step does not grow as the fit improves; the step is a sum-of-squares one."""

    tloss_mean_weight_cap = 1.0


class nnUNetTrainerTLoss_cap20(nnUNetTrainerTLoss):
    """Absolute weights until the batch mean weight (~ 1 / MSE) reaches 20, relative weights beyond."""

    tloss_mean_weight_cap = 20.0


class nnUNetTrainerTLoss_nuPlateau(nnUNetTrainerTLoss_absolute):
    """The plain T-Loss plus the reference's rule: log nu plateaued -> network lr x 0.1 (floor 1e-4), kept on
    top of the poly schedule (see :mod:`tloss_nnunet.nnunet.nu_plateau`)."""

    nu_plateau_lr_drop = True


class nnUNetTrainerTLoss_Adam1en3(nnUNetTrainerTLoss_absolute, nnUNetTrainerVanillaAdam1en3):
    """The plain T-Loss under nnU-Net's ``nnUNetTrainerVanillaAdam1en3`` recipe (Adam, lr 1e-3, poly schedule),
    the optimiser family the paper's code trains with; its ``configure_optimizers`` is nnU-Net's own."""


class nnUNetTrainerTLoss_freeze(nnUNetTrainerTLoss):
    """The default T-Loss (batch-mean cap 100, nu learnt) whose per-case weights cannot reward memorisation.

    Each training epoch the trainer measures, from the training steps' own outputs, the agreement of the
    prediction with the GIVEN labels and each case's mean full-resolution weight w_i; the label-free ADELE rule
    (:mod:`.early_learning`) on the agreement curve marks the end of early learning, and from then on every
    case's weight is capped at its value then (:class:`~.weight_freeze.WeightFreeze`; the IRLS form, deep
    supervision and nu: :mod:`.weight_cap`). An epoch closes after ``num_iterations_per_epoch`` training steps or
    at ``on_train_epoch_end``, whichever comes first. Batches must carry ``"keys"`` (nnU-Net's loader gives
    them). Logged per epoch: ``train_agreement`` and ``weight_capped`` (the share of capped samples); the firing
    epoch and the caps go to the log file; all of it is in the checkpoint's ``tloss_state``.
    """

    LOG_KEYS = ("train_agreement", "weight_capped")

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.weight_freeze = WeightFreeze()
        self._last_epoch: dict | None = None
        self._register_log_keys()

    def _register_log_keys(self) -> None:
        for key in self.LOG_KEYS:
            ensure_logging_key(self.logger.local_logger.my_fantastic_logging, key)

    def _build_loss(self):
        if self.tloss is None:
            raise RuntimeError("_build_loss() called before initialize() built self.tloss.")
        weights = None
        if self.enable_deep_supervision:  # nnU-Net's weights; the cap replaces its DeepSupervisionWrapper
            weights = list(deep_supervision_weights(len(self._get_deep_supervision_scales()), is_ddp=self.is_ddp,
                                                    compiled=self._do_i_compile()))
        return CappedWeightTLoss(self.tloss, self.label_manager.has_regions, self.label_manager.ignore_label,
                                 weights, self.weight_freeze)

    def train_step(self, batch: dict) -> dict:
        keys = batch.get("keys")
        if keys is None:
            raise RuntimeError(f"{type(self).__name__} needs the batch's case identifiers under 'keys' (nnU-Net's "
                               "data loader gives them) to cap each case's weight.")
        self.loss.keys = [str(k) for k in keys]
        try:
            result = super().train_step(batch)
        finally:
            self.loss.keys = None
        self.weight_freeze.steps_in_epoch += 1
        if self.weight_freeze.steps_in_epoch >= self.num_iterations_per_epoch:
            self._close_epoch()
        return result

    def _close_epoch(self) -> None:
        summary = self.weight_freeze.close_epoch(ddp_merge(self.device) if self.is_ddp else None)
        self._last_epoch = summary
        if summary["fired"]:
            self.print_to_log_file(f"end of early learning at training epoch {summary['epoch']} (agreement "
                                   f"{summary['agreement']:.4f}): per-case weights capped from now on, "
                                   f"{self.weight_freeze.caps_summary()}")

    def on_train_epoch_end(self, train_outputs: list[dict]):
        if self.weight_freeze.steps_in_epoch > 0:
            self._close_epoch()
        super().on_train_epoch_end(train_outputs)
        if self._last_epoch is not None:
            self.logger.log("train_agreement", self._last_epoch["agreement"], self.current_epoch)
            self.logger.log("weight_capped", self._last_epoch["capped_fraction"], self.current_epoch)
            self.print_to_log_file(f"training agreement {self._last_epoch['agreement']:.4f}, capped share "
                                   f"{self._last_epoch['capped_fraction']:.3f}")

    def tloss_state_dict(self) -> dict:
        return {**super().tloss_state_dict(), "weight_freeze": self.weight_freeze.state_dict()}

    def load_tloss_state_dict(self, state: dict) -> None:
        super().load_tloss_state_dict(state)
        saved = TLossState.from_dict(state).weight_freeze
        if saved is None:
            message = ("checkpoint has no per-case weight state (not written by nnUNetTrainerTLoss_freeze): the "
                       "end of early learning is detected afresh from this epoch on")
            warnings.warn(message, stacklevel=2)
            self.print_to_log_file("WARNING:", message)
            return
        self.weight_freeze.load_state_dict(saved)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        self._register_log_keys()  # nnU-Net replaces the logging dict with the checkpoint's
