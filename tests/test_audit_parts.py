"""``tloss-nnunet suspects -num_parts N -part_id I``: nnUNetv2_predict's split of the cases over several calls (GPUs,
machines), on the session's tiny trained model (CPU): the parts predict, a final call ranks, and the result equals
one plain call."""

from __future__ import annotations

from pathlib import Path

import pytest
from nnunet_commands import cli

from tloss_nnunet.cli import main

pytestmark = [pytest.mark.slow]

BASE = ["-device", "cpu", "-npp", "1", "-nps", "1", "--quiet"]


@pytest.fixture()
def model(trained_tloss_model, monkeypatch):
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, trained_tloss_model["env"][key])
    return trained_tloss_model


def _npz(out) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "predictions").rglob("*.npz")}


def test_two_parts_then_a_final_call_equal_one_plain_call(model, tmp_path):
    parts = tmp_path / "parts"
    first = cli(["suspects", model["model"], "-o", str(parts), *BASE, "-num_parts", "2", "-part_id", "0"])
    assert "part 0 of 2: 4 case(s) predicted" in first and "run without -num_parts to score all" in first
    cases = sorted(p.name[:-len(".png")] for p in (Path(model["raw"]) / "labelsTr").iterdir())
    predicted = sorted(name[:-len(".npz")] for name in _npz(parts))
    assert predicted == cases[0::2]  # nnU-Net's rule: sorted cases[part_id::num_parts]
    assert not (parts / "suspects.csv").exists() and not (parts / "audit.json").exists()  # a part ranks nothing
    second = cli(["suspects", model["model"], "-o", str(parts), *BASE, "-num_parts", "2", "-part_id", "1"])
    assert "part 1 of 2: 4 case(s) predicted" in second and len(_npz(parts)) == 8
    before = _npz(parts)
    final = cli(["suspects", model["model"], "-o", str(parts), *BASE])
    assert "scored 8 case(s)" in final and _npz(parts) == before  # every part's prediction reused
    plain = tmp_path / "plain"
    cli(["suspects", model["model"], "-o", str(plain), *BASE])
    assert (parts / "suspects.csv").read_text() == (plain / "suspects.csv").read_text()


@pytest.mark.parametrize("args", [["-num_parts", "2", "-part_id", "2"], ["-num_parts", "0"],
                                  ["-part_id", "-1"]])
def test_a_bad_part_is_one_line_and_writes_nothing(model, tmp_path, capsys, args):
    out = tmp_path / "audit"
    assert main(["suspects", model["model"], "-o", str(out), *BASE, *args]) == 2
    err = capsys.readouterr().err
    assert "-part_id must be in 0..num_parts-1" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
