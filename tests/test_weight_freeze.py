"""The capped T-Loss of nnUNetTrainerTLoss_freeze, without a trainer: cap math, the loss on nnU-Net's outputs,
the online early-learning detector, the per-case state."""

from __future__ import annotations

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from benchmarks.studykit import selection
from tloss_nnunet.functional import loss_from_sums, t_weights_from_sums
from tloss_nnunet.nnunet.early_learning import EarlyLearningDetector, end_of_early_learning
from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss, build_tloss_for_nnunet
from tloss_nnunet.nnunet.weight_cap import CappedWeightTLoss, cap_factors, capped_nll_from_sums
from tloss_nnunet.nnunet.weight_freeze import WeightFreeze, ddp_merge

D = 4096.0


def _sums(seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sum_sq = (torch.rand(4, generator=generator, dtype=torch.float64) * scale * D).requires_grad_()
    return sum_sq, torch.full((4,), D, dtype=torch.float64), torch.tensor(math.log(3.0), requires_grad=True)


def _grads(value: torch.Tensor, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, inputs))


@pytest.mark.parametrize("mean_weight_cap, scale", [(None, 1.0), (100.0, 1.0), (100.0, 1e-3)])
def test_uncapped_terms_are_the_tloss_value_and_gradients(mean_weight_cap, scale):
    # scale 1e-3: weights ~ 1000, so the batch-mean cap of 100 acts too.
    sum_sq, count, log_nu = _sums(scale=scale)
    weights = t_weights_from_sums(sum_sq, count, log_nu)
    if scale < 1:
        assert weights.mean() > 100
    for caps in (torch.full((4,), math.inf), weights * 1.5):  # no cap, and caps above every weight
        reference = loss_from_sums(sum_sq, count, log_nu, 0.0, True, 1e-8, "none", mean_weight_cap)
        factors = cap_factors(weights, caps)
        assert torch.equal(factors, torch.ones(4, dtype=torch.float64))
        ours = capped_nll_from_sums(sum_sq, count, log_nu, factors, mean_weight_cap=mean_weight_cap)
        torch.testing.assert_close(ours, reference)
        for a, b in zip(_grads(ours.sum(), sum_sq, log_nu), _grads(reference.sum(), sum_sq, log_nu)):
            torch.testing.assert_close(a, b)


def test_a_capped_case_gets_the_gradient_of_its_cap_and_nu_the_tlosss():
    sum_sq, count, log_nu = _sums(seed=1)
    weights = t_weights_from_sums(sum_sq, count, log_nu)
    caps = torch.tensor([0.25, math.inf, 0.5, 2.0], dtype=torch.float64) * weights  # cases 0 and 2 capped
    factors = cap_factors(weights, caps)
    torch.testing.assert_close(factors, torch.tensor([0.25, 1.0, 0.5, 1.0], dtype=torch.float64))
    ours = capped_nll_from_sums(sum_sq, count, log_nu, factors)
    reference = loss_from_sums(sum_sq, count, log_nu, 0.0, True, 1e-8, "none")
    torch.testing.assert_close(ours, reference)  # the value is the T-Loss's
    grad_s, grad_nu = _grads(ours.sum(), sum_sq, log_nu)
    ref_s, ref_nu = _grads(reference.sum(), sum_sq, log_nu)
    torch.testing.assert_close(grad_s, ref_s * factors)  # smaller by cap / w where capped
    # d/dS of NLL_b / D is w_b / (2 D): the capped gradient is min(w_b, cap_b) / (2 D).
    torch.testing.assert_close(grad_s, torch.minimum(weights, caps) / (2 * D))
    torch.testing.assert_close(grad_nu, ref_nu)  # nu learns as in the default trainer


def test_the_gradient_matches_finite_differences():
    sum_sq, count, log_nu = _sums(seed=2)
    factors = torch.tensor([0.3, 1.0, 0.7, 1.0], dtype=torch.float64)
    # The capped gradient is not the derivative of the value (that is the T-Loss's): it is the derivative of
    # f_b * NLL_b with f fixed, checked here by central differences.
    eps = 1e-2  # S_b is in the thousands; the NLL holds terms ~ D log D, so a tiny step loses digits
    grad = _grads(capped_nll_from_sums(sum_sq, count, log_nu, factors).sum(), sum_sq)[0]
    for b in range(4):
        step = torch.zeros(4, dtype=torch.float64)
        step[b] = eps
        with torch.no_grad():
            plus = (factors * loss_from_sums(sum_sq + step, count, log_nu, 0.0, True, 1e-8, "none")).sum()
            minus = (factors * loss_from_sums(sum_sq - step, count, log_nu, 0.0, True, 1e-8, "none")).sum()
        assert float(grad[b]) == pytest.approx(float(plus - minus) / (2 * eps), rel=1e-5)


def _nnunet_pair(kind: str):
    torch.manual_seed(0)
    if kind == "regions_ignore":
        outputs = [torch.randn(3, 2, 16, 16, requires_grad=True), torch.randn(3, 2, 8, 8, requires_grad=True)]
        targets = [torch.rand(3, 3, 16, 16) > 0.5, torch.rand(3, 3, 8, 8) > 0.5]
        return outputs, targets, True, 2
    outputs = [torch.randn(3, 3, 16, 16, requires_grad=True), torch.randn(3, 3, 8, 8, requires_grad=True)]
    high = 4 if kind == "labels_ignore" else 3
    targets = [torch.randint(0, high, (3, 1, 16, 16)), torch.randint(0, high, (3, 1, 8, 8))]
    return outputs, targets, False, (3 if kind == "labels_ignore" else None)


@pytest.mark.parametrize("kind", ["labels", "labels_ignore", "regions_ignore"])
def test_before_the_freeze_the_loss_is_nnunets_wrapped_tloss(kind):
    outputs, targets, has_regions, ignore = _nnunet_pair(kind)
    tloss = build_tloss_for_nnunet(has_regions, mean_weight_cap=100.0)
    stock = DeepSupervisionWrapper(NnUNetTLoss(tloss, has_regions, ignore), [2 / 3, 1 / 3])
    freeze = WeightFreeze()
    ours = CappedWeightTLoss(tloss, has_regions, ignore, [2 / 3, 1 / 3], freeze)
    ours.keys = ["a", "b", "c"]
    value, expected = ours(outputs, targets), stock(outputs, targets)
    torch.testing.assert_close(value, expected)
    for a, b in zip(_grads(value, *outputs, tloss.log_nu), _grads(expected, *outputs, tloss.log_nu)):
        torch.testing.assert_close(a, b)
    assert sorted(freeze._sums) == ["a", "b", "c"] and freeze._counts.sum() > 0


def test_after_the_freeze_every_scale_of_a_capped_case_shrinks_by_the_same_ratio():
    outputs, targets, has_regions, ignore = _nnunet_pair("labels")
    tloss = build_tloss_for_nnunet(has_regions, mean_weight_cap=None)
    freeze = WeightFreeze()
    freeze.record(["a", "b", "c"], torch.ones(3, dtype=torch.float64), torch.ones(3), torch.zeros(3))
    freeze.close_epoch()
    freeze._freeze()
    ours = CappedWeightTLoss(tloss, has_regions, ignore, [2 / 3, 1 / 3], freeze)
    stock = DeepSupervisionWrapper(NnUNetTLoss(tloss, has_regions, ignore), [2 / 3, 1 / 3])
    ours.keys = ["a", "b", "c"]
    grads = _grads(ours(outputs, targets), *outputs)
    expected = _grads(stock(outputs, targets), *outputs)
    from tloss_nnunet.nnunet.weight_cap import nnunet_sums

    sum_sq, count, _ = nnunet_sums(outputs[0], targets[0], False, None)
    ratio = 1.0 / t_weights_from_sums(sum_sq, count, tloss.log_nu)  # cap 1 on every case, weights >= 1
    for ours_grad, stock_grad in zip(grads, expected):
        torch.testing.assert_close(ours_grad, stock_grad * ratio.float().view(-1, 1, 1, 1))
    assert freeze._capped == [3, 3]


def _log(agreement):
    return [{"iteration": 50 * (i + 1), "train_agreement": a} for i, a in enumerate(agreement)]


@pytest.mark.parametrize("curve", [
    list(0.9 * (1 - np.exp(-0.3 * np.arange(1, 61)))),  # selection's test curve: fires at index 8
    list(0.01 * np.arange(1, 61)),  # linear: never
    [0.4] * 60,  # flat: never
    [0.1, 0.3, 0.5, 0.6, 0.62, 0.63] + [0.64] * 20,
    list(0.8 * (1 - np.exp(-0.05 * np.arange(1, 41) ** 1.5)) + 0.01 * np.sin(np.arange(1, 41))),
])
def test_the_online_detector_fires_where_selection_elr_does(curve):
    detector = EarlyLearningDetector()
    fired = [detector.update(a) for a in curve]
    kept = selection.elr(_log(curve), 50)
    if detector.fired_epoch is None:
        assert kept == len(curve) - 1 and not any(fired)
    else:
        assert detector.fired_epoch - 1 == kept and fired.index(True) == kept and sum(fired) == 1
    assert end_of_early_learning(list(range(1, len(curve) + 1)), curve) == (
        None if detector.fired_epoch is None else kept)


def _epoch(freeze: WeightFreeze, agreement: float, weights: dict[str, float]) -> dict:
    keys = list(weights)
    w = torch.tensor([weights[k] for k in keys], dtype=torch.float64)
    freeze.record(keys, w, cap_factors(w, torch.tensor(freeze.caps_for(keys))),
                  torch.tensor([agreement, 2 * (1 - agreement), 0.0]))
    return freeze.close_epoch()


def test_caps_freeze_at_the_weights_of_the_firing_epoch_and_survive_a_round_trip():
    curve = list(0.9 * (1 - np.exp(-0.3 * np.arange(1, 13))))  # fires at epoch 9
    freeze = WeightFreeze()
    for epoch, a in enumerate(curve[:9], start=1):
        weights = {"a": float(epoch), "b": 10.0 + epoch} if epoch < 9 else {"a": 100.0, "c": 7.0}
        summary = _epoch(freeze, a, weights)
        assert summary["agreement"] == pytest.approx(a) and summary["epoch"] == epoch
        assert summary["fired"] == (epoch == 9) and freeze.frozen == (epoch == 9)
    # a: its firing-epoch mean; b: not seen then, its last epoch's; c: seen only then; d: never -> the median
    assert freeze.caps == {"a": 100.0, "b": 18.0, "c": 7.0}
    assert freeze.caps_for(["a", "d"]) == [100.0, 18.0]
    freeze.record(["a"], torch.tensor([150.0], dtype=torch.float64), torch.tensor([100 / 150]), torch.zeros(3))
    copy = WeightFreeze()
    copy.load_state_dict(freeze.state_dict())  # mid-epoch: the open epoch's sums travel too
    assert copy.state_dict() == freeze.state_dict()
    for state in (freeze, copy):
        summary = _epoch(state, curve[9], {"b": 30.0})
        assert summary["capped_fraction"] == pytest.approx(1.0) and not summary["fired"]
    assert copy.state_dict() == freeze.state_dict() and copy.detector.fired_epoch == 9


def test_merge_is_the_identity_without_a_process_group():
    counts, sums = np.array([1.0, 2.0, 3.0]), {"a": [2.0, 1.0]}
    assert ddp_merge(torch.device("cpu"))(counts, sums) == (counts, sums)


# Rank r's batches per epoch: its cases, weights and counts; the freeze fires at epoch 9 (see above).
_CURVE = list(0.9 * (1 - np.exp(-0.3 * np.arange(1, 10))))


def _rank_weights(rank: int, epoch: int) -> dict[str, float]:
    return {"a": 1.0 + rank + epoch, f"only{rank}": 5.0 * (rank + 1) + epoch}


def _rank_counts(rank: int, agreement: float) -> torch.Tensor:
    return torch.tensor([agreement, 0.0, 0.0] if rank == 0 else [0.0, 2 * (1 - agreement), 0.0])


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        freeze = WeightFreeze()
        for epoch, a in enumerate(_CURVE, start=1):
            weights = _rank_weights(rank, epoch)
            w = torch.tensor(list(weights.values()), dtype=torch.float64)
            # rank 0 holds the TPs, rank 1 the FPs: only their sum gives the agreement a
            freeze.record(list(weights), w, torch.ones(2), _rank_counts(rank, a))
            freeze.close_epoch(ddp_merge(torch.device("cpu")))
        torch.save(freeze.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_ranks_merge_counts_and_weights_and_freeze_the_same_caps(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert states[0] == states[1] and states[0]["detector"]["fired_epoch"] == 9
    single = WeightFreeze()  # one process that saw both ranks' batches
    for epoch, a in enumerate(_CURVE, start=1):
        for rank in range(2):
            weights = _rank_weights(rank, epoch)
            w = torch.tensor(list(weights.values()), dtype=torch.float64)
            single.record(list(weights), w, torch.ones(2), _rank_counts(rank, a))
        single.close_epoch()
    assert states[0]["caps"] == pytest.approx(single.caps) and states[0]["caps"]["a"] == pytest.approx(10.5)
    assert states[0]["detector"]["history"] == pytest.approx(single.detector.history)
    assert states[0]["detector"]["history"] == pytest.approx(_CURVE)
