"""Generalised cross-entropy (value, gradient, ignore label, limits) and its nnU-Net trainer's loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tloss_nnunet.repro.baselines import GeneralizedCrossEntropyLoss


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_value_and_gradient_match_a_hand_computation():
    # One image of two pixels, three classes: logits per pixel and their labels.
    logits = np.array([[1.0, -0.5, 0.2], [0.1, 0.3, 2.0]])  # (pixel, class)
    labels = [2, 0]
    q = 0.7
    p = [_softmax(z) for z in logits]
    expected_value = np.mean([(1 - p[i][labels[i]] ** q) / q for i in range(2)])
    # d/dz_k of (1 - p_y^q)/q = -p_y^(q-1) dp_y/dz_k = -p_y^q (1[k=y] - p_k); the mean divides by 2 pixels.
    expected_grad = np.stack([-(p[i][labels[i]] ** q) * (np.eye(3)[labels[i]] - p[i]) / 2 for i in range(2)])

    x = torch.tensor(logits.T[None, :, :, None], dtype=torch.float64, requires_grad=True)  # (1, 3, 2, 1)
    y = torch.tensor(labels).view(1, 1, 2, 1)
    value = GeneralizedCrossEntropyLoss(q=q)(x, y)
    value.backward()
    assert value.item() == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(x.grad[0, :, :, 0].numpy().T, expected_grad, rtol=1e-10)


def test_limits_cross_entropy_and_mae():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 1, 5, 4))
    ce = torch.nn.functional.cross_entropy(x, y[:, 0])
    assert GeneralizedCrossEntropyLoss(q=1e-7)(x, y).item() == pytest.approx(ce.item(), rel=1e-5)
    p_y = torch.softmax(x, 1).gather(1, y)
    assert GeneralizedCrossEntropyLoss(q=1.0)(x, y).item() == pytest.approx((1 - p_y).mean().item(), rel=1e-12)


def test_ignore_label_excluded_from_value_and_mean():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    y = torch.randint(0, 2, (1, 1, 4, 4))
    y[0, 0, :2] = 5  # ignore label outside [0, C), as nnU-Net allows
    loss = GeneralizedCrossEntropyLoss(ignore_index=5)
    value = loss(x, y)
    kept = GeneralizedCrossEntropyLoss()(x[:, :, 2:], y[:, :, 2:])
    assert value.item() == pytest.approx(kept.item(), rel=1e-6)
    value.backward()
    assert torch.all(x.grad[:, :, :2] == 0) and torch.any(x.grad[:, :, 2:] != 0)
    # Everything ignored: 0, and backward still works.
    all_ignored = GeneralizedCrossEntropyLoss(ignore_index=5)(x, torch.full_like(y, 5))
    assert all_ignored.item() == 0
    all_ignored.backward()


def test_reductions_and_target_layouts():
    x = torch.randn(2, 2, 3, 3)
    y = torch.randint(0, 2, (2, 3, 3))
    per_element = GeneralizedCrossEntropyLoss(reduction="none")(x, y)
    assert per_element.shape == (2, 3, 3)
    total = GeneralizedCrossEntropyLoss(reduction="sum")(x, y).item()
    assert total == pytest.approx(per_element.sum().item(), rel=1e-6)
    assert GeneralizedCrossEntropyLoss()(x, y[:, None]).item() == pytest.approx(per_element.mean().item(), rel=1e-6)


@pytest.mark.parametrize("bad_q", [0, -0.1, 1.5, float("nan")])
def test_rejects_bad_q(bad_q):
    with pytest.raises(ValueError, match="q must be"):
        GeneralizedCrossEntropyLoss(q=bad_q)


def test_rejects_out_of_range_labels_and_shapes():
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        GeneralizedCrossEntropyLoss()(torch.randn(1, 2, 3, 3), torch.full((1, 1, 3, 3), 3))
    with pytest.raises(ValueError, match="label map"):
        GeneralizedCrossEntropyLoss()(torch.randn(1, 2, 3, 3), torch.zeros(1, 2, 3, 3, dtype=torch.long))


def test_fp16_logits_are_computed_in_float32():
    x = torch.randn(2, 2, 8, 8)
    y = torch.randint(0, 2, (2, 1, 8, 8))
    full = GeneralizedCrossEntropyLoss()(x, y)
    half = GeneralizedCrossEntropyLoss()(x.half(), y)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), abs=1e-3)


# ------------------------------------------------------------------ the nnU-Net trainer's loss
class _LabelManager:
    has_regions = False

    def __init__(self, ignore_label):
        self.ignore_label = ignore_label


def _build_trainer_loss(ignore_label, scales=3):
    """Call nnUNetTrainerGCELoss._build_loss on a stand-in exposing what the hook reads (no plans needed)."""
    from tloss_nnunet.repro.study_trainers import nnUNetTrainerGCELoss

    trainer = object.__new__(nnUNetTrainerGCELoss)
    trainer.label_manager = _LabelManager(ignore_label)
    trainer.enable_deep_supervision = True
    trainer.is_ddp = False
    trainer._get_deep_supervision_scales = lambda: [[1, 1]] * scales
    trainer._do_i_compile = lambda: False
    return nnUNetTrainerGCELoss._build_loss(trainer)


def test_trainer_loss_weights_scales_like_nnunet_and_honours_ignore_label():
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    loss = _build_trainer_loss(ignore_label=2)
    assert isinstance(loss, DeepSupervisionWrapper)
    assert loss.loss.ignore_index == 2 and loss.loss.q == 0.7
    np.testing.assert_allclose(loss.weight_factors, [2 / 3, 1 / 3, 0.0])

    torch.manual_seed(2)
    outputs = [torch.randn(2, 2, s, s) for s in (8, 4, 2)]
    targets = [torch.randint(0, 3, (2, 1, s, s)).to(torch.int16) for s in (8, 4, 2)]  # 2 = ignore label
    single = GeneralizedCrossEntropyLoss(ignore_index=2)
    expected = 2 / 3 * single(outputs[0], targets[0]) + 1 / 3 * single(outputs[1], targets[1])
    assert loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def test_trainer_rejects_regions():
    from tloss_nnunet.repro.study_trainers import nnUNetTrainerGCELoss

    trainer = object.__new__(nnUNetTrainerGCELoss)
    trainer.label_manager = type("LM", (), {"has_regions": True, "ignore_label": None})()
    with pytest.raises(RuntimeError, match="label maps only"):
        nnUNetTrainerGCELoss._build_loss(trainer)


def _stub_base_init(self, plans, configuration, fold, dataset_json, device=None):
    """Stands in for nnUNetTrainer.__init__ (which needs real plans): the stock schedule only."""
    self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50


def test_study_trainer_table_names_real_classes_with_the_right_schedules(monkeypatch):
    import nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs as xepochs
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.training.nnUNetTrainer.variants.loss import nnUNetTrainerCELoss, nnUNetTrainerDiceLoss

    import tloss_nnunet.nnunet.trainer as tloss_trainer
    import tloss_nnunet.nnunet.variants as variants
    import tloss_nnunet.repro.study_trainers as baselines
    from benchmarks.studykit.arms import ARMS, LOSS_ARMS, SCHEDULES

    found = {"nnUNetTrainer": nnUNetTrainer}
    for module in (baselines, variants, tloss_trainer, xepochs, nnUNetTrainerCELoss, nnUNetTrainerDiceLoss):
        found.update({k: v for k, v in vars(module).items() if isinstance(v, type)})
    monkeypatch.setattr(nnUNetTrainer, "__init__", _stub_base_init)
    expected = {"default": (1000, 250), "50epochs": (50, 250), "tiny": (2, 4)}
    table = {arm: {"default": ARMS[arm], **{s: SCHEDULES[s][arm] for s in ("50epochs", "tiny")}} for arm in LOSS_ARMS}
    assert all(set(SCHEDULES[s]) == set(LOSS_ARMS) for s in ("50epochs", "tiny"))
    for schedules in table.values():
        for schedule, name in schedules.items():
            cls = found[name]
            assert issubclass(cls, nnUNetTrainer), name
            if issubclass(cls, tloss_trainer.nnUNetTrainerTLoss):
                continue  # its __init__ also swaps nnU-Net's logger: covered by the trainer's own tests
            trainer = cls({}, "2d", 0, {})
            assert (trainer.num_epochs, trainer.num_iterations_per_epoch) == expected[schedule], name
