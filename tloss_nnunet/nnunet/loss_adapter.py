"""Layer 3: the T-Loss on nnU-Net's outputs and targets (label maps, regions, ignore label, deep supervision).

nnU-Net hands the loss one of two target formats (see ``nnunetv2.training.loss.compound_losses``):

* label maps: logits (B, C, *spatial) with C classes including background, target (B, 1, *spatial) integer
  labels; with an ignore label its value marks pixels that carry no label. The T-Loss is taken on
  ``softmax(logits)`` over the foreground channels 1..C-1 against the one-hot target (for C = 2 this is the
  paper's formulation: the foreground probability against the binary mask).
* regions: logits (B, R, *spatial), one channel per (possibly overlapping) region, target (B, R, *spatial)
  bool, plus one extra LAST channel that is True where the ignore label was (only with an ignore label).
  The T-Loss is taken on ``sigmoid(logits)`` of every region channel.

Ignored pixels count in neither the residual sum nor D. With deep supervision nnU-Net passes lists of
outputs and targets (full resolution first) and :class:`~nnunetv2.training.loss.deep_supervision.DeepSupervisionWrapper`
calls this adapter once per scale with the same :class:`~tloss_nnunet.TLoss` (one nu, D read per scale).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tloss_nnunet.loss import TLoss, valid_elements

__all__ = ["NnUNetTLoss", "build_tloss_for_nnunet", "deep_supervision_weights"]


def build_tloss_for_nnunet(has_regions: bool, **tloss_kwargs) -> TLoss:
    """Return a :class:`TLoss` configured for nnU-Net's label-map or region training.

    Args:
        has_regions: True for region-based training (sigmoid per region channel, all channels are foreground),
            False for label maps (softmax over classes, background channel excluded, one-hot target).
        **tloss_kwargs: forwarded to :class:`TLoss` (``nu_init``, ``normalize``, ``log_precision``, ...).
            The activation, one-hot and channel flags are fixed by the mode and may not be passed.
    """
    fixed = {"sigmoid", "softmax", "other_act", "to_onehot_y", "include_background", "ignore_index", "reduction"}
    clash = sorted(fixed.intersection(tloss_kwargs))
    if clash:
        raise ValueError(f"{clash} are set by nnU-Net's target format and cannot be overridden.")
    if has_regions:
        return TLoss(sigmoid=True, include_background=True, to_onehot_y=False, reduction="mean", **tloss_kwargs)
    return TLoss(softmax=True, include_background=False, to_onehot_y=True, reduction="mean", **tloss_kwargs)


class NnUNetTLoss(nn.Module):
    """Applies a :class:`TLoss` to one scale of nnU-Net's ``(logits, target)`` pair.

    Args:
        tloss: the loss module (built by :func:`build_tloss_for_nnunet` for the same ``has_regions``). It is
            registered as a submodule but owned by the trainer: the same instance is what the nu optimiser steps.
        has_regions: region-based training (target is bool one-hot) instead of label maps.
        ignore_label: nnU-Net's ignore label (label maps: the value in the target; regions: the target's last
            channel is the ignore mask), or None.

    Forward:
        logits: (B, C, *spatial) raw network output (any float dtype; the loss is computed in float32).
        target: (B, 1, *spatial) label map, or (B, R[+1], *spatial) bool regions (+ ignore channel).
        returns: () mean over the batch of the per-sample (D-normalised) Student-t NLL.
    """

    def __init__(self, tloss: TLoss, has_regions: bool, ignore_label: int | None) -> None:
        super().__init__()
        expected_activation = "sigmoid" if has_regions else "softmax"
        if not getattr(tloss, expected_activation):
            raise ValueError(f"{'region' if has_regions else 'label-map'} training needs a TLoss with "
                             f"{expected_activation}=True; build it with build_tloss_for_nnunet().")
        self.tloss = tloss
        self.has_regions = has_regions
        self.ignore_label = ignore_label

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.has_regions:
            mask = None
            if self.ignore_label is not None:
                # The ignore channel is appended last by nnU-Net's ConvertSegmentationToRegionsTransform.
                mask = ~target[:, -1:].bool()
                target = target[:, :-1]
            return self.tloss(logits, target, mask)
        # Label maps: the TLoss's own ignore rule, as an explicit mask (the module's ignore_index stays its own).
        return self.tloss(logits, target, valid_elements(target, self.ignore_label))

    def extra_repr(self) -> str:
        return f"has_regions={self.has_regions}, ignore_label={self.ignore_label}"


def deep_supervision_weights(num_scales: int, is_ddp: bool, compiled: bool) -> np.ndarray:
    """nnU-Net's deep-supervision weights: 1/2^i per scale, the lowest scale switched off, normalised to sum 1.

    Under DDP without torch.compile nnU-Net gives the lowest scale 1e-6 instead of 0, because DDP raises an
    unused-parameter error when a decoder head gets no gradient; the same rule is kept here.

    Returns:
        (num_scales,) float array, weights[0] for the full-resolution output.
    """
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}.")
    weights = np.array([0.5 ** i for i in range(num_scales)])
    if num_scales > 1:
        weights[-1] = 1e-6 if (is_ddp and not compiled) else 0.0
    return weights / weights.sum()

