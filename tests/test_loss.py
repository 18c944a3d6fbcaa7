"""Correctness of the T-Loss: oracle values, the released implementation, gradients, numerics, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from tloss_nnunet import TLoss, t_loss


def _scipy_nll(pred: np.ndarray, target: np.ndarray, nu: float) -> np.ndarray:
    """-log pdf of a multivariate Student-t (loc=target, shape=I, df=nu) at pred, one value per sample."""
    out = []
    for p, y in zip(pred.reshape(len(pred), -1), target.reshape(len(target), -1)):
        dist = scipy.stats.multivariate_t(loc=y, shape=np.eye(p.size), df=nu)
        out.append(-dist.logpdf(p))
    return np.asarray(out)


@pytest.mark.parametrize(
    "shape, nu",
    [
        ((2, 1, 4, 4), 1.0),  # binary 2D
        ((3, 1, 5, 3), 0.3),  # non-square, heavy tail
        ((2, 3, 3, 4), 7.5),  # multi-class 2D
        ((2, 2, 3, 3, 2), 50.0),  # 3D
    ],
)
def test_matches_scipy_multivariate_t(shape, nu):
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(shape, generator=gen, dtype=torch.float64)
    target = (torch.rand(shape, generator=gen) > 0.5).double()
    loss = TLoss(nu_init=nu, normalize=False, log_precision=0.0, epsilon=0.0, reduction="none").double()
    # log nu is a float32 parameter: compare at the nu it actually holds.
    expected = _scipy_nll(pred.numpy(), target.numpy(), loss.nu)
    np.testing.assert_allclose(loss(pred, target).detach().numpy(), expected, rtol=1e-10)


def _released_implementation_nll(prob: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The released code's formula, re-derived in float64: (B, H, W) probabilities -> (B,) values.

    Its constants: nu_t = 1 and nu = exp(nu_t) + eps, the log-nu term written as (D/2)(nu_t + eps), an all-ones
    'lambdas' map entering as -1/2 sum(lambda + eps) and exp(lambda + eps), D = H * W, eps = 1e-8.
    """
    eps, nu_t = 1e-8, 1.0
    d = prob.shape[1] * prob.shape[2]
    nu = math.exp(nu_t) + eps
    sum_sq = (((prob - target) ** 2) * math.exp(1.0 + eps)).sum(axis=(1, 2))
    return (
        -scipy.special.gammaln((nu + d) / 2)
        + scipy.special.gammaln(nu / 2)
        - 0.5 * d * (1.0 + eps)
        + 0.5 * d * math.log(math.pi)
        + 0.5 * d * (nu_t + eps)
        + 0.5 * (nu + d) * np.log1p(sum_sq / nu)
    )


@pytest.mark.parametrize("size", [8, 64])
def test_reproduces_released_implementation(size):
    gen = torch.Generator().manual_seed(size)
    logits = torch.randn(4, 2, size, size, generator=gen, dtype=torch.float64)
    target = (torch.rand(4, size, size, generator=gen) > 0.7).double()
    fg_prob = torch.softmax(logits, 1)[:, 1]  # the released code's input: (B, H, W) foreground probability
    expected = _released_implementation_nll(fg_prob.numpy(), target.numpy())
    # The README's recipe: nu_init = e, not normalised, log_precision = 1, (B, 1, H, W) foreground probabilities.
    loss = TLoss(nu_init=math.e, normalize=False, log_precision=1.0, reduction="none").double()
    got = loss(fg_prob[:, None], target[:, None]).detach().numpy()
    # The epsilons enter the two forms at slightly different places: ~1e-8 relative.
    np.testing.assert_allclose(got, expected, rtol=1e-7)
    mean_loss = TLoss(nu_init=math.e, normalize=False, log_precision=1.0).double()
    np.testing.assert_allclose(mean_loss(fg_prob[:, None], target[:, None]).item(), expected.mean(), rtol=1e-7)


def test_gradcheck_input_and_nu():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 4, 5), generator=gen)
    loss = TLoss(softmax=True, to_onehot_y=True, nu_init=2.0).double()
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))

    prob = torch.rand(3, 10, generator=gen, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(3, 10, generator=gen) > 0.5).double()
    log_nu = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 10, generator=gen) > 0.2
    for normalize in (True, False):
        assert torch.autograd.gradcheck(
            lambda p, ln, normalize=normalize: t_loss(p, target, ln, mask, normalize=normalize, log_precision=0.5),
            (prob, log_nu),
        )


def test_gradient_is_one_weight_per_sample():
    """d NLL / d p = (nu + D) / (nu + S) * delta: a sample with a large residual is down-weighted as a whole."""
    pred = torch.tensor([[0.1, 0.2, 0.1], [0.9, 0.8, 0.9]], dtype=torch.float64, requires_grad=True)
    target = torch.zeros_like(pred)
    nu, d = 1.5, 3
    t_loss(pred, target, torch.tensor(math.log(nu), dtype=torch.float64), normalize=False, epsilon=0.0,
           reduction="sum").backward()
    delta = pred.detach()
    weight = (nu + d) / (nu + delta.square().sum(1, keepdim=True))
    torch.testing.assert_close(pred.grad, weight * delta)
    assert weight[1] < weight[0]


def test_mask_and_ignore_index_exclude_elements_from_sum_and_d():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 6, 6), generator=gen)
    labels[0, 0, :2] = 255
    kwargs = dict(softmax=True, to_onehot_y=True, include_background=False, reduction="none")
    got = TLoss(ignore_index=255, **kwargs).double()(logits, labels)
    # Same thing by hand: keep only valid pixels of channels 1..2 and evaluate the plain formula on them.
    prob = torch.softmax(logits, 1)[:, 1:]
    for b in range(2):
        valid = labels[b, 0] != 255
        onehot = torch.stack([(labels[b, 0] == c).double() for c in (1, 2)])
        p, y = prob[b][:, valid], onehot[:, valid]
        expected = t_loss(p.reshape(1, -1), y.reshape(1, -1), torch.tensor(0.0, dtype=torch.float64), reduction="none")
        torch.testing.assert_close(got[b : b + 1], expected)
    # An explicit mask is the same as ignore_index.
    by_mask = TLoss(**kwargs).double()(logits, torch.where(labels == 255, 0, labels), mask=labels != 255)
    torch.testing.assert_close(by_mask, got)


def test_all_ignored_sample_is_zero_without_nan():
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    labels = torch.full((2, 1, 4, 4), 255)
    labels[1, 0, 0, 0] = 1
    loss = TLoss(softmax=True, to_onehot_y=True, ignore_index=255, reduction="none")
    values = loss(logits, labels)
    assert values[0].item() == 0.0 and values[1].item() != 0.0
    values.sum().backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(loss.log_nu.grad)
    assert torch.count_nonzero(logits.grad[0]) == 0


def test_d_is_read_from_input_any_size():
    loss = TLoss(sigmoid=True, normalize=True)
    for shape in [(2, 1, 7, 13), (1, 1, 64, 48), (2, 1, 5, 6, 7)]:
        value = loss(torch.randn(shape), torch.randint(0, 2, shape).float())
        assert value.shape == () and torch.isfinite(value)


@pytest.mark.parametrize("nu", [1e-3, 1.0, 1e3, 1e6])
def test_large_d_accuracy_against_float64(nu):
    """D = 128^3 x 4 elements: the float32 path agrees with a float64 evaluation for nu across 9 decades."""
    gen = torch.Generator().manual_seed(3)
    pred = torch.rand(1, 4, 128, 128, 128, generator=gen)
    target = (pred > 0.5).float()
    pred = (pred + 0.3 * torch.randn(pred.shape, generator=gen)).clamp(0, 1)
    for normalize in (True, False):
        loss = TLoss(nu_init=nu, normalize=normalize)
        got = loss(pred, target)
        expected = TLoss(nu_init=nu, normalize=normalize).double()(pred.double(), target.double())
        assert torch.isfinite(got)
        np.testing.assert_allclose(got.item(), expected.item(), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_input_is_computed_in_float32(dtype):
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 32, 32, generator=gen).to(dtype)
    labels = torch.randint(0, 3, (2, 1, 32, 32), generator=gen)
    loss = TLoss(softmax=True, to_onehot_y=True, include_background=False)
    value = loss(logits, labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(logits.float(), labels))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(logits.float(), labels)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, loss(logits.float(), labels))


def test_parameters_state_dict_and_to():
    loss = TLoss(nu_init=3.0)
    assert [name for name, _ in loss.named_parameters()] == ["log_nu"]
    assert loss.nu == pytest.approx(3.0)
    with torch.no_grad():
        loss.log_nu.fill_(math.log(5.0))
    restored = TLoss()
    restored.load_state_dict(loss.state_dict())
    assert restored.nu == pytest.approx(5.0)
    assert restored.double().log_nu.dtype == torch.float64

    fixed = TLoss(nu_init=3.0, learn_nu=False)
    assert list(fixed.parameters()) == [] and "log_nu" in fixed.state_dict()
    value = fixed(torch.rand(2, 1, 4, 4, requires_grad=True), torch.ones(2, 1, 4, 4))
    value.backward()
    assert fixed.log_nu.grad is None


def test_reductions():
    pred, target = torch.rand(3, 2, 4, 4), torch.randint(0, 2, (3, 2, 4, 4)).float()
    per_sample = TLoss(reduction="none")(pred, target)
    assert per_sample.shape == (3,)
    torch.testing.assert_close(TLoss(reduction="mean")(pred, target), per_sample.mean())
    torch.testing.assert_close(TLoss(reduction="sum")(pred, target), per_sample.sum())


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(softmax=True, sigmoid=True), ValueError),
        (dict(other_act="tanh"), TypeError),
        (dict(nu_init=0.0), ValueError),
        (dict(nu_init=-1.0), ValueError),
        (dict(nu_init=float("inf")), ValueError),
        (dict(reduction="max"), ValueError),
        (dict(epsilon=-1.0), ValueError),
        (dict(ignore_index=1.5), TypeError),
    ],
)
def test_bad_options_raise(kwargs, error):
    with pytest.raises(error):
        TLoss(**kwargs)


@pytest.mark.parametrize(
    "input_shape, target_shape, kwargs",
    [
        ((2, 3, 8, 8), (2, 3, 8, 9), {}),  # spatial mismatch
        ((2, 3, 8, 8), (3, 3, 8, 8), {}),  # batch mismatch
        ((2, 3, 8, 8), (2, 2, 8, 8), {}),  # channel mismatch without one-hot
        ((2, 3, 8, 8), (2, 3, 8, 8), dict(to_onehot_y=True)),  # one-hot of a non-label-map
        ((8, 8), (8, 8), {}),  # no channel axis
    ],
)
def test_bad_shapes_raise_value_error(input_shape, target_shape, kwargs):
    with pytest.raises(ValueError):
        TLoss(**kwargs)(torch.rand(input_shape), torch.zeros(target_shape))


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError):
        TLoss()(np.zeros((1, 1, 2, 2)), torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize("kwargs", [dict(softmax=True), dict(to_onehot_y=True), dict(include_background=False)])
def test_single_channel_warnings(kwargs):
    with pytest.warns(UserWarning, match="single channel prediction"):
        TLoss(**kwargs)(torch.rand(2, 1, 4, 4), torch.randint(0, 2, (2, 1, 4, 4)).float())


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("spatial", [(9, 7), (4, 5, 3)])
def test_fused_label_map_path_equals_one_hot_path(include_background, spatial):
    """softmax + label map runs a fused autograd function; it must equal the explicit one-hot computation."""
    from monai.networks import one_hot

    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 4, *spatial, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (3, 1, *spatial), generator=gen)
    labels[0, 0, 0] = 9  # ignored
    mask = torch.rand(3, 1, *spatial, generator=gen) > 0.3
    kwargs = dict(softmax=True, include_background=include_background, reduction="none", ignore_index=9)
    fused = TLoss(to_onehot_y=True, **kwargs).double()
    value = fused(logits, labels, mask=mask)
    (grad_fused,) = torch.autograd.grad(value.sum(), logits)
    valid = mask & (labels != 9)
    generic = TLoss(**kwargs).double()
    expected = generic(logits, one_hot(torch.where(valid, labels, 0), 4), mask=valid)
    (grad_generic,) = torch.autograd.grad(expected.sum(), logits)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad_fused, grad_generic)
    assert torch.autograd.gradcheck(lambda x: fused(x, labels, mask=mask), (logits,))


def test_label_outside_the_classes_is_refused_unless_ignored():
    logits = torch.randn(1, 2, 4, 4)
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    labels[0, 0, 0, 0] = 5
    with pytest.raises(ValueError, match="outside"):
        TLoss(softmax=True, to_onehot_y=True)(logits, labels)
    assert torch.isfinite(TLoss(softmax=True, to_onehot_y=True, ignore_index=5)(logits, labels))
