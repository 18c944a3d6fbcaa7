"""tloss-nnunet: the Robust T-Loss for MONAI and nnU-Net v2.

The public entry points are :class:`TLoss` (a MONAI-style loss module) and :func:`t_loss`
(its functional form). The nnU-Net trainers live in :mod:`tloss_nnunet.nnunet`, the noisy-label
protocol in :mod:`tloss_nnunet.noise`, the dataset converters in :mod:`tloss_nnunet.converters` and the
reproduction kit (demo, pipeline runner, report, study trainers) in :mod:`tloss_nnunet.repro`; the library
imports none of the last three (``docs/explanation/architecture.md``).

``TLoss`` and ``t_loss`` are imported on first use, so the noise and converter worker processes
(and commands that do not train) never pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes resolve to, for type checkers and IDEs
    from tloss_nnunet.functional import t_loss
    from tloss_nnunet.loss import TLoss

__version__ = "0.1.0"

__all__ = ["TLoss", "t_loss", "__version__"]

_LAZY = {"TLoss": "tloss_nnunet.loss", "t_loss": "tloss_nnunet.functional"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
