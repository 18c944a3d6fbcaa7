"""What a re-run finds (issue 14, defects 3-5): damaged outputs are made again instead of trusted, corrupt JPEGs
are refused by name, leftovers of dead runs are removed (those of live ones kept), Ctrl-C waits for clean-up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tloss_nnunet.atomic import staging_folder, swap_into
from tloss_nnunet.cli import main
from tloss_nnunet.converters import write_synthetic_isic2017
from tloss_nnunet.converters.family import STAGING_ROOT
from tloss_nnunet.interrupts import deferred_interrupts
from tloss_nnunet.owners import OwnerLock, remove_stale

OPTIONS = ["--alpha", "0.5", "--beta", "0.5", "--workers", "1", "--quiet", "--no-verify"]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_synthetic_isic2017(tmp_path_factory.mktemp("isic") / "release", n_train=4, n_val=1, n_test=1,
                                    seed=5, min_size=90, max_size=140)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _convert(release: Path, raw: Path) -> int:
    return main(["convert", "isic2017", str(release), "--out", str(raw), *OPTIONS])


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize("damage", ["deleted_label", "truncated_image", "broken_dataset_json", "flipped_image_byte"])
def test_a_damaged_dataset_is_made_again_not_reported_up_to_date(release, tmp_path, capsys, damage):
    raw = tmp_path / "raw"
    assert _convert(release, raw) == 0
    reference = _tree(raw)
    clean = raw / "Dataset500_ISIC2017_clean"
    if damage == "deleted_label":
        next((clean / "labelsTr").iterdir()).unlink()
    elif damage == "truncated_image":
        image = next((clean / "imagesTr").iterdir())
        image.write_bytes(image.read_bytes()[:100])
    elif damage == "broken_dataset_json":
        (clean / "dataset.json").write_text('{"numTraining": 5,')
    else:  # same size, CRC error (a file the user put there is refused instead: test_foreign_files.py)
        image = next((clean / "imagesTr").iterdir())
        data = bytearray(image.read_bytes())
        data[len(data) // 2] ^= 0x01
        image.write_bytes(bytes(data))
    capsys.readouterr()
    assert _convert(release, raw) == 0
    out = capsys.readouterr()
    assert "Dataset500_ISIC2017_clean [written]" in out.out and "written again" in out.out
    # images are hard links shared by the family: damaging one damages it in every dataset
    noisy_state = "written" if damage in ("truncated_image", "flipped_image_byte") else "up to date"
    assert f"Dataset501_ISIC2017_a05b05 [{noisy_state}]" in out.out
    assert "Traceback" not in out.err
    assert _tree(raw) == reference


def test_a_jpeg_with_200_overwritten_bytes_is_refused_by_name(release, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    jpg = sorted((copy / "ISIC-2017_Training_Data").glob("*.jpg"))[1]
    data = bytearray(jpg.read_bytes())
    middle = len(data) // 2
    # libjpeg notices most such overwrites (it then only warns, which is what the converter catches); a few
    # resynchronise and decode without a word, which no reader can tell from a valid file without a checksum.
    data[middle:middle + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    jpg.write_bytes(bytes(data))
    assert _convert(copy, tmp_path / "raw") == 2
    err = capsys.readouterr().err
    assert f"{jpg.stem}: image {jpg}: corrupt JPEG (libjpeg: Corrupt JPEG data" in err
    assert not (tmp_path / "raw").exists()


def test_noise_removes_a_dead_runs_staging_and_keeps_a_live_ones(tmp_path):
    import cv2

    from tloss_nnunet.noise.synthetic import lesion_like_mask

    masks, out = tmp_path / "masks", tmp_path / "out"
    masks.mkdir()
    cv2.imwrite(str(masks / "c0.png"), lesion_like_mask(np.random.default_rng(0), (32, 32)).astype(np.uint8) * 255)
    out.mkdir()
    dead = out / f".noise-staging-{_dead_pid()}-abc123"
    (dead / "alpha0.5_beta0.5").mkdir(parents=True)
    trash = out / f".alpha0.5_beta0.5.old-{_dead_pid()}-xyz"
    trash.mkdir()
    live = out / f".noise-staging-{_dead_pid()}-live99"  # its pid is gone, but a live process holds the lock
    live.mkdir()
    lock = OwnerLock(live)
    try:
        assert main(["noise", str(masks), str(out), "--alpha", "0.5", "--beta", "0.5", "--quiet"]) == 0
        assert not dead.exists() and not trash.exists() and live.exists()
    finally:
        lock.release()
    assert remove_stale(out, r"\.noise-staging-(\d+)-\w+") == [live]


def test_convert_keeps_a_live_runs_staging_and_refuses_to_share_its_own(release, tmp_path, capsys, monkeypatch):
    from tloss_nnunet.converters import family

    raw = tmp_path / "raw"
    other = raw / STAGING_ROOT / "ISIC2017-0123456789abcdef"  # another live conversion, other options
    other.mkdir(parents=True)
    other_lock = OwnerLock(other)

    def crash(*args, **kwargs):
        raise RuntimeError("crashed while publishing")

    monkeypatch.setattr(family, "publish_dataset", crash)
    with pytest.raises(RuntimeError):
        _convert(release, raw)
    monkeypatch.undo()
    (mine,) = [p for p in (raw / STAGING_ROOT).iterdir() if p != other]  # kept: the next run resumes it
    mine_lock = OwnerLock(mine)  # as if the crashed run were still alive
    capsys.readouterr()
    assert _convert(release, raw) == 2
    assert "another tloss-nnunet convert of the same inputs is writing" in capsys.readouterr().err
    mine_lock.release()
    assert _convert(release, raw) == 0
    assert sorted((raw / STAGING_ROOT).iterdir()) == [other]
    other_lock.release()


def test_swap_into_and_staging_folder_names_carry_the_owner(tmp_path):
    with staging_folder(tmp_path, "demo") as staging:
        assert staging.name.startswith(f".demo-{os.getpid()}-")
        assert OwnerLock.try_acquire(staging) is None  # locked while in use
        (staging / "x").write_text("new")
        (tmp_path / "x").write_text("old")
        swap_into(staging / "x", tmp_path / "x")
    assert [p.name for p in tmp_path.iterdir()] == ["x"] and (tmp_path / "x").read_text() == "new"


def test_ctrl_c_waits_until_the_block_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                done.append("inner")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("outer")
    assert done == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stopped_pool_does_not_wait_for_running_tasks():
    from tloss_nnunet.workers import process_pool

    started = time.perf_counter()
    with pytest.raises(RuntimeError):
        with process_pool(2) as pool:
            futures = [pool.submit(time.sleep, 30) for _ in range(6)]
            time.sleep(1)
            raise RuntimeError("stop")
    assert time.perf_counter() - started < 25
    assert all(f.done() for f in futures)
    assert any(f.cancelled() for f in futures)


def test_an_error_caused_by_ctrl_c_is_reported_as_the_interrupt(capsys):
    from tloss_nnunet.errors import exit_code_of

    def import_cut_short():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("cannot load module more than once per process") from None  # what torch then raises

    assert exit_code_of(import_cut_short, "tloss-nnunet export-stock") == 130
    assert capsys.readouterr().err == "tloss-nnunet export-stock: interrupted\n"
    with pytest.raises(ImportError):
        exit_code_of(lambda: __import__("no_such_module_here"), "x")  # a plain bug keeps its traceback
