"""Interrupted conversions leave no half-written case and are completed by re-running;
nnU-Net's own integrity check runs on every dataset written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tloss_nnunet import atomic
from tloss_nnunet.cli import main
from tloss_nnunet.converters import convert_isic2017, staging, write_synthetic_isic2017
from tloss_nnunet.converters.family import STAGING_ROOT
from tloss_nnunet.converters.publish import MARKER

OPTIONS = dict(alphas=[0.3, 0.7], betas=[0.5], workers=1, verify=False, progress=False)


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C in the middle of a run."""


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fail_after(calls: int, function):
    """Wrap ``function`` so that call number ``calls + 1`` raises :class:`Interrupted`."""
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Interrupted(f"interrupted after {calls} calls")
        return function(*args, **kwargs)

    return wrapper


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_synthetic_isic2017(tmp_path_factory.mktemp("isic") / "release", n_train=8, n_val=2, n_test=2,
                                    seed=7, min_size=150, max_size=260)


@pytest.fixture(scope="module")
def uninterrupted(release, tmp_path_factory) -> dict[str, bytes]:
    raw = tmp_path_factory.mktemp("reference")
    convert_isic2017(release, raw, **OPTIONS)
    return tree_bytes(raw)


def test_interrupted_while_staging_then_rerun_equals_uninterrupted_run(release, uninterrupted, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    monkeypatch.setattr(staging, "apply_noise", fail_after(4, staging.apply_noise))
    with pytest.raises(Interrupted):
        convert_isic2017(release, raw, **OPTIONS)
    monkeypatch.undo()

    stage = next((raw / STAGING_ROOT).iterdir())
    done = list((stage / "done").glob("*.json"))
    assert 0 < len(done) < 12
    assert sorted(p.name for p in raw.iterdir()) == [STAGING_ROOT]  # no dataset touched yet
    (stage / "images" / ".ISIC_0000000_0000.png.999.tmp").write_bytes(b"half a file")  # as left by a kill

    report = convert_isic2017(release, raw, **OPTIONS)
    assert report.resumed_cases == len(done)
    assert tree_bytes(raw) == uninterrupted
    assert "resumed" in report.format()


def test_interrupted_while_publishing_then_rerun_equals_uninterrupted_run(release, uninterrupted, tmp_path,
                                                                          monkeypatch):
    raw = tmp_path / "raw"
    monkeypatch.setattr(atomic, "link_or_copy", fail_after(30, atomic.link_or_copy))
    with pytest.raises(Interrupted):
        convert_isic2017(release, raw, **OPTIONS)
    monkeypatch.undo()

    first, second = raw / "Dataset500_ISIC2017_clean", raw / "Dataset501_ISIC2017_a03b05"
    # 30 links: the clean dataset's 24 files, then 6 of the next one
    assert json.loads((first / MARKER).read_text())["complete"] is True
    assert json.loads((second / MARKER).read_text())["complete"] is False
    assert len(list((second / "imagesTr").iterdir())) + len(list((second / "labelsTr").iterdir())) == 6
    assert not (second / "dataset.json").exists()
    (second / "labelsTr" / ".ISIC_0000001.png.999.tmp").write_bytes(b"half")

    report = convert_isic2017(release, raw, **OPTIONS)
    assert report.resumed_cases == 12  # every case was staged before the interruption
    assert tree_bytes(raw) == uninterrupted


def test_rerun_of_a_complete_conversion_changes_nothing(release, tmp_path):
    raw = tmp_path / "raw"
    convert_isic2017(release, raw, **OPTIONS)
    before = {p: p.stat().st_mtime_ns for p in raw.rglob("*")}
    report = convert_isic2017(release, raw, **OPTIONS)
    assert [ds.state for ds in report.datasets] == ["up to date"] * 3
    assert {p: p.stat().st_mtime_ns for p in raw.rglob("*")} == before
    # a subset of the settings reuses the complete datasets, by name and fingerprint
    report = convert_isic2017(release, raw, **{**OPTIONS, "alphas": [0.3]})
    assert [ds.state for ds in report.datasets] == ["up to date"] * 2


def test_every_written_dataset_passes_nnunets_integrity_check(release, tmp_path, capfd):
    raw = tmp_path / "raw"
    convert_isic2017(release, raw, **{**OPTIONS, "alphas": [0.5], "verify": True})
    assert capfd.readouterr().out.count("verify_dataset_integrity Done") == 2
    for folder in raw.iterdir():
        assert json.loads((folder / MARKER).read_text())["complete"] is True


def test_failed_integrity_check_leaves_the_dataset_unfinished_and_cli_exits_1(release, tmp_path, monkeypatch, capsys):
    import nnunetv2.experiment_planning.verify_dataset_integrity as nnunet_check

    def reject(folder: str, num_processes: int = 8) -> None:
        raise AssertionError("simulated rejection")

    monkeypatch.setattr(nnunet_check, "verify_dataset_integrity", reject)
    raw = tmp_path / "raw"
    code = main(["convert", "isic2017", str(release), "--out", str(raw), "--alpha", "0.5", "--beta", "0.5",
                 "--workers", "1", "--quiet"])
    assert code == 1
    assert "simulated rejection" in capsys.readouterr().err
    marker = json.loads((raw / "Dataset500_ISIC2017_clean" / MARKER).read_text())
    assert marker["complete"] is False
