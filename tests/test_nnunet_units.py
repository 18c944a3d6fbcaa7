"""Unit tests of the nnU-Net layer that need no dataset: adapter, deep supervision, nu step, plateau rule, plot."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from PIL import Image

from tloss_nnunet import TLoss
from tloss_nnunet.nnunet.loss_adapter import NnUNetTLoss, build_tloss_for_nnunet, deep_supervision_weights
from tloss_nnunet.nnunet.nu_plateau import NuPlateauDetector, ScaledPolyLRScheduler, plateau_statistic
from tloss_nnunet.nnunet.optimization import backward_and_step, build_nu_optimizer
from tloss_nnunet.nnunet.progress import append_panel_below, ensure_logging_key


def _manual_nll(p: torch.Tensor, y: torch.Tensor, nu: float) -> float:
    """Per-sample D-normalised Student-t NLL (identity covariance), straight from the formula, float64."""
    p, y = p.double().flatten(), y.double().flatten()
    d = p.numel()
    s = float(((p - y) ** 2).sum())
    nll = (-math.lgamma((nu + d) / 2) + math.lgamma(nu / 2) + d / 2 * math.log(math.pi * nu)
           + (nu + d) / 2 * math.log1p(s / nu))
    return nll / d


class TestLabelMapAdapter:
    def test_two_classes_is_the_papers_formulation(self):
        # Two classes: softmax foreground probability vs the binary mask, per image, averaged over the batch.
        torch.manual_seed(0)
        logits = torch.randn(3, 2, 8, 8)
        target = torch.randint(0, 2, (3, 1, 8, 8), dtype=torch.int16)
        adapter = NnUNetTLoss(build_tloss_for_nnunet(False, nu_init=2.5), has_regions=False, ignore_label=None)
        fg = torch.softmax(logits, 1)[:, 1]
        expected = np.mean([_manual_nll(fg[b], (target[b, 0] == 1).float(), 2.5) for b in range(3)])
        assert adapter(logits, target).item() == pytest.approx(expected, rel=1e-5)

    def test_multiclass_uses_all_foreground_channels(self):
        torch.manual_seed(1)
        logits = torch.randn(2, 4, 6, 6)
        target = torch.randint(0, 4, (2, 1, 6, 6))
        adapter = NnUNetTLoss(build_tloss_for_nnunet(False), has_regions=False, ignore_label=None)
        probs = torch.softmax(logits, 1)[:, 1:]
        onehot = torch.nn.functional.one_hot(target[:, 0], 4).permute(0, 3, 1, 2)[:, 1:].float()
        expected = np.mean([_manual_nll(probs[b], onehot[b], 1.0) for b in range(2)])
        assert adapter(logits, target).item() == pytest.approx(expected, rel=1e-5)

    def test_ignore_label_pixels_leave_loss_and_D(self):
        torch.manual_seed(2)
        logits = torch.randn(1, 3, 6, 6)
        target = torch.randint(0, 3, (1, 1, 6, 6))
        target[..., :2] = 3  # ignore label = 3 (highest label, as nnU-Net requires), two ignored columns
        adapter = NnUNetTLoss(build_tloss_for_nnunet(False), has_regions=False, ignore_label=3)
        value = adapter(logits, target)
        # Only the 4 labelled columns count: same as the loss on the cropped patch.
        cropped = NnUNetTLoss(build_tloss_for_nnunet(False), has_regions=False, ignore_label=None)
        assert value.item() == pytest.approx(cropped(logits[..., 2:], target[..., 2:]).item(), rel=1e-6)
        # Changing the logits under the ignore label changes nothing.
        other = logits.clone()
        other[..., :2] = 50 * torch.randn_like(other[..., :2])
        assert adapter(other, target).item() == pytest.approx(value.item(), rel=1e-7)

    def test_all_ignored_patch_gives_zero_and_finite_gradient(self):
        logits = torch.randn(2, 2, 4, 4, requires_grad=True)
        target = torch.full((2, 1, 4, 4), 2)
        adapter = NnUNetTLoss(build_tloss_for_nnunet(False), has_regions=False, ignore_label=2)
        value = adapter(logits, target)
        value.backward()
        assert value.item() == 0.0
        assert torch.isfinite(adapter.tloss.log_nu.grad).all()

    def test_wrong_activation_is_refused(self):
        with pytest.raises(ValueError, match="sigmoid=True"):
            NnUNetTLoss(build_tloss_for_nnunet(False), has_regions=True, ignore_label=None)
        with pytest.raises(ValueError, match="cannot be overridden"):
            build_tloss_for_nnunet(False, softmax=False)


class TestRegionAdapter:
    def test_sigmoid_per_region_and_ignore_channel(self):
        torch.manual_seed(3)
        logits = torch.randn(2, 2, 5, 5)
        regions = torch.rand(2, 2, 5, 5) > 0.5
        ignore = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
        ignore[..., 0] = True
        target = torch.cat([regions, ignore], 1)  # nnU-Net appends the ignore channel last
        adapter = NnUNetTLoss(build_tloss_for_nnunet(True), has_regions=True, ignore_label=3)
        probs = torch.sigmoid(logits)[..., 1:]
        expected = np.mean([_manual_nll(probs[b], regions[b, ..., 1:].float(), 1.0) for b in range(2)])
        assert adapter(logits, target).item() == pytest.approx(expected, rel=1e-5)

    def test_no_ignore_label_uses_every_channel(self):
        logits = torch.randn(1, 3, 4, 4)
        target = torch.rand(1, 3, 4, 4) > 0.5
        adapter = NnUNetTLoss(build_tloss_for_nnunet(True), has_regions=True, ignore_label=None)
        expected = _manual_nll(torch.sigmoid(logits[0]), target[0].float(), 1.0)
        assert adapter(logits, target).item() == pytest.approx(expected, rel=1e-5)


def _stock_weights(num_scales: int, is_ddp: bool, compiled: bool) -> np.ndarray:
    """The weights nnU-Net's own _build_loss puts into its DeepSupervisionWrapper."""
    fake = SimpleNamespace(
        label_manager=SimpleNamespace(has_regions=False, ignore_label=None),
        configuration_manager=SimpleNamespace(batch_dice=True),
        is_ddp=is_ddp, enable_deep_supervision=True,
        _do_i_compile=lambda: compiled,
        _get_deep_supervision_scales=lambda: [[1, 1]] * num_scales,
    )
    wrapper = nnUNetTrainer._build_loss(fake)
    assert isinstance(wrapper, DeepSupervisionWrapper)
    return np.array(wrapper.weight_factors)


@pytest.mark.parametrize("is_ddp, compiled", [(False, False), (True, False), (True, True)])
def test_deep_supervision_weights_match_nnunet(is_ddp, compiled):
    ours = deep_supervision_weights(5, is_ddp=is_ddp, compiled=compiled)
    np.testing.assert_allclose(ours, _stock_weights(5, is_ddp, compiled), rtol=1e-12)
    assert ours[-1] == (pytest.approx(1e-6 / (1 + 0.5 + 0.25 + 0.125 + 1e-6)) if is_ddp and not compiled else 0.0)


def test_deep_supervision_reads_D_per_scale():
    tloss = build_tloss_for_nnunet(False)
    torch.manual_seed(4)
    outs = [torch.randn(2, 2, 16, 16), torch.randn(2, 2, 8, 8)]
    tgts = [torch.randint(0, 2, (2, 1, 16, 16)), torch.randint(0, 2, (2, 1, 8, 8))]
    full = NnUNetTLoss(tloss, False, None)(outs[0], tgts[0])
    half = NnUNetTLoss(tloss, False, None)(outs[1], tgts[1])
    assert DeepSupervisionWrapper(NnUNetTLoss(tloss, False, None), (2 / 3, 1 / 3))(outs, tgts).item() == \
        pytest.approx(2 / 3 * full.item() + 1 / 3 * half.item(), rel=1e-6)
    # nnU-Net's weights switch the lowest scale off: with two scales only the full resolution counts.
    stock = DeepSupervisionWrapper(NnUNetTLoss(tloss, False, None), deep_supervision_weights(2, False, False))
    assert stock(outs, tgts).item() == pytest.approx(full.item(), rel=1e-6)


def test_low_precision_logits_give_float32_loss():
    torch.manual_seed(5)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 1, 8, 8))
    adapter = NnUNetTLoss(build_tloss_for_nnunet(False), False, None)
    reference = adapter(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = adapter(logits.bfloat16(), target)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(reference.item(), rel=2e-2)


class TestNuStep:
    def _setup(self, seed: int = 0):
        torch.manual_seed(seed)
        net = torch.nn.Conv2d(1, 2, 3, padding=1)
        tloss = build_tloss_for_nnunet(False, nu_init=3.0)
        loss_fn = NnUNetTLoss(tloss, False, None)
        opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        nu_opt = build_nu_optimizer(tloss.parameters(), lr=1e-3)
        x = torch.randn(2, 1, 8, 8)
        y = torch.randint(0, 2, (2, 1, 8, 8))
        return net, tloss, loss_fn, opt, nu_opt, x, y

    def test_nu_moves_by_about_its_lr_and_is_not_in_network_optimizer(self):
        net, tloss, loss_fn, opt, nu_opt, x, y = self._setup()
        assert all(p is not tloss.log_nu for g in opt.param_groups for p in g["params"])
        assert nu_opt.param_groups[0]["weight_decay"] == 0.0
        before = tloss.log_nu.item()
        backward_and_step(loss_fn(net(x), y), net.parameters(), opt, nu_opt)
        assert abs(tloss.log_nu.item() - before) == pytest.approx(1e-3, rel=1e-3)  # Adam's first step = lr

    def test_grad_scaler_unscales_nu_gradient(self):
        results = []
        for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)):
            net, tloss, loss_fn, opt, nu_opt, x, y = self._setup(seed=7)
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                nu_opt.zero_grad(set_to_none=True)
                backward_and_step(loss_fn(net(x), y), net.parameters(), opt, nu_opt, scaler)
            results.append((tloss.log_nu.item(), nu_opt.state_dict()["state"][0]["exp_avg"].clone()))
        assert results[0][0] == pytest.approx(results[1][0], abs=1e-7)
        torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=0)

    def test_nonfinite_network_gradient_skips_nu_step_too(self):
        net, tloss, loss_fn, opt, nu_opt, x, y = self._setup(seed=3)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        hook = net.weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
        weights, log_nu = [p.detach().clone() for p in net.parameters()], tloss.log_nu.item()
        backward_and_step(loss_fn(net(x), y), net.parameters(), opt, nu_opt, scaler)
        assert scaler.get_scale() < 2.0 ** 10  # the scaler saw the overflow ...
        assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))  # ... skipped the network ...
        assert tloss.log_nu.item() == log_nu  # ... and nu with it
        hook.remove()
        opt.zero_grad(set_to_none=True)
        nu_opt.zero_grad(set_to_none=True)
        backward_and_step(loss_fn(net(x), y), net.parameters(), opt, nu_opt, scaler)
        assert tloss.log_nu.item() != log_nu  # a finite batch steps both again
        assert not torch.equal(weights[0], net.weight.detach())

    def test_no_trainable_loss_parameters_is_an_error(self):
        with pytest.raises(ValueError, match="no trainable parameters"):
            build_nu_optimizer(TLoss(learn_nu=False).parameters())


class TestNuPlateau:
    def test_constant_nu_triggers_after_patience_records(self):
        detector = NuPlateauDetector(record_every=2, patience=10, window=5, threshold=1e-4)
        fired = [i for i in range(1, 41) if detector.update(lambda: 1.0)]
        assert fired == [20, 40]  # 10 records x every 2 iterations; records restart after a drop
        assert detector.records == []

    def test_nu_read_only_when_recording(self):
        reads = []
        detector = NuPlateauDetector(record_every=50)
        for _ in range(120):
            detector.update(lambda: reads.append(1) or 1.0)
        assert len(reads) == 2

    def test_moving_nu_never_triggers(self):
        detector = NuPlateauDetector(record_every=1, patience=10, window=5, threshold=1e-4)
        assert not any(detector.update(lambda i=i: 1.0 + 0.01 * i) for i in range(200))

    def test_records_log_nu_so_a_falling_small_nu_is_no_plateau(self):
        # Late in training nu ~ 2 x MSE is small. log nu falling 1e-3 per iteration is no plateau; read in natural
        # units, the same trajectory changes by < 1e-4 between records and the reference's threshold would fire.
        def fired(read):
            tloss = TLoss(nu_init=1e-3)
            detector = NuPlateauDetector()  # the reference's rule: every 50, patience 10, window 5, 1e-4
            hits = []
            for _ in range(1000):
                with torch.no_grad():
                    tloss.log_nu -= 1e-3
                hits.append(detector.update(lambda: read(tloss)))
            return any(hits)

        assert not fired(plateau_statistic)
        assert fired(lambda tloss: tloss.nu)
        assert plateau_statistic(TLoss(nu_init=2.0)) == pytest.approx(math.log(2.0))

    def test_state_round_trip(self):
        a = NuPlateauDetector(record_every=3)
        for i in range(20):
            a.update(lambda i=i: 1 + 0.1 * i)
        b = NuPlateauDetector(record_every=3)
        b.load_state_dict(a.state_dict())
        assert [a.update(lambda: 2.0) for _ in range(40)] == [b.update(lambda: 2.0) for _ in range(40)]

    def test_drop_persists_over_poly_schedule_with_floor(self):
        opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.01)
        sched = ScaledPolyLRScheduler(opt, 0.01, 100)
        sched.step(0)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
        assert sched.drop(0.1, 1e-4) == pytest.approx(1e-3)
        sched.step(10)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9 ** 0.9 * 0.1)
        sched.drop(0.1, 1e-4)
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)  # 0.1x would go below the floor
        assert sched.drop(0.1, 1e-4) == pytest.approx(1e-4)  # at the floor: no further drop
        sched.step(50)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** 0.9 * sched.factor)
        assert opt.param_groups[0]["lr"] < 1e-4  # poly keeps decaying below the drop floor


class TestProgress:
    def test_missing_key_padded_with_nan(self):
        logging = {"epoch_end_timestamps": [1.0, 2.0, 3.0], "nu": [0.5]}
        assert ensure_logging_key(logging, "nu") == 2
        assert logging["nu"][0] == 0.5 and all(math.isnan(v) for v in logging["nu"][1:])
        assert ensure_logging_key(logging, "nu") == 0

    def test_panel_is_appended_below(self, tmp_path):
        png = tmp_path / "progress.png"
        Image.new("RGB", (600, 900), "red").save(png)
        append_panel_below(str(png), [0, 1, 2], [1.0, float("nan"), 3.0], "nu", "nu")
        with Image.open(png) as image:
            assert image.width == 600 and image.height > 900
            assert image.getpixel((10, 10)) == (255, 0, 0)  # the original panels are untouched
        assert [p.name for p in tmp_path.iterdir()] == ["progress.png"]  # no temporary file left
