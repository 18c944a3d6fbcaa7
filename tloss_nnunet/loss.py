"""Layer 2 of the Robust T-Loss: :class:`TLoss`, a loss module that follows MONAI's conventions.

It turns network outputs and targets (activation flags, one-hot label maps, background channel, ignore
label, explicit mask) into residuals and hands them to the functional form (:mod:`tloss_nnunet.functional`,
where the formula is documented); softmax against a label map takes the fused path of
:mod:`tloss_nnunet.fused`. nu is the module's parameter ``log_nu``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch.nn.modules.loss import _Loss

from tloss_nnunet.functional import compute_dtype, loss_from_sums, t_loss, t_nll_from_sums
from tloss_nnunet.fused import label_sum_sq

if TYPE_CHECKING:
    from monai.utils import LossReduction

# MONAI's helpers (LossReduction, one_hot, create_ignore_mask) are imported where they are used: importing
# ``monai`` loads all of its networks (seconds), and nnU-Net imports this module just to look up a trainer
# class by name, for every train and predict command.

__all__ = ["TLoss", "combine_masks", "t_loss", "t_nll_from_sums", "valid_elements"]


_NON_INTEGER_LABELS = ("to_onehot_y=True needs integer class labels, but the target holds values between classes "
                       "(e.g. 1.5); round or fix the label map.")


def combine_masks(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """Elements that count in both bool masks (None means "all count")."""
    masks = [m.bool() for m in (first, second) if m is not None]
    if not masks:
        return None
    return masks[0] if len(masks) == 1 else masks[0] & masks[1]


def valid_elements(target: torch.Tensor, ignore_index: int | None,
                   mask: torch.Tensor | None = None) -> torch.Tensor | None:
    """Bool map of the elements that count, or None when all do: the one place the ignore label is read.

    Label maps ``B1H[WD]``: elements whose label is not ``ignore_index``; one-hot targets: MONAI's rule
    (``monai.metrics.utils.create_ignore_mask``). ``mask`` (True = counts) is combined with it.
    """
    valid = None
    if ignore_index is not None:
        from monai.metrics.utils import create_ignore_mask

        ignored = create_ignore_mask(target, ignore_index)  # None only when ignore_index is None
        valid = None if ignored is None else ignored.bool()
    return combine_masks(valid, mask)


def _check_shapes(input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> None:
    """``input`` BNH[WD]; ``target`` and ``mask`` B1H[WD] or BNH[WD] with the same batch and spatial sizes."""
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"input and target must be torch.Tensor, got {type(input).__name__} and "
                        f"{type(target).__name__}.")
    if input.ndim < 3:
        raise ValueError(f"input must have shape BNH[WD] (at least 3 dimensions), got {tuple(input.shape)}.")
    if target.ndim != input.ndim or target.shape[0] != input.shape[0] or target.shape[2:] != input.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)}: "
                         "expected B1H[WD] or BNH[WD] with the same batch and spatial sizes.")
    if mask is not None and (mask.ndim != input.ndim or mask.shape[0] != input.shape[0]
                             or mask.shape[2:] != input.shape[2:]):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match input shape {tuple(input.shape)}.")


class TLoss(_Loss):
    """Robust T-Loss with a learnable degrees-of-freedom parameter nu, following MONAI's loss conventions.

    The input is ``BNH[WD]`` (logits or probabilities, N channels), the target ``BNH[WD]`` or, with
    ``to_onehot_y=True``, a label map ``B1H[WD]``. After the activation, one-hot conversion and
    optional removal of the background channel, every sample b contributes the Student-t negative
    log-likelihood of its residual ``p - y`` over the D_b valid elements of all included channels
    (see :func:`t_loss`; D_b is read from the input, never fixed at construction). Elements whose label
    is ``ignore_index`` or where ``mask`` is False count in neither the residual sum nor D_b.

    nu is stored as ``log_nu`` (a parameter when ``learn_nu``, else a buffer); **pass
    ``loss.parameters()`` to your optimiser next to the network's**, or nu never moves.

    Example::

        >>> import torch
        >>> from tloss_nnunet import TLoss
        >>> loss_fn = TLoss(softmax=True, to_onehot_y=True, include_background=False)
        >>> logits = torch.randn(2, 3, 32, 32, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 1, 32, 32))
        >>> loss_fn(logits, labels).backward()
        >>> optimizer = torch.optim.Adam([{"params": [logits]}, {"params": loss_fn.parameters(), "lr": 1e-3}])
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        reduction: LossReduction | str = "mean",
        ignore_index: int | None = None,
        nu_init: float = 1.0,
        learn_nu: bool = True,
        normalize: bool = True,
        log_precision: float = 0.0,
        epsilon: float = 1e-8,
        mean_weight_cap: float | None = None,
    ) -> None:
        """
        Args:
            include_background: if False, channel 0 (background) is excluded from the residuals and from D.
            to_onehot_y: convert a ``B1H[WD]`` label-map target to one-hot with ``input.shape[1]`` classes.
            sigmoid: apply a sigmoid to the input.
            softmax: apply a softmax over the channel axis to the input.
            other_act: any other callable activation, e.g. ``torch.tanh``.
            reduction: {``"none"``, ``"mean"``, ``"sum"``} over the batch; ``"none"`` returns shape (B,).
            ignore_index: label value excluded from the loss (label maps: elements equal to it; one-hot
                targets: MONAI's rule, see ``monai.metrics.utils.create_ignore_mask``).
            nu_init: initial degrees of freedom nu, > 0, in natural units (stored as log nu).
            learn_nu: if False, nu is a buffer and the module has no parameters.
            normalize: divide each sample's NLL by its D_b, so the value is per element and does not grow
                with the image size (recommended for training; the paper's code does not normalise).
            log_precision: lambda, log of the diagonal precision: 0.0 is the paper's Sigma = I; the released
                code corresponds to 1.0.
            epsilon: floor added to nu, nu = exp(log_nu) + epsilon.
            mean_weight_cap: c > 0 caps the growth of the step: every term is divided by the detached
                max(1, mean_b w_b / c), w_b = (nu + D_b) / (nu + S_b) ~ 1 / MSE_b, so once the batch's mean
                weight exceeds c only the weights' ratios act (see :mod:`tloss_nnunet.functional`; the value
                is then a scaled NLL). 1 keeps only the ratios from the start; None (default): no cap.

        Raises:
            TypeError: when ``other_act`` is not None and not callable.
            ValueError: when more than one activation is requested, or nu_init/epsilon/log_precision/
                mean_weight_cap are invalid.
        """
        from monai.utils import LossReduction

        super().__init__(reduction=LossReduction(reduction).value)
        if other_act is not None and not callable(other_act):
            raise TypeError(f"other_act must be None or callable but is {type(other_act).__name__}.")
        if int(sigmoid) + int(softmax) + int(other_act is not None) > 1:
            raise ValueError("Incompatible values: more than 1 of [sigmoid=True, softmax=True, other_act is not None].")
        if not (isinstance(nu_init, (int, float)) and math.isfinite(nu_init) and nu_init > 0):
            raise ValueError(f"nu_init must be a finite number > 0, got {nu_init!r}.")
        if not (math.isfinite(epsilon) and epsilon >= 0):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}.")
        if not math.isfinite(log_precision):
            raise ValueError(f"log_precision must be finite, got {log_precision!r}.")
        if mean_weight_cap is not None and not (math.isfinite(mean_weight_cap) and mean_weight_cap > 0):
            raise ValueError(f"mean_weight_cap must be None or a finite number > 0, got {mean_weight_cap!r}.")
        if ignore_index is not None and not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be None or an int, got {type(ignore_index).__name__}.")
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.other_act = other_act
        self.ignore_index = ignore_index
        self.normalize = normalize
        self.log_precision = float(log_precision)
        self.epsilon = float(epsilon)
        self.learn_nu = learn_nu
        self.mean_weight_cap = None if mean_weight_cap is None else float(mean_weight_cap)
        log_nu = torch.tensor(math.log(nu_init), dtype=torch.float32)
        if learn_nu:
            self.log_nu = torch.nn.Parameter(log_nu)
        else:
            self.register_buffer("log_nu", log_nu)

    @property
    def nu(self) -> float:
        """Current degrees of freedom in natural units, exp(log_nu) + epsilon."""
        return math.exp(float(self.log_nu.detach())) + self.epsilon

    def extra_repr(self) -> str:
        return (
            f"nu={self.nu:.4g}, learn_nu={self.learn_nu}, normalize={self.normalize}, "
            f"log_precision={self.log_precision}, mean_weight_cap={self.mean_weight_cap}, "
            f"include_background={self.include_background}, "
            f"reduction={self.reduction}"
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            input: ``BNH[WD]`` logits (with an activation flag) or probabilities.
            target: ``BNH[WD]`` one-hot / soft labels, or ``B1H[WD]`` label map with ``to_onehot_y=True``.
            mask: optional bool ``B1H[WD]`` or ``BNH[WD]``; True marks elements that count (combined with
                ``ignore_index``).

        Returns:
            the loss reduced over the batch (``"mean"``/``"sum"``: shape ()), or per sample (``"none"``: (B,)).

        Raises:
            TypeError: when input/target are not tensors.
            ValueError: when shapes are incompatible.
        """
        _check_shapes(input, target, mask)
        n_pred_ch = input.shape[1]
        if (self.softmax and self.to_onehot_y and n_pred_ch > 1 and target.shape[1] == 1
                and (mask is None or mask.shape[1] == 1)):
            return self._softmax_label_map_forward(input, target, mask)

        # Activations in float32+ (not in float16 under autocast) so the residuals are accurate.
        with torch.autocast(device_type=input.device.type, enabled=False):
            input = self._activate(input.to(compute_dtype(input)))
            ignored = valid_elements(target, self.ignore_index)
            target = self._one_hot_target(target, ignored, n_pred_ch)
            valid = combine_masks(ignored, mask)
            input, target, valid = self._drop_background(input, target, valid)
            if target.shape != input.shape:
                raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) "
                                 f"from input ({tuple(input.shape)}).")
            if valid is not None and valid.shape[1] not in (1, input.shape[1]):
                raise ValueError(f"mask has {valid.shape[1]} channels; expected 1 or {input.shape[1]}.")
            return t_loss(input, target, self.log_nu, valid, log_precision=self.log_precision,
                          normalize=self.normalize, epsilon=self.epsilon, reduction=self.reduction,
                          mean_weight_cap=self.mean_weight_cap)

    def _activate(self, input: torch.Tensor) -> torch.Tensor:
        """The requested activation (sigmoid, softmax over channels, or ``other_act``) of ``BNH[WD]`` logits."""
        if self.sigmoid:
            input = torch.sigmoid(input)
        if self.softmax:
            if input.shape[1] == 1:
                warnings.warn("single channel prediction, `softmax=True` ignored.", stacklevel=3)
            else:
                input = torch.softmax(input, 1)
        if self.other_act is not None:
            input = self.other_act(input)
        return input

    def _one_hot_target(self, target: torch.Tensor, valid: torch.Tensor | None, n_pred_ch: int) -> torch.Tensor:
        """``B1H[WD]`` label map -> ``BNH[WD]`` one-hot when ``to_onehot_y``; other targets pass unchanged."""
        if not self.to_onehot_y:
            return target
        if n_pred_ch == 1:
            warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=3)
            return target
        if target.shape[1] != 1:
            raise ValueError(f"to_onehot_y=True needs a B1H[WD] label map, got target shape {tuple(target.shape)}.")
        from monai.networks import one_hot

        if valid is not None:
            # ignored labels may lie outside [0, N): map them to 0 so one_hot is defined; they are masked.
            target = torch.where(valid, target, torch.zeros_like(target))
        if target.is_floating_point() and bool((target != target.round()).any()):
            # one_hot would truncate 1.5 to class 1. Integer label maps cannot hold one: no check, no host sync.
            raise ValueError(_NON_INTEGER_LABELS)
        return one_hot(target, num_classes=n_pred_ch)

    def _drop_background(self, input: torch.Tensor, target: torch.Tensor,
                         valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Without ``include_background``: channel 0 leaves input, target and (an N-channel) mask."""
        n_pred_ch = input.shape[1]
        if self.include_background:
            return input, target, valid
        if n_pred_ch == 1:
            warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=3)
            return input, target, valid
        if valid is not None and valid.shape[1] == n_pred_ch:
            valid = valid[:, 1:]
        return input[:, 1:], target[:, 1:], valid

    def _softmax_label_map_forward(self, logits: torch.Tensor, labels: torch.Tensor,
                                   mask: torch.Tensor | None) -> torch.Tensor:
        """softmax + one-hot label map (nnU-Net's and MONAI's usual case) through the fused, memory-lean path."""
        valid = valid_elements(labels, self.ignore_index, mask)
        # A label outside [0, N) or between two classes (1.5) would silently count as "no class" here: refuse it.
        # Both tests share the one host sync this path already had.
        out_of_range = (labels < 0) | (labels >= logits.shape[1])
        if labels.is_floating_point():
            out_of_range |= labels != labels.round()  # NaN included
        if valid is not None:
            out_of_range &= valid
        if out_of_range.any():
            between = labels != labels.round() if labels.is_floating_point() else torch.zeros_like(out_of_range)
            if bool((between if valid is None else between & valid).any()):  # the error path only
                raise ValueError(_NON_INTEGER_LABELS)
            raise ValueError(f"target holds labels outside [0, {logits.shape[1]}) that are not ignored "
                             f"(ignore_index={self.ignore_index}); set ignore_index or mask them.")
        first_channel = 0 if self.include_background else 1
        n_included = logits.shape[1] - first_channel
        dtype = compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            sum_sq = label_sum_sq(logits, labels, valid, first_channel)
            if valid is None:
                count = torch.full_like(sum_sq, math.prod(logits.shape[2:]) * n_included, dtype=dtype)
            else:
                count = valid.sum(dim=tuple(range(1, valid.ndim))).to(dtype) * n_included
            return loss_from_sums(
                sum_sq, count, self.log_nu, self.log_precision, self.normalize, self.epsilon, self.reduction,
                self.mean_weight_cap,
            )
