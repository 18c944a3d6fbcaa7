"""The Robust T-Loss (Gonzalez-Jimenez et al., MICCAI 2023) as a functional and a MONAI-style module.

Per sample b, with residuals delta = p - y over the D_b valid elements (p: prediction in probability
space, y: target), degrees of freedom nu > 0 and a diagonal precision exp(lambda) (``log_precision``),
the loss is the negative log-likelihood of a multivariate Student-t centred on the target::

    NLL_b = -lgamma((nu + D_b) / 2) + lgamma(nu / 2) + (D_b / 2) * log(pi * nu) - (D_b / 2) * lambda
            + ((nu + D_b) / 2) * log(1 + exp(lambda) * sum(delta^2) / nu)

``lambda = 0`` is the paper's Sigma = I; the released code corresponds to ``lambda = 1``. With
``normalize=True`` the value is divided by D_b, so its scale does not grow with the image size.
The gradient with respect to the prediction is ``(nu + D_b) / (nu + S_b) * exp(lambda) * delta``
(S_b = exp(lambda) * sum(delta^2)): one weight per sample, so a sample whose residual is large
(a noisy label) is down-weighted as a whole. A small nu gives heavy tails (robust), a large nu
approaches the Gaussian (a sum-of-squares loss).

For D_b in the thousands the weight w_b = (nu + D_b) / (nu + S_b) is 1 / MSE_b to within 1e-3: it grows as
the fit of a sample improves, and with ``normalize=True`` the gradient ``w_b * delta / D_b`` is about
``delta / S_b``, a step that grows as the loss falls (under SGD, a rising learning rate).
``mean_weight_cap=c`` stops that growth at a batch mean weight of c: every term is divided by the detached
``max(1, mean_b' w_b' / c)``, so the gradient is ``w_b * delta / D_b`` while the fit is poor and
``c * (w_b / mean w) * delta / D_b`` once it is good: only the weights' ratios act from then on. Since
w_b >= 1 for probabilities, ``c = 1`` keeps only the ratios from the start (a sum-of-squares step).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Callable

import torch
from torch.nn.modules.loss import _Loss

if TYPE_CHECKING:
    from monai.utils import LossReduction

# MONAI's helpers (LossReduction, one_hot, create_ignore_mask) are imported where they are used: importing
# ``monai`` loads all of its networks (seconds), and nnU-Net imports this module just to look up a trainer
# class by name, for every train and predict command.

__all__ = ["TLoss", "t_loss", "t_nll_from_sums", "t_weights_from_sums"]


def _compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype (float16, bfloat16, float32, ints, bool) becomes float32."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _scalar_dtype(device: torch.device) -> torch.dtype:
    """dtype of the per-sample scalar terms: float64 where the device supports it.

    lgamma((nu + D) / 2) and (D / 2) log(pi nu) are each ~D log D and cancel to O(D); at D ~ 1e7 float32
    would lose the result's last digits, float64 keeps them. These are B scalars, so the cost is nil.
    """
    return torch.float32 if device.type == "mps" else torch.float64


def t_nll_from_sums(
    sum_sq: torch.Tensor,
    count: torch.Tensor,
    log_nu: torch.Tensor,
    log_precision: float | torch.Tensor = 0.0,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """Student-t negative log-likelihood from per-sample sufficient statistics.

    Args:
        sum_sq: (B,) sum of squared residuals over each sample's valid elements.
        count: (B,) number of valid elements D_b (may be 0: the NLL is then exactly 0).
        log_nu: () log of the degrees of freedom; nu = exp(log_nu) + epsilon.
        log_precision: lambda, the log of the diagonal precision of the covariance.
        epsilon: floor added to nu so it stays positive when log_nu is very negative.

    Returns:
        (B,) NLL_b in the dtype of ``sum_sq`` (see the module docstring for the formula).
    """
    out_dtype = sum_sq.dtype
    dtype = _scalar_dtype(sum_sq.device)
    sum_sq = sum_sq.to(dtype)
    count = count.to(dtype)
    log_precision = torch.as_tensor(log_precision, dtype=dtype, device=sum_sq.device)
    nu = torch.exp(log_nu.to(dtype)) + epsilon
    half_count = 0.5 * count
    scaled = torch.exp(log_precision) * sum_sq
    nll = (
        torch.lgamma(0.5 * nu) - torch.lgamma(0.5 * nu + half_count)
        + half_count * (math.log(math.pi) + torch.log(nu) - log_precision)
        + (0.5 * nu + half_count) * torch.log1p(scaled / nu)
    )
    # An all-ignored sample has no likelihood term: the lgamma terms cancel to exactly 0, made explicit here.
    nll = torch.where(count > 0, nll, torch.zeros_like(nll))
    return nll.to(out_dtype)


def t_weights_from_sums(
    sum_sq: torch.Tensor,
    count: torch.Tensor,
    log_nu: torch.Tensor,
    log_precision: float | torch.Tensor = 0.0,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """Per-sample weight w_b = (nu + D_b) / (nu + exp(lambda) S_b) that the T-Loss puts on a sample's residual.

    d NLL_b / d delta = w_b * exp(lambda) * delta: the sample's gradient is a least-squares gradient times w_b.
    Args as in :func:`t_nll_from_sums` (``sum_sq``, ``count``: (B,)). Returns (B,) detached, in float64 where
    the device has it; 1 for an all-ignored sample (D_b = S_b = 0).
    """
    dtype = _scalar_dtype(sum_sq.device)
    nu = torch.exp(log_nu.detach().to(dtype)) + epsilon
    scaled = torch.exp(torch.as_tensor(log_precision, dtype=dtype, device=sum_sq.device)) * sum_sq.detach().to(dtype)
    return (nu + count.to(dtype)) / (nu + scaled)


def t_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    log_nu: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    log_precision: float | torch.Tensor = 0.0,
    normalize: bool = True,
    epsilon: float = 1e-8,
    reduction: LossReduction | str = "mean",
    mean_weight_cap: float | None = None,
) -> torch.Tensor:
    """Functional T-Loss for callers that keep nu themselves.

    Args:
        input: (B, ...) predictions in probability space (no activation is applied here).
        target: same shape as ``input``; 0/1 labels or soft labels.
        log_nu: () tensor, log of the degrees of freedom (may require grad).
        mask: optional bool tensor broadcastable to ``input``; True marks elements that count. Masked
            elements are excluded from both the residual sum and D.
        log_precision: lambda, log of the diagonal precision (0 = identity covariance, as in the paper).
        normalize: divide each sample's NLL by its number of valid elements D_b (0 for D_b = 0).
        epsilon: floor on nu (nu = exp(log_nu) + epsilon).
        reduction: ``"none"`` -> (B,), ``"mean"`` or ``"sum"`` over the batch -> ().
        mean_weight_cap: c > 0: divide every term by the detached max(1, batch mean weight / c), so the step
            stops growing once the mean weight reaches c (see the module docstring); None: no cap.

    The residuals are formed in float32 (float64 for float64 input) with autocast disabled, whatever the
    input dtype, so float16/bfloat16 logits under mixed precision give the same loss as float32.
    """
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"input and target must be torch.Tensor, got {type(input).__name__} and {type(target).__name__}.")
    if input.shape != target.shape:
        raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input ({tuple(input.shape)}).")
    if input.ndim < 1 or input.shape[0] == 0:
        raise ValueError(f"input must have a non-empty batch dimension, got shape {tuple(input.shape)}.")
    dtype = _compute_dtype(input)
    with torch.autocast(device_type=input.device.type, enabled=False):
        delta = input.to(dtype) - target.to(dtype)
        reduce_dims = tuple(range(1, input.ndim))
        if mask is None:
            count = torch.full((input.shape[0],), math.prod(input.shape[1:]), dtype=dtype, device=input.device)
        else:
            mask = mask.to(torch.bool).expand_as(delta)
            delta = torch.where(mask, delta, torch.zeros((), dtype=dtype, device=delta.device))
            count = mask.sum(dim=reduce_dims).to(dtype)
        sum_sq = delta.square().sum(dim=reduce_dims)
    return _loss_from_sums(sum_sq, count, log_nu, log_precision, normalize, epsilon, reduction, mean_weight_cap)


def _loss_from_sums(
    sum_sq: torch.Tensor,
    count: torch.Tensor,
    log_nu: torch.Tensor,
    log_precision: float | torch.Tensor,
    normalize: bool,
    epsilon: float,
    reduction: LossReduction | str,
    mean_weight_cap: float | None = None,
) -> torch.Tensor:
    """(B,) sufficient statistics -> the reduced loss: NLL, optionally / D_b and / the capped mean weight, then
    the batch reduction."""
    from monai.utils import LossReduction

    nll = t_nll_from_sums(sum_sq, count, log_nu, log_precision, epsilon)
    if normalize:
        nll = nll / count.clamp(min=1).to(nll.dtype)
    if mean_weight_cap is not None:
        valid = count > 0
        if valid.any():
            mean_weight = t_weights_from_sums(sum_sq, count, log_nu, log_precision, epsilon)[valid].mean()
            nll = nll / torch.clamp(mean_weight / mean_weight_cap, min=1.0).to(nll.dtype)
    reduction = LossReduction(reduction)
    if reduction == LossReduction.MEAN:
        return nll.mean()
    if reduction == LossReduction.SUM:
        return nll.sum()
    return nll


def _label_residual_(prob: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None, first_channel: int) -> torch.Tensor:
    """In place: softmax probabilities (B, N, ...) -> residuals p - onehot(labels), zero outside the loss.

    Channels below ``first_channel`` and elements where ``valid`` is False are set to 0, so they add nothing to
    the residual sum. ``labels`` is a (B, 1, ...) label map; ``valid`` a (B, 1, ...) bool map or None.
    """
    prob[:, :first_channel] = 0
    for c in range(first_channel, prob.shape[1]):
        prob[:, c].sub_((labels[:, 0] == c).to(torch.uint8))
    if valid is not None:
        prob.mul_(valid)
    return prob


class _SoftmaxLabelSumSq(torch.autograd.Function):
    """Per-sample sum of (softmax(x) - onehot(y))^2 over the included channels and valid elements, fused.

    Equal to the generic path (softmax, one-hot, slice, subtract, square, sum) but saves only the logits for
    backward and recomputes the probabilities there, so neither probabilities nor one-hot targets stay alive
    between forward and backward: the loss then costs about as much memory as softmax(x).sum() itself.
    Backward: dL/dp = 2 g_b delta, and the softmax Jacobian gives dL/dx = p * (dL/dp - sum_c p_c dL/dp_c).
    """

    @staticmethod
    def forward(ctx, logits, labels, valid, first_channel: int):  # type: ignore[override]
        residual = _label_residual_(torch.softmax(logits.to(_compute_dtype(logits)), 1), labels, valid, first_channel)
        ctx.save_for_backward(logits, labels, valid)
        ctx.first_channel = first_channel
        return residual.square_().sum(dim=tuple(range(1, logits.ndim)))

    @staticmethod
    def backward(ctx, grad_sum_sq):  # type: ignore[override]
        logits, labels, valid = ctx.saved_tensors
        prob = torch.softmax(logits.to(_compute_dtype(logits)), 1)
        grad_prob = _label_residual_(prob.clone(), labels, valid, ctx.first_channel)
        grad_prob.mul_((2 * grad_sum_sq).view(-1, *([1] * (logits.ndim - 1))))
        # sum_c p_c g_c accumulated channel by channel: no (B, N, ...) temporary at the memory peak.
        dot = torch.zeros_like(prob[:, :1])
        for c in range(prob.shape[1]):
            dot.addcmul_(prob[:, c : c + 1], grad_prob[:, c : c + 1])
        grad_prob.sub_(dot).mul_(prob)
        return grad_prob.to(logits.dtype), None, None, None


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
                weight exceeds c only the weights' ratios act (see the module docstring; the value is then a
                scaled NLL). 1 keeps only the ratios from the start; None (default) is the plain T-Loss.

        Raises:
            TypeError: when ``other_act`` is not None and not callable.
            ValueError: when more than one activation is requested, or nu_init/epsilon/log_precision are invalid.
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
        if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(f"input and target must be torch.Tensor, got {type(input).__name__} and {type(target).__name__}.")
        if input.ndim < 3:
            raise ValueError(f"input must have shape BNH[WD] (at least 3 dimensions), got {tuple(input.shape)}.")
        if target.ndim != input.ndim or target.shape[0] != input.shape[0] or target.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)}: expected "
                "B1H[WD] or BNH[WD] with the same batch and spatial sizes."
            )
        if mask is not None and (mask.ndim != input.ndim or mask.shape[0] != input.shape[0] or mask.shape[2:] != input.shape[2:]):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match input shape {tuple(input.shape)}.")

        from monai.metrics.utils import create_ignore_mask
        from monai.networks import one_hot

        n_pred_ch = input.shape[1]
        if self.softmax and self.to_onehot_y and n_pred_ch > 1 and target.shape[1] == 1 and (mask is None or mask.shape[1] == 1):
            return self._softmax_label_map_forward(input, target, mask)

        # Activations in float32+ (not in float16 under autocast) so the residuals are accurate.
        with torch.autocast(device_type=input.device.type, enabled=False):
            input = input.to(_compute_dtype(input))
            if self.sigmoid:
                input = torch.sigmoid(input)
            if self.softmax:
                if n_pred_ch == 1:
                    warnings.warn("single channel prediction, `softmax=True` ignored.", stacklevel=2)
                else:
                    input = torch.softmax(input, 1)
            if self.other_act is not None:
                input = self.other_act(input)

            valid = create_ignore_mask(target, self.ignore_index)
            if self.to_onehot_y:
                if n_pred_ch == 1:
                    warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=2)
                else:
                    if target.shape[1] != 1:
                        raise ValueError(f"to_onehot_y=True needs a B1H[WD] label map, got target shape {tuple(target.shape)}.")
                    if valid is not None:
                        # ignored labels may lie outside [0, N): map them to 0 so one_hot is defined; masked below.
                        target = torch.where(valid.bool(), target, torch.zeros_like(target))
                    target = one_hot(target, num_classes=n_pred_ch)
            if mask is not None:
                valid = mask.bool() if valid is None else valid.bool() & mask.bool()

            if not self.include_background:
                if n_pred_ch == 1:
                    warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=2)
                else:
                    input = input[:, 1:]
                    target = target[:, 1:]
                    if valid is not None and valid.shape[1] == n_pred_ch:
                        valid = valid[:, 1:]

            if target.shape != input.shape:
                raise ValueError(f"ground truth has different shape ({tuple(target.shape)}) from input ({tuple(input.shape)}).")
            if valid is not None and valid.shape[1] not in (1, input.shape[1]):
                raise ValueError(f"mask has {valid.shape[1]} channels; expected 1 or {input.shape[1]}.")

            return t_loss(
                input,
                target,
                self.log_nu,
                valid,
                log_precision=self.log_precision,
                normalize=self.normalize,
                epsilon=self.epsilon,
                reduction=self.reduction,
                mean_weight_cap=self.mean_weight_cap,
            )

    def _softmax_label_map_forward(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """softmax + one-hot label map (nnU-Net's and MONAI's usual case) through the fused, memory-lean path."""
        from monai.metrics.utils import create_ignore_mask

        valid = create_ignore_mask(labels, self.ignore_index)
        if valid is not None:
            valid = valid.bool()
        if mask is not None:
            valid = mask.bool() if valid is None else valid & mask.bool()
        # A label outside [0, N) would silently count as "no class" here (the one-hot path raises): refuse it.
        out_of_range = (labels < 0) | (labels >= logits.shape[1])
        if valid is not None:
            out_of_range &= valid
        if out_of_range.any():
            raise ValueError(
                f"target holds labels outside [0, {logits.shape[1]}) that are not ignored "
                f"(ignore_index={self.ignore_index}); set ignore_index or mask them."
            )
        first_channel = 0 if self.include_background else 1
        n_included = logits.shape[1] - first_channel
        dtype = _compute_dtype(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            sum_sq = _SoftmaxLabelSumSq.apply(logits, labels, valid, first_channel)
            if valid is None:
                count = torch.full_like(sum_sq, math.prod(logits.shape[2:]) * n_included, dtype=dtype)
            else:
                count = valid.sum(dim=tuple(range(1, valid.ndim))).to(dtype) * n_included
            return _loss_from_sums(
                sum_sq, count, self.log_nu, self.log_precision, self.normalize, self.epsilon, self.reduction,
                self.mean_weight_cap,
            )
