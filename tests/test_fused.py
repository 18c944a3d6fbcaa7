"""The fused softmax + label-map paths equal the generic one (values and gradients, nu's included).

``tests/test_loss.py::test_fused_label_map_path_equals_one_hot_path`` covers N = 4 classes
(:class:`~tloss_nnunet.fused.SoftmaxLabelSumSq`); here N = 2 (:class:`~tloss_nnunet.fused.TwoClassLabelSumSq`,
sigmoid of the logit difference on one channel) and the one-pass sum of squares.
"""

from __future__ import annotations

import pytest
import torch

from tloss_nnunet import TLoss
from tloss_nnunet.fused import SoftmaxLabelSumSq, TwoClassLabelSumSq, _row_sum_sq, label_sum_sq


def _value_and_grads(loss_fn, logits, *args, **kwargs):
    value = loss_fn(logits, *args, **kwargs)
    params = [logits, *[p for p in getattr(loss_fn, "parameters", lambda: [])()]]
    return value, torch.autograd.grad(value.sum(), params)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("spatial", [(9, 7), (4, 5, 3), (64, 64)])
@pytest.mark.parametrize("cap", [None, 1.0])
def test_two_class_path_equals_the_one_hot_path(include_background, spatial, cap):
    gen = torch.Generator().manual_seed(3)
    logits = (3 * torch.randn(3, 2, *spatial, generator=gen, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, 2, (3, 1, *spatial), generator=gen)
    labels.view(-1)[0] = 7  # ignored
    mask = torch.rand(3, 1, *spatial, generator=gen) > 0.3
    kwargs = dict(include_background=include_background, ignore_index=7, nu_init=0.7, mean_weight_cap=cap)
    fused = TLoss(softmax=True, to_onehot_y=True, reduction="none", **kwargs).double()
    value, (grad_x, grad_nu) = _value_and_grads(fused, logits, labels, mask=mask)
    valid = mask & (labels != 7)
    generic = TLoss(softmax=True, reduction="none", **kwargs).double()
    from monai.networks import one_hot

    expected, (exp_x, exp_nu) = _value_and_grads(generic, logits, one_hot(torch.where(valid, labels, 0), 2),
                                                 mask=valid)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad_x, exp_x)
    torch.testing.assert_close(grad_nu, exp_nu)
    # numerical Jacobian: one forward per element; the cap's divisor is detached
    if logits.numel() < 500 and cap is None:
        assert torch.autograd.gradcheck(lambda x: fused(x, labels, mask=mask), (logits,))


def test_two_class_function_equals_the_n_class_function():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 2, 16, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (2, 1, 16, 8), generator=gen).to(torch.int16)
    valid = torch.rand(2, 1, 16, 8, generator=gen) > 0.2
    for first_channel in (0, 1):
        for function in (TwoClassLabelSumSq, SoftmaxLabelSumSq):
            weights = torch.tensor([0.3, -1.7], dtype=torch.float64)
            value = function.apply(logits, labels, valid, first_channel)
            (grad,) = torch.autograd.grad((value * weights).sum(), logits)
            if function is TwoClassLabelSumSq:
                two = (value, grad)
        torch.testing.assert_close(two[0], value)
        torch.testing.assert_close(two[1], grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_two_class_low_precision_logits_give_the_float32_loss_and_a_gradient_in_their_dtype(dtype):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 32, 32, generator=gen).to(dtype)
    labels = torch.randint(0, 2, (2, 1, 32, 32), generator=gen)
    loss_fn = TLoss(softmax=True, to_onehot_y=True, include_background=False)
    low = logits.clone().requires_grad_()
    high = logits.float().requires_grad_()
    value, (grad_low, _) = _value_and_grads(loss_fn, low, labels)
    expected, (grad_high, _) = _value_and_grads(loss_fn, high, labels)
    assert value.dtype == torch.float32 and grad_low.dtype == dtype
    torch.testing.assert_close(value, expected)  # the same float32 computation from the same values
    torch.testing.assert_close(grad_low.float(), grad_high, rtol=1e-2, atol=1e-6)


def test_two_class_accepts_bool_and_float_label_maps_and_channels_last_logits():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 2, 8, 8, generator=gen)
    labels = torch.randint(0, 2, (2, 1, 8, 8), generator=gen)
    loss_fn = TLoss(softmax=True, to_onehot_y=True)
    reference = loss_fn(logits, labels)
    torch.testing.assert_close(loss_fn(logits, labels.bool()), reference)
    torch.testing.assert_close(loss_fn(logits, labels.float()), reference)
    x = logits.contiguous(memory_format=torch.channels_last).requires_grad_()
    value, (grad, _) = _value_and_grads(loss_fn, x, labels)
    expected, (expected_grad, _) = _value_and_grads(loss_fn, logits.clone().requires_grad_(), labels)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_two_class_keeps_one_channel_for_backward_and_nothing_without_grad():
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    labels = torch.randint(0, 2, (2, 1, 16, 16))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        label_sum_sq(logits, labels, None, 1).sum().backward()
    assert saved == [torch.Size([2, 1, 16, 16])]  # the direction r p (1 - p): half the logits, no labels
    with torch.no_grad():
        value = label_sum_sq(logits, labels, None, 1)
    assert value.shape == (2,)


@pytest.mark.parametrize("n", [4096 * 3, 512, 63, 2 ** 20])
def test_row_sum_sq_is_as_accurate_as_square_sum(n):
    rows = torch.rand(3, n, generator=torch.Generator().manual_seed(n))
    exact = rows.double().square().sum(1)
    torch.testing.assert_close(_row_sum_sq(rows).double(), exact, rtol=3e-7, atol=0)
