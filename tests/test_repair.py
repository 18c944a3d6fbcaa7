"""``tloss-nnunet repair`` on tiny synthetic nnU-Net raw datasets (2D PNG, 3D NIfTI; binary and 3 labels; cases of
different sizes) and hand-made audits (suspects.csv, npz probabilities as nnU-Net writes them, audit.json): what
it writes, that nnU-Net's integrity check accepts it, and that every refusal writes nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from repair_data import digests, make_audit, make_dataset, probabilities, read, verify

from tloss_nnunet.audit import repair_dataset
from tloss_nnunet.audit.repair import changed_summary
from tloss_nnunet.cli import main


@pytest.fixture(autouse=True)
def _no_nnunet_folders(monkeypatch):
    """repair also refuses an ID taken in $nnUNet_preprocessed / $nnUNet_results: keep the machine's out of it."""
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("dim, classes", [(2, 2), (3, 3)])
def test_ignore_marks_the_confident_disagreement_and_passes_nnunets_check(tmp_path, dim, classes):
    data = make_dataset(tmp_path / "raw", dim, classes)
    source_before = digests(data["folder"])
    audit = make_audit(data, tmp_path / "audit")
    result = repair_dataset(audit, 601, mode="ignore", top_k=2, out=tmp_path / "out")
    folder = tmp_path / "out" / f"Dataset601_Toy{dim}d_repaired"
    assert result.folder == folder and result.repaired == ["case_3", "case_1"]
    verify(folder)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["labels"]["ignore"] == classes and dataset_json["numTraining"] == 4
    assert dataset_json["citation"] == "Toy et al." and dataset_json["release"] == "1.0"
    assert dataset_json["name"] == folder.name and "repaired by tloss-nnunet repair" in dataset_json["description"]
    ending = data["ending"]
    for case in ("case_1", "case_3"):
        given, truth = data["given"][case], data["truths"][case]
        repaired = read(folder / "labelsTr" / f"{case}{ending}").reshape(given.shape)
        first_row = np.zeros(given.shape, bool)
        first_row[..., 0, :] = True  # the uncertain row: never marked
        expected = np.where((given != truth) & ~first_row, classes, given)
        np.testing.assert_array_equal(repaired, expected)
        entry = next(c for c in result.record["cases"] if c["case"] == case)
        assert entry["changed_pixels"] == int((expected != given).sum()) > 0
        assert entry["changed_fraction"] == round(entry["changed_pixels"] / given.size, 6) and not entry["dropped"]
    for case in ("case_0", "case_2"):  # not chosen: the very same files
        name = f"{case}{ending}"
        assert os.path.samefile(folder / "labelsTr" / name, data["folder"] / "labelsTr" / name)
    for image in (data["folder"] / "imagesTr").iterdir():
        assert os.path.samefile(folder / "imagesTr" / image.name, image)
    assert (folder / "imagesTs" / f"test_0_0000{ending}").is_file()
    record = json.loads((folder / "repair.json").read_text())
    assert record == result.record
    assert record["source"]["path"] == str(data["folder"]) and record["mode"] == "ignore"
    assert record["rule"] == {"top_k": 2} and record["confidence"] == 0.9
    assert record["audit"]["rank_by"] == "one_minus_dice"
    assert [(c["rank"], c["score"]) for c in record["cases"]] == [(1, 0.8), (2, 0.6)]
    assert digests(data["folder"]) == source_before  # the source is never touched
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [folder.name]  # no staging left


def test_replace_3d_multiclass_takes_the_prediction(tmp_path):
    data = make_dataset(tmp_path / "raw", 3, 3)
    audit = make_audit(data, tmp_path / "audit")
    result = repair_dataset(audit, 602, mode="replace", fraction=0.5, out=tmp_path / "out")
    verify(result.folder)
    dataset_json = json.loads((result.folder / "dataset.json").read_text())
    assert "ignore" not in dataset_json["labels"]
    for case in ("case_1", "case_3"):
        expected = probabilities(data["truths"][case], 3).argmax(0)
        np.testing.assert_array_equal(read(result.folder / "labelsTr" / f"{case}.nii.gz"), expected)
        repaired = sitk.ReadImage(str(result.folder / "labelsTr" / f"{case}.nii.gz"))
        assert repaired.GetSpacing() == (1.0, 1.0, 2.0)  # geometry kept (nnU-Net's writer, the label's properties)


def test_drop_leaves_the_cases_out(tmp_path):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    result = repair_dataset(audit, 603, mode="drop", threshold=0.5, out=tmp_path / "out", name="Toy_clean")
    assert result.folder.name == "Dataset603_Toy_clean" and result.dropped == ["case_3", "case_1"]
    verify(result.folder)
    assert json.loads((result.folder / "dataset.json").read_text())["numTraining"] == 2
    assert sorted(p.name for p in (result.folder / "labelsTr").iterdir()) == ["case_0.png", "case_2.png"]
    assert sorted(p.name for p in (result.folder / "imagesTr").iterdir()) == ["case_0_0000.png", "case_2_0000.png"]


def test_ignore_reuses_the_datasets_ignore_label(tmp_path):
    data = make_dataset(tmp_path / "raw", 2, 3, ignore=True)
    audit = make_audit(data, tmp_path / "audit")
    result = repair_dataset(audit, 604, mode="ignore", top_k=1, out=tmp_path / "out")
    verify(result.folder)
    assert json.loads((result.folder / "dataset.json").read_text())["labels"]["ignore"] == 3
    repaired = read(result.folder / "labelsTr" / "case_3.png")
    assert set(np.unique(repaired).tolist()) <= {0, 1, 2, 3} and (repaired[..., 0] == 3).all()
    assert result.record["ignore_label"] == 3


@pytest.mark.parametrize("dim", [2, 3])
def test_a_rerun_writes_identical_files(tmp_path, dim):
    data = make_dataset(tmp_path / "raw", dim, 2)
    audit = make_audit(data, tmp_path / "audit")
    first = repair_dataset(audit, 605, mode="ignore", top_k=2, out=tmp_path / "a")
    second = repair_dataset(audit, 605, mode="ignore", top_k=2, out=tmp_path / "b")
    assert digests(first.folder) == digests(second.folder)


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_and_names_the_next_step(tmp_path, capsys, monkeypatch):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    (tmp_path / "preprocessed" / "Dataset611_Other").mkdir(parents=True)
    code, _, err = _cli(["repair", str(audit), "--out-id", "611", "--mode", "replace", "--top-k", "1"], capsys)
    assert code == 2 and "dataset ID 611 is taken" in err and "preprocessed" in err
    code, out, _ = _cli(["repair", str(audit), "--out-id", "610", "--mode", "replace", "--top-k", "1"], capsys)
    assert code == 0 and (tmp_path / "raw" / "Dataset610_Toy2d_repaired" / "repair.json").is_file()
    assert "repaired 1 of 4 case(s)" in out and "nnUNetv2_plan_and_preprocess -d 610" in out


def test_cases_no_fold_held_out_are_flagged(tmp_path):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit", held_out=False)
    result = repair_dataset(audit, 612, mode="drop", top_k=1, out=tmp_path / "out")
    assert result.record["cases"][0]["held_out"] is False
    assert "1 of them by a fold that trained on their label" in changed_summary(result.record)


def test_a_rerun_into_its_own_finished_output_is_up_to_date_and_an_edit_is_refused(tmp_path, capsys):
    data = make_dataset(tmp_path / "raw", 2, 2)
    audit = make_audit(data, tmp_path / "audit")
    argv = ["repair", str(audit), "--out-id", "613", "--mode", "ignore", "--top-k", "2", "--out", str(tmp_path / "o")]
    code, _, _ = _cli(argv, capsys)
    folder = tmp_path / "o" / "Dataset613_Toy2d_repaired"
    written = digests(folder)
    code, out, _ = _cli(argv, capsys)  # e.g. after a kill that came once the dataset was in place
    assert code == 0 and "[up to date]" in out and digests(folder) == written
    code, _, err = _cli([*argv[:-4], "--top-k", "1", *argv[-2:]], capsys)  # another rule: not this output
    assert code == 2 and "dataset ID 613 is taken" in err
    label = next((folder / "labelsTr").iterdir())
    edited = label.read_bytes() + b"\0"
    label.unlink()  # it may be a hard link to the source's label: the source stays as it is
    label.write_bytes(edited)  # edited by hand since
    code, _, err = _cli(argv, capsys)
    assert code == 2 and "is taken" in err and digests(folder) != written
