"""tloss-nnunet: the Robust T-Loss for MONAI and nnU-Net v2.

The public entry points are :class:`TLoss` (a MONAI-style loss module) and :func:`t_loss`
(its functional form). The nnU-Net trainers live in :mod:`tloss_nnunet.nnunet`, the noisy-label
protocol in :mod:`tloss_nnunet.noise` and the dataset converters in :mod:`tloss_nnunet.converters`.
"""

from tloss_nnunet.loss import TLoss, t_loss

__version__ = "0.1.0"

__all__ = ["TLoss", "t_loss", "__version__"]
