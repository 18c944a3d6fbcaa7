"""nu's saved state (:class:`TLossState`): one definition, nu saved once, checkpoints of the previous version
read by the trainer's resume (tests/test_nnunet_trainer.py), ``export-stock`` and the label audit."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tloss_nnunet import TLoss
from tloss_nnunet.audit.model import AuditedModel
from tloss_nnunet.audit.predict import fold_loss
from tloss_nnunet.audit.scores import case_scores
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.checkpoint_keys import LOG_NU_KEY, TLOSS_STATE_KEY, TLossState
from tloss_nnunet.nnunet.export import export_stock_model

LOG_NU = math.log(2.5)


def _current() -> dict:
    """The entry as this version writes it (a T-Loss trainer without the plateau rule)."""
    return TLossState(loss={LOG_NU_KEY: torch.tensor(LOG_NU)}, nu_optimizer={"state": {}, "param_groups": []},
                      log_precision=0.5).to_dict()


def _previous() -> dict:
    """The entry as the previous version wrote it: nu twice (log in the loss state, natural beside it)."""
    return {"loss": {LOG_NU_KEY: torch.tensor(LOG_NU)}, "nu_optimizer": {"state": {}, "param_groups": []},
            "nu": math.exp(LOG_NU) + 1e-8, "log_precision": 0.5}


def test_the_fields_are_the_inner_keys_and_nu_is_saved_once():
    assert [f.name for f in dataclasses.fields(TLossState)] == [
        "loss", "nu_optimizer", "log_precision", "lr_factor", "nu_plateau", "weight_freeze"]
    assert set(_current()) == {"loss", "nu_optimizer", "log_precision"}  # the unset optional ones are left out
    full = TLossState(loss={LOG_NU_KEY: torch.tensor(0.0)}, nu_optimizer={}, lr_factor=0.1,
                      nu_plateau={"records": []}).to_dict()
    assert set(full) == {"loss", "nu_optimizer", "log_precision", "lr_factor", "nu_plateau"}
    assert TLossState.from_dict(full) == TLossState(**full)


def test_log_nu_key_is_the_loss_parameter():
    assert list(TLoss().state_dict()) == [LOG_NU_KEY]


@pytest.mark.parametrize("make", [_current, _previous])
def test_reads_this_and_the_previous_version(make):
    state = TLossState.from_dict(make())
    assert state.log_nu == pytest.approx(LOG_NU, rel=1e-7)
    assert state.nu == pytest.approx(2.5, rel=1e-6)
    assert state.log_precision == 0.5 and state.lr_factor is None and state.nu_plateau is None


def test_before_the_label_audit_lambda_was_not_saved():
    older = {k: v for k, v in _previous().items() if k != "log_precision"}
    assert TLossState.from_dict(older).log_precision == 0.0


@pytest.mark.parametrize("state, message", [
    ({"nu": 1.5}, "lacks"), ({"loss": {}, "nu_optimizer": {}}, "loss.log_nu"), ([1.0], "not a dict")])
def test_unreadable_entries_are_refused(state, message):
    with pytest.raises(ValueError, match=message):
        TLossState.from_dict(state)


def _model(root: Path, tloss_state: dict | None) -> AuditedModel:
    folder = root / "Dataset777_X" / "nnUNetTrainerTLoss__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True)
    checkpoint = {"network_weights": {"w": torch.zeros(2)}, "trainer_name": "nnUNetTrainerTLoss",
                  "init_args": {"configuration": "2d"}, "logging": {"nu": [2.5]}}
    if tloss_state is not None:
        checkpoint[TLOSS_STATE_KEY] = tloss_state
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    for name in ("plans.json", "dataset.json"):
        (folder / name).write_text("{}")
    return AuditedModel(folder=folder, dataset_name="Dataset777_X", trainer="nnUNetTrainerTLoss",
                        configuration="2d", checkpoint_name="checkpoint_final.pth", folds=(0,), dataset_json={},
                        cases={}, splits=None)


@pytest.mark.parametrize("make", [_current, _previous])
def test_the_audit_reads_log_nu_of_both_versions(tmp_path, make):
    loss = fold_loss(_model(tmp_path, make()), 0)
    assert loss.log_nu == pytest.approx(LOG_NU, rel=1e-7) and loss.log_precision == 0.5
    assert fold_loss(_model(tmp_path / "stock", None), 0).log_nu is None


def test_the_audit_refuses_a_damaged_entry_in_one_line(tmp_path):
    with pytest.raises(InputError, match="checkpoint_final.pth: 'tloss_state' lacks"):
        fold_loss(_model(tmp_path, {"nu": 2.5}), 0)


@pytest.mark.parametrize("make", [_current, _previous])
def test_export_records_nu_of_both_versions(tmp_path, make):
    model = _model(tmp_path, make())
    result = export_stock_model(str(model.folder), str(tmp_path / "out"), progress=False)
    provenance = json.loads((Path(result.output_folder) / "tloss_export.json").read_text())
    assert provenance["checkpoints"]["fold_0/checkpoint_final.pth"]["nu"] == pytest.approx(2.5, rel=1e-6)


def test_scores_take_nu_or_its_log_alike():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1.0, 1.0], size=(8, 8)).transpose(2, 0, 1)
    label = rng.integers(0, 2, size=(8, 8))
    by_nu = case_scores("a", p, label, nu=2.5, log_precision=0.5)
    by_log = case_scores("a", p, label, log_nu=math.log(2.5), log_precision=0.5)
    assert by_log.tloss_nll == pytest.approx(by_nu.tloss_nll, rel=1e-12)
    assert by_log.tloss_weight == pytest.approx(by_nu.tloss_weight, rel=1e-12)
    with pytest.raises(ValueError, match="not both"):
        case_scores("a", p, label, nu=2.5, log_nu=0.9)
