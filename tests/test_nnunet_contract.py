"""What ``nnUNetTrainerTLoss`` restates from nnU-Net, checked against the installed nnU-Net.

nnU-Net offers no hook for extra checkpoint entries or a second optimiser, so the trainer re-writes
``save_checkpoint``'s dict and ``train_step``. A release that adds a checkpoint key or changes the step would
otherwise be dropped silently; these tests fail with a message saying what to re-check instead.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import inspect
import textwrap
from importlib.metadata import version
from pathlib import Path

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from packaging.requirements import Requirement

from tloss_nnunet.nnunet.checkpoint_keys import NNUNET_CHECKPOINT_KEYS, TLOSS_STATE_KEY
from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

#: sha256 of the syntax tree of nnunetv2 2.8.1's ``nnUNetTrainer.train_step`` (comments and layout ignored).
CHECKED_TRAIN_STEP_SHA256 = "c8a2e3ad9b270e19de55cd3d02734e3508c948019ef1d681e791d6a112fb4be3"


def _function_tree(function) -> ast.Module:
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def _checkpoint_dict_keys(function) -> list[str]:
    """Keys of the dict literal assigned to ``checkpoint`` in ``function``; names resolve to their values."""
    for node in ast.walk(_function_tree(function)):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "checkpoint" for t in node.targets)):
            keys = []
            for key in node.value.keys:
                if isinstance(key, ast.Constant):
                    keys.append(key.value)
                else:  # a module-level constant of the trainer, e.g. TLOSS_STATE_KEY
                    keys.append(function.__globals__[key.id])
            return keys
    raise AssertionError(f"no `checkpoint = {{...}}` dict in {function.__qualname__}")


def test_nnunet_checkpoint_keys_are_the_ones_the_trainer_restates():
    stock = _checkpoint_dict_keys(nnUNetTrainer.save_checkpoint)
    assert stock == list(NNUNET_CHECKPOINT_KEYS), (
        f"nnU-Net {version('nnunetv2')} writes checkpoint keys {stock}, the T-Loss trainer restates "
        f"{list(NNUNET_CHECKPOINT_KEYS)}: update nnUNetTrainerTLoss.save_checkpoint and "
        "tloss_nnunet/nnunet/checkpoint_keys.py, then the nnunetv2 pin in setup.cfg.")
    assert _checkpoint_dict_keys(nnUNetTrainerTLoss.save_checkpoint) == [*NNUNET_CHECKPOINT_KEYS, TLOSS_STATE_KEY]


def test_nnunet_train_step_is_the_one_the_trainer_restates():
    digest = hashlib.sha256(ast.dump(_function_tree(nnUNetTrainer.train_step)).encode()).hexdigest()
    assert digest == CHECKED_TRAIN_STEP_SHA256, (
        f"nnU-Net {version('nnunetv2')} changed nnUNetTrainer.train_step: re-check nnUNetTrainerTLoss.train_step "
        "(and tloss_nnunet/nnunet/optimization.py) against it, then update CHECKED_TRAIN_STEP_SHA256 and the "
        "nnunetv2 pin in setup.cfg.")


def test_installed_nnunet_is_inside_the_pinned_range():
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    requirements = [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]
    pin = next(r for r in requirements if r.name == "nnunetv2")
    assert pin.specifier and "<" in str(pin.specifier), f"nnunetv2 must have an upper bound, got '{pin}'"
    assert pin.specifier.contains(version("nnunetv2")), f"installed nnunetv2 {version('nnunetv2')} is outside '{pin}'"
