"""Every checkpoint key the T-Loss trainers read or write, named once (trainer, export, audit, studies, tests).

``NNUNET_CHECKPOINT_KEYS`` is the dict nnU-Net's ``nnUNetTrainer.save_checkpoint`` writes; the trainer has to
restate it (nnU-Net offers no hook for extra entries), so ``tests/test_nnunet_contract.py`` compares it with
the installed nnU-Net's source and fails loudly when a release adds or drops a key. The trainer adds one entry,
``TLOSS_STATE_KEY``, whose inner keys are the fields of :class:`TLossState`. This module imports nothing heavy,
so the export and the command line can use it without loading torch or nnU-Net.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["LEGACY_NU_KEY", "LOG_NU_KEY", "NNUNET_CHECKPOINT_KEYS", "NU_KEY", "TLOSS_STATE_KEY", "TLossState"]

#: The stock entries, in nnU-Net's order (nnunetv2 2.8.1).
NNUNET_CHECKPOINT_KEYS = (
    "network_weights",
    "optimizer_state",
    "grad_scaler_state",
    "logging",
    "_best_ema",
    "current_epoch",
    "init_args",
    "trainer_name",
    "inference_allowed_mirroring_axes",
)
#: What the T-Loss trainer adds to nnU-Net's checkpoint: a :meth:`TLossState.to_dict`.
TLOSS_STATE_KEY = "tloss_state"
#: nu as a float, per epoch: a key of nnU-Net's ``logging`` dict (drawn in progress.png).
NU_KEY = "nu"
#: The key of log nu in :class:`~tloss_nnunet.TLoss`'s state dict (``TLossState.loss``).
LOG_NU_KEY = "log_nu"
#: Checkpoints written before nu was saved once also held nu in natural units under this key of
#: ``tloss_state``; it is ignored on reading (nu is exp(log nu) of the loss state dict).
LEGACY_NU_KEY = "nu"


@dataclass(frozen=True)
class TLossState:
    """The ``tloss_state`` entry of a T-Loss checkpoint: what training needs to continue exactly.

    A dataclass rather than a TypedDict: reading old checkpoints (keys they lack, the legacy natural nu) and
    deriving nu happen in one place, :meth:`from_dict`. The checkpoint itself stores the plain dict of
    :meth:`to_dict` (field name -> value), so ``torch.load`` reads it without this package.

    nu is saved once, as the loss's parameter ``log_nu`` in ``loss``; :attr:`nu` derives it.
    """

    #: ``TLoss.state_dict()``: {``LOG_NU_KEY``: () float32 tensor}.
    loss: dict[str, Any]
    #: ``state_dict()`` of nu's Adam optimiser.
    nu_optimizer: dict[str, Any]
    #: lambda of the loss's covariance exp(-lambda) I (not a tensor of the loss; the label audit reads it).
    log_precision: float = 0.0
    #: factor on the poly schedule that the nu-plateau rule lowered (None: the trainer does not use the rule).
    lr_factor: float | None = None
    #: ``NuPlateauDetector.state_dict()`` (None: the trainer does not use the rule).
    nu_plateau: dict[str, Any] | None = None
    #: ``WeightFreeze.state_dict()`` of ``nnUNetTrainerTLoss_freeze``: agreement history, detection, per-case
    #: weights and caps (None: another trainer; checkpoints written before it existed lack the key).
    weight_freeze: dict[str, Any] | None = None

    @property
    def log_nu(self) -> float:
        """log nu, read from the loss state dict."""
        return float(self.loss[LOG_NU_KEY])

    @property
    def nu(self) -> float:
        """nu in natural units, exp(log nu) (without the loss's epsilon floor, 1e-8 by default)."""
        return math.exp(self.log_nu)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry: every field by name; the optional ones only when set (as before)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, state: object) -> TLossState:
        """Read a ``tloss_state`` entry, of this version or an earlier one.

        Earlier versions also stored ``LEGACY_NU_KEY`` (ignored) and, before the label audit, no
        ``log_precision`` (0.0, the trainer's default then). Other unknown keys are ignored too.

        Raises:
            ValueError: ``state`` is not a mapping, lacks ``loss`` or ``nu_optimizer``, or its loss state has
                no ``LOG_NU_KEY``.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"'{TLOSS_STATE_KEY}' is a {type(state).__name__}, not a dict")
        names = [f.name for f in fields(cls)]
        missing = [name for name in ("loss", "nu_optimizer") if name not in state]
        if missing or not isinstance(state["loss"], Mapping) or LOG_NU_KEY not in state["loss"]:
            raise ValueError(f"'{TLOSS_STATE_KEY}' lacks {missing or [f'loss.{LOG_NU_KEY}']} (not written by a "
                             f"T-Loss trainer?)")
        return cls(**{name: state[name] for name in names if name in state})
