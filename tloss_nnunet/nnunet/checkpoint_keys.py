"""Every checkpoint key the T-Loss trainers read or write, named once (trainer, export, study, tests).

``NNUNET_CHECKPOINT_KEYS`` is the dict nnU-Net's ``nnUNetTrainer.save_checkpoint`` writes; the trainer has to
restate it (nnU-Net offers no hook for extra entries), so ``tests/test_nnunet_contract.py`` compares it with
the installed nnU-Net's source and fails loudly when a release adds or drops a key. This module imports
nothing, so the export and the command line can use it without loading torch or nnU-Net.
"""

from __future__ import annotations

__all__ = ["NNUNET_CHECKPOINT_KEYS", "NU_KEY", "TLOSS_STATE_KEY"]

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
#: What the T-Loss trainer adds: the loss's state dict, nu's optimiser, lr factor and plateau state.
TLOSS_STATE_KEY = "tloss_state"
#: nu as a float: a key of nnU-Net's per-epoch ``logging`` dict and of the ``tloss_state`` entry.
NU_KEY = "nu"
