"""One set of checks for ``noise`` and ``convert`` (issue 14, defect 6): the same values are refused by both, in
one line, before anything is written; ``TLoss`` refuses labels between classes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tloss_nnunet.cli import main

GRID = ["--alpha", "0.5", "--beta", "0.5"]


@pytest.fixture(scope="module")
def masks(tmp_path_factory) -> Path:
    import cv2

    from tloss_nnunet.noise.synthetic import lesion_like_mask

    folder = tmp_path_factory.mktemp("noise") / "masks"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"c{i}.png"), lesion_like_mask(rng, (32, 40)).astype(np.uint8) * 255)
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    from tloss_nnunet.converters import write_synthetic_isic2017

    return write_synthetic_isic2017(tmp_path_factory.mktemp("isic") / "release", n_train=4, n_val=1, n_test=1,
                                    seed=2, min_size=80, max_size=120)


def _noise(masks: Path, out: Path, *options: str) -> int:
    return main(["noise", str(masks), str(out), "--quiet", *options])


def _convert(release: Path, out: Path, *options: str) -> int:
    return main(["convert", "isic2017", str(release), "--out", str(out), "--quiet", "--no-verify", *options])


#: option values both commands refuse, and a word of the message
SHARED_REFUSALS = [
    (["--alpha", "0.5", "0.5", "--beta", "0.5"], "--alpha lists 0.5 more than once"),
    (["--alpha", "0.5", "--beta", "0.7", "0.7"], "--beta lists 0.7 more than once"),
    (["--alpha", "0.5", "--beta", "1.5"], "beta must be a number in (0, 1]"),
    (["--alpha", "0.5", "--beta", "-0.5"], "beta must be a number in (0, 1]"),
    (["--alpha", "1.2", "--beta", "0.5"], "alpha must be a number in [0, 1]"),
    (["--alpha", "nan", "--beta", "0.5"], "alpha must be a number in [0, 1]"),
    ([*GRID, "--workers", "0"], "--workers must be at least 1"),
    ([*GRID, "--workers", "-3"], "--workers must be at least 1"),
]


@pytest.mark.parametrize("command", ["noise", "convert"])
@pytest.mark.parametrize("options, message", SHARED_REFUSALS)
def test_both_commands_refuse_the_same_values(command, options, message, masks, release, tmp_path, capsys):
    out = tmp_path / "out"
    code = _noise(masks, out, *options) if command == "noise" else _convert(release, out, *options)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["same", "inside", "nested_inside"])
def test_noise_refuses_an_output_folder_in_the_mask_folder(where, masks, tmp_path, capsys):
    copy = tmp_path / "masks"
    shutil.copytree(masks, copy)
    out = {"same": copy, "inside": copy / "noisy", "nested_inside": copy / "a" / ".." / "b"}[where]
    before = sorted(p.name for p in copy.iterdir())
    assert _noise(copy, out, *GRID) == 2
    assert "is (inside) the mask folder" in capsys.readouterr().err
    assert sorted(p.name for p in copy.iterdir()) == before


@pytest.mark.parametrize("command", ["noise", "convert"])
@pytest.mark.parametrize("blocker", ["file_as_parent", "dev_null"])
def test_an_output_below_a_file_is_one_line(command, blocker, masks, release, tmp_path, capsys):
    if blocker == "dev_null":
        out = Path("/dev/null/x")
    else:
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "out"
    code = _noise(masks, out, *GRID) if command == "noise" else _convert(release, out, *GRID)
    err = capsys.readouterr().err
    assert code == 2 and "is not a folder" in err and err.count("\n") == 1


def test_the_shared_checks_directly():
    from tloss_nnunet.noise.options import grid_problems, noise_grid, workers_problem

    assert grid_problems([0.3, 0.3, 0.5], [0.5]) == ["--alpha lists 0.3 more than once"]
    assert grid_problems([], [0.5]) == []  # convert: the clean dataset only
    settings, problems = noise_grid([0.3, 0.7], [0.5, 0.7])
    assert problems == [] and [s.name for s in settings] == [
        "alpha0.3_beta0.5", "alpha0.3_beta0.7", "alpha0.7_beta0.5", "alpha0.7_beta0.7"]
    assert workers_problem(None) is None and workers_problem(1) is None and workers_problem(0)


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("bad", [1.5, 0.25, float("nan")])
def test_tloss_refuses_labels_between_classes(softmax, bad):
    from tloss_nnunet import TLoss

    logits = torch.randn(2, 3, 6, 6)
    labels = torch.randint(0, 3, (2, 1, 6, 6)).float()
    loss = TLoss(softmax=softmax, sigmoid=not softmax, to_onehot_y=True)
    reference = loss(logits, labels)
    labels[1, 0, 2, 3] = bad
    with pytest.raises(ValueError, match="integer class labels"):
        loss(logits, labels)
    assert torch.isfinite(reference)


def test_tloss_label_check_changes_no_value_and_ignores_masked_elements():
    from tloss_nnunet import TLoss

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 6, 6))
    loss = TLoss(softmax=True, to_onehot_y=True)
    value = loss(logits, labels.float())
    (grad,) = torch.autograd.grad(value, logits)
    value_int = loss(logits, labels)
    (grad_int,) = torch.autograd.grad(value_int, logits)
    assert torch.equal(value, value_int) and torch.equal(grad, grad_int)
    masked = labels.float()
    masked[0, 0, 0, 0] = 1.5
    keep = torch.ones_like(labels, dtype=torch.bool)
    keep[0, 0, 0, 0] = False
    assert torch.isfinite(loss(logits, masked, keep))  # a value that does not count is not checked
