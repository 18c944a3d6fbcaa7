"""``tloss-nnunet repair -num_parts N -part_id I``: parts write only their share of the repaired labels into a hidden
parts folder, the final call takes them and writes exactly what one plain call writes, then removes the parts;
damaged part labels are computed again; bad part options are refused before anything is written."""

from __future__ import annotations

import pytest
from repair_data import digests, make_audit, make_dataset

from tloss_nnunet.audit import repair_dataset, repair_write
from tloss_nnunet.audit.repair_parts import PARTS_ROOT, part_cases
from tloss_nnunet.cli import main


@pytest.fixture(autouse=True)
def _no_nnunet_folders(monkeypatch):
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(key, raising=False)


def _argv(audit, out, *extra: str) -> list[str]:
    return ["repair", str(audit), "--out-id", "620", "--mode", "ignore", "--top-k", "3", "--out", str(out), *extra]


def test_part_cases_split_the_chosen_cases_by_name():
    assert part_cases(["c", "a", "d", "b"], 2, 0) == ["a", "c"]
    assert part_cases(["c", "a", "d", "b"], 2, 1) == ["b", "d"]
    assert part_cases(["a"], 3, 2) == []


@pytest.mark.parametrize("dim, classes", [(2, 2), (3, 3)])
def test_parts_then_a_final_call_write_what_one_call_writes(tmp_path, capsys, monkeypatch, dim, classes):
    data = make_dataset(tmp_path / "raw", dim, classes)
    audit = make_audit(data, tmp_path / "audit")
    plain = repair_dataset(audit, 620, mode="ignore", top_k=3, out=tmp_path / "plain")
    out = tmp_path / "parts"
    for part in ("0", "1"):
        assert main(_argv(audit, out, "-num_parts", "2", "-part_id", part)) == 0
        assert f"part {part} of 2: " in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == [PARTS_ROOT]  # no dataset yet: only the hidden parts folder
    (parts,) = (out / PARTS_ROOT).iterdir()
    written = sorted(p.name for p in (parts / "labelsTr").iterdir())
    assert written == sorted(f"{c}{data['ending']}" for c in ("case_0", "case_1", "case_3"))  # the top 3
    def computed_again(*args, **kwargs):
        raise AssertionError("the final call computed a label a part had written")

    monkeypatch.setattr(repair_write, "_repaired", computed_again)  # the final call takes the parts' labels
    assert main(_argv(audit, out)) == 0
    assert "wrote " in capsys.readouterr().out
    assert digests(out / plain.folder.name) == digests(plain.folder)
    assert [p.name for p in out.iterdir()] == [plain.folder.name]  # the parts folder is gone


def test_a_damaged_part_label_is_computed_again(tmp_path, capsys):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    plain = repair_dataset(audit, 620, mode="ignore", top_k=3, out=tmp_path / "plain")
    out = tmp_path / "parts"
    assert main(_argv(audit, out, "-num_parts", "3", "-part_id", "1")) == 0
    (parts,) = (out / PARTS_ROOT).iterdir()
    (label,) = (parts / "labelsTr").iterdir()
    label.write_bytes(label.read_bytes()[:-5])  # e.g. a copy cut short between machines
    assert main(_argv(audit, out, "-num_parts", "3", "-part_id", "1")) == 0  # a re-run of the part replaces it
    assert main(_argv(audit, out)) == 0
    assert digests(out / plain.folder.name) == digests(plain.folder)
    capsys.readouterr()


def test_parts_of_another_request_are_not_taken(tmp_path, capsys):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    out = tmp_path / "parts"
    assert main(_argv(audit, out, "-num_parts", "2", "-part_id", "0", "--confidence", "0.5")) == 0
    plain = repair_dataset(audit, 620, mode="ignore", top_k=3, out=tmp_path / "plain")
    assert main(_argv(audit, out)) == 0  # confidence 0.9: the 0.5 parts are another request
    assert digests(out / plain.folder.name) == digests(plain.folder)
    assert not (out / PARTS_ROOT).exists()  # every parts folder of the dataset name is removed
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (("-num_parts", "0"), "-num_parts >= 1"),
    (("-num_parts", "2", "-part_id", "2"), "-part_id must be in 0..num_parts-1"),
    (("-part_id", "-1"), "-part_id must be in 0..num_parts-1"),
])
def test_bad_part_options_are_one_line_and_write_nothing(tmp_path, capsys, extra, message):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    assert main(_argv(audit, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_drop_part_has_nothing_to_repair(tmp_path, capsys):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    argv = ["repair", str(audit), "--out-id", "621", "--mode", "drop", "--top-k", "1", "--out", str(tmp_path / "o")]
    assert main([*argv, "-num_parts", "2", "-part_id", "0"]) == 0
    assert "part 0 of 2: 0 repaired label(s)" in capsys.readouterr().out
    assert main(argv) == 0 and (tmp_path / "o" / "Dataset621_Toy2d_repaired").is_dir()
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["Dataset621_Toy2d_repaired"]
