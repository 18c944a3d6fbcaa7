"""Layer 4: ``nnUNetTrainerTLoss``, nnU-Net's default trainer with the T-Loss as its only change.

Everything else (plans, data loading and augmentation, network, SGD + poly schedule for the network,
validation, inference) is nnU-Net's. What the learnable nu needs is added:

* ``self.tloss`` (a :class:`~tloss_nnunet.TLoss`) is built once, before nnU-Net builds its optimiser, and
  ``self.loss`` wraps that same instance (adapter + nnU-Net's deep-supervision weights).
* ``self.nu_optimizer``: Adam(lr ``nu_lr`` = 1e-3, weight decay 0) for log-nu, apart from the network's SGD,
  so the poly schedule never overwrites nu's lr and ``optimizer.param_groups[0]`` stays the network's.
* ``train_step`` averages nu's gradient over DDP ranks and steps both optimisers (GradScaler-aware).
* checkpoints carry ``tloss_state`` (a :class:`~tloss_nnunet.nnunet.checkpoint_keys.TLossState`: loss state
  dict, nu optimiser state, lambda, lr factor, plateau state); ``--c`` restores it; nu is logged every epoch
  under ``nu`` and drawn in progress.png.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch._dynamo import OptimizedModule

from tloss_nnunet.atomic import atomic_target
from tloss_nnunet.loss import TLoss
from tloss_nnunet.nnunet.checkpoint_keys import NU_KEY, TLOSS_STATE_KEY, TLossState
from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss, build_tloss_for_nnunet, deep_supervision_weights
from tloss_nnunet.nnunet.nu_plateau import NuPlateauDetector, ScaledPolyLRScheduler, plateau_statistic
from tloss_nnunet.nnunet.optimization import backward_and_step, build_nu_optimizer
from tloss_nnunet.nnunet.progress import NuLocalLogger, ensure_logging_key

__all__ = ["nnUNetTrainerTLoss", "TLOSS_STATE_KEY"]


class nnUNetTrainerTLoss(nnUNetTrainer):
    """nnU-Net v2 trainer whose loss is the Robust T-Loss with a learnable nu.

    Class attributes a subclass may change (read in ``initialize``):
        tloss_nu_init: initial nu (natural units).
        tloss_normalize: divide each sample's NLL by its D (a per-element value, whatever the patch size).
        tloss_log_precision: lambda of the covariance exp(-lambda) I (0 = the paper's identity).
        tloss_mean_weight_cap: cap on the batch mean of the per-image weights (~ 1 / MSE) beyond which the loss is
            divided by mean weight / cap, so nnU-Net's SGD step stops growing as the fit improves; None: no cap
            (see :class:`TLoss`). The default, 100, is what the memorisation study chose
            (``benchmarks/results/memorisation.md``): on noisy labels it matched the uncapped T-Loss's test Dice
            and memorised the corrupted masks measurably less.
        nu_lr: Adam learning rate of log-nu (constant: no schedule touches it).
        nu_plateau_lr_drop: enable the reference's "drop the network lr when nu plateaus" rule, with
            ``nu_plateau_kwargs`` (see :class:`NuPlateauDetector`), ``nu_plateau_decay`` and ``nu_plateau_min_lr``.
    """

    tloss_nu_init: float = 1.0
    tloss_normalize: bool = True
    tloss_log_precision: float = 0.0
    tloss_mean_weight_cap: float | None = 100.0
    nu_lr: float = 1e-3
    nu_plateau_lr_drop: bool = False
    nu_plateau_kwargs: dict = {"record_every": 50, "patience": 10, "window": 5, "threshold": 1e-4}
    nu_plateau_decay: float = 0.1
    nu_plateau_min_lr: float = 1e-4

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.tloss: TLoss | None = None
        self.nu_optimizer: torch.optim.Optimizer | None = None
        self.nu_plateau: NuPlateauDetector | None = None
        self.logger.local_logger = NuLocalLogger.replacing(self.logger.local_logger)

    # ----------------------------------------------------------------- construction
    def initialize(self):
        if not self.was_initialized:
            # Before super().initialize(): configure_optimizers() and _build_loss() both need this instance.
            self.tloss = build_tloss_for_nnunet(
                self.label_manager.has_regions,
                nu_init=self.tloss_nu_init,
                normalize=self.tloss_normalize,
                log_precision=self.tloss_log_precision,
                mean_weight_cap=self.tloss_mean_weight_cap,
            ).to(self.device)
            if self.nu_plateau_lr_drop:
                self.nu_plateau = NuPlateauDetector(**self.nu_plateau_kwargs)
        super().initialize()
        self.print_to_log_file(f"T-Loss: {self.tloss}; nu optimiser: Adam(lr={self.nu_lr}, weight_decay=0)"
                               + (f"; nu-plateau lr drop {self.nu_plateau_kwargs}" if self.nu_plateau else ""))

    def configure_optimizers(self):
        optimizer, lr_scheduler = super().configure_optimizers()
        if self.nu_plateau_lr_drop:
            if type(lr_scheduler) is not PolyLRScheduler:
                raise RuntimeError(f"the nu-plateau lr drop works on nnU-Net's PolyLRScheduler; "
                                   f"{type(self).__name__} uses {type(lr_scheduler).__name__}.")
            # Same schedule, plus a persistent factor that the plateau rule lowers.
            lr_scheduler = ScaledPolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)
        self.nu_optimizer = build_nu_optimizer(self.tloss.parameters(), lr=self.nu_lr)
        return optimizer, lr_scheduler

    def _build_loss(self):
        if self.tloss is None:
            raise RuntimeError("_build_loss() called before initialize() built self.tloss.")
        loss = NnUNetTLoss(self.tloss, self.label_manager.has_regions, self.label_manager.ignore_label)
        if self.enable_deep_supervision:
            weights = deep_supervision_weights(len(self._get_deep_supervision_scales()),
                                               is_ddp=self.is_ddp, compiled=self._do_i_compile())
            loss = DeepSupervisionWrapper(loss, weights)
        return loss

    # ----------------------------------------------------------------- training
    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):
            target = [t.to(self.device, non_blocking=True) for t in target]
        else:
            target = target.to(self.device, non_blocking=True)

        tloss, nu_optimizer = self._built()
        self.optimizer.zero_grad(set_to_none=True)
        nu_optimizer.zero_grad(set_to_none=True)
        # Autocast only on CUDA, as in nnU-Net; the T-Loss itself always runs in float32.
        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            loss = self.loss(output, target)
        backward_and_step(loss, self.network.parameters(), self.optimizer, nu_optimizer, self.grad_scaler)
        if self.nu_plateau is not None and self.nu_plateau.update(lambda: plateau_statistic(tloss)):
            self._drop_network_lr()
        return {"loss": loss.detach().cpu().numpy()}

    def _built(self) -> tuple[TLoss, torch.optim.Optimizer]:
        """The loss and nu's optimiser: nnU-Net constructs a trainer first and builds its parts in initialize()."""
        if self.tloss is None or self.nu_optimizer is None:
            raise RuntimeError(f"{type(self).__name__} used before initialize() built its T-Loss.")
        return self.tloss, self.nu_optimizer

    def _drop_network_lr(self) -> None:
        before = self.optimizer.param_groups[0]["lr"]
        after = self.lr_scheduler.drop(self.nu_plateau_decay, self.nu_plateau_min_lr)
        self.print_to_log_file(f"nu plateau at nu={self._built()[0].nu:.6g}: network lr {before:.3g} -> {after:.3g} "
                               f"(factor on the poly schedule now {self.lr_scheduler.factor:.3g})")

    def on_train_epoch_end(self, train_outputs: list[dict]):
        super().on_train_epoch_end(train_outputs)
        # All ranks hold the same nu (its gradient is averaged), so no gather is needed.
        nu = self._built()[0].nu
        self.logger.log(NU_KEY, nu, self.current_epoch)
        self.print_to_log_file(f"nu {nu:.6g}")

    # ----------------------------------------------------------------- checkpoints
    def tloss_state_dict(self) -> dict:
        """Everything about the loss that training needs to continue exactly: the ``tloss_state`` entry."""
        tloss, nu_optimizer = self._built()
        return TLossState(
            loss={k: v.detach().cpu().clone() for k, v in tloss.state_dict().items()},
            nu_optimizer=nu_optimizer.state_dict(),
            log_precision=tloss.log_precision,
            lr_factor=self.lr_scheduler.factor if isinstance(self.lr_scheduler, ScaledPolyLRScheduler) else None,
            nu_plateau=self.nu_plateau.state_dict() if self.nu_plateau is not None else None,
        ).to_dict()

    def load_tloss_state_dict(self, state: dict) -> None:
        """Restore what :meth:`tloss_state_dict` saved, or an earlier version wrote (see :class:`TLossState`);
        the nu optimiser's tensors move to the loss's device."""
        saved = TLossState.from_dict(state)
        tloss, nu_optimizer = self._built()
        tloss.load_state_dict(saved.loss)
        nu_optimizer.load_state_dict(saved.nu_optimizer)
        if saved.lr_factor is not None and isinstance(self.lr_scheduler, ScaledPolyLRScheduler):
            self.lr_scheduler.factor = float(saved.lr_factor)
        if saved.nu_plateau is not None and self.nu_plateau is not None:
            self.nu_plateau.load_state_dict(saved.nu_plateau)

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus ``tloss_state``, written atomically.

        nnU-Net builds and writes its checkpoint dict inside one method with no hook for extra entries, so
        the stock keys are assembled here the same way (tests compare the key set with the stock trainer's).
        """
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        network = self.network.module if self.is_ddp else self.network
        if isinstance(network, OptimizedModule):
            network = network._orig_mod
        checkpoint = {
            "network_weights": network.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "logging": self.logger.get_checkpoint(),
            "_best_ema": self._best_ema,
            "current_epoch": self.current_epoch + 1,
            "init_args": self.my_init_kwargs,
            "trainer_name": self.__class__.__name__,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            TLOSS_STATE_KEY: self.tloss_state_dict(),
        }
        with atomic_target(filename) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """nnU-Net's restore, then ``tloss_state``; a checkpoint without it loads with a warning (nu restarts).

        A checkpoint dict is accepted too: nnU-Net's own method (2.8.1) only reads paths (a dict reaches an
        unassigned variable there), so a dict goes through a temporary file.
        """
        if isinstance(filename_or_checkpoint, dict):
            with tempfile.TemporaryDirectory(prefix="tloss-checkpoint-") as folder:
                path = os.path.join(folder, "checkpoint.pth")
                torch.save(filename_or_checkpoint, path)
                self.load_checkpoint(path)
            return
        if not isinstance(filename_or_checkpoint, (str, os.PathLike)):
            raise TypeError("load_checkpoint takes a checkpoint path or dict, "
                            f"got {type(filename_or_checkpoint).__name__}.")
        filename_or_checkpoint = os.fspath(filename_or_checkpoint)
        super().load_checkpoint(filename_or_checkpoint)
        # mmap: only the small tloss_state tensors are actually read a second time.
        checkpoint = torch.load(filename_or_checkpoint, map_location="cpu", mmap=True, weights_only=False)
        # NuLocalLogger re-registers "nu" when nnU-Net replaces its dict; a logger swapped by a subclass may not.
        padded = ensure_logging_key(self.logger.local_logger.my_fantastic_logging, NU_KEY)
        padded = max(padded, getattr(self.logger.local_logger, "padded_on_load", 0))
        state = checkpoint.get(TLOSS_STATE_KEY)
        tloss = self._built()[0]
        if state is None:
            message = (f"checkpoint has no '{TLOSS_STATE_KEY}' (not written by a T-Loss trainer, or by an old "
                       f"version): nu restarts at {tloss.nu:.4g} and its optimiser state is empty; "
                       f"{padded} past epochs are logged as nu=NaN.")
            warnings.warn(message, stacklevel=2)
            self.print_to_log_file("WARNING:", message)
            return
        self.load_tloss_state_dict(state)
        self.print_to_log_file(f"T-Loss state restored: log_nu={float(tloss.log_nu.detach())!r} nu={tloss.nu!r}")
