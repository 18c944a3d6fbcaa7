"""``suspects`` under a terminal's Ctrl-C and under ``kill -9`` (issue 22), on the session's tiny trained model.

nnU-Net's predictor starts its own processes (a manager, spawned preprocessing processes, a spawn export pool,
the resource tracker). Before the fix, a SIGINT to the process group printed their KeyboardInterrupt tracebacks
(and the command could wait on them for minutes), and ``kill -9`` of the command left them all running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.fault_lib import TAG, TRACEBACK_WORDS, tagged_processes

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finds processes through /proc")]


def _start_and_wait_for_nnunet_workers(model: dict, out: Path) -> tuple[subprocess.Popen, str, Path]:
    """Start ``suspects`` in a session of its own; return once nnU-Net's worker processes run (still importing)."""
    tag = uuid.uuid4().hex
    env = {**os.environ, **{k: v for k, v in model["env"].items() if k.startswith("nnUNet_")}, TAG: tag,
           "OMP_NUM_THREADS": "1"}
    err = out.parent / f"{out.name}.err"
    tool = Path(sys.executable).parent / "tloss-nnunet"
    with open(err, "wb") as stderr:
        process = subprocess.Popen([str(tool), "suspects", model["model"], "-o", str(out), "-device", "cpu",
                                    "-npp", "1", "-nps", "2", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 180
    # nnU-Net's spawned processes: one preprocessing process and two export workers
    while len(_spawned(tag)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None and len(_spawned(tag)) >= 3, "nnU-Net's workers never started"
    time.sleep(0.5)
    return process, tag, err


def _spawned(tag: str) -> list[int]:
    found = []
    for pid in tagged_processes(tag):
        try:
            if b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _alive_after(tag: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:  # not to leave them to the next test
        os.kill(pid, signal.SIGKILL)
    return alive


@pytest.mark.parametrize("second", [False, True], ids=["one", "two"])
def test_group_ctrl_c_during_prediction_is_one_line_130_and_no_worker_traceback(trained_tloss_model, tmp_path,
                                                                                 second):
    process, tag, err = _start_and_wait_for_nnunet_workers(trained_tloss_model, tmp_path / "audit")
    os.killpg(process.pid, signal.SIGINT)
    if second:
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGINT)
    try:
        returncode = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("suspects hangs after a group Ctrl-C")
    stderr = err.read_text()
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "tloss-nnunet suspects: interrupted", stderr
    assert not [word for word in TRACEBACK_WORDS if word in stderr], stderr
    assert not _alive_after(tag, 5.0)


def test_kill_9_of_suspects_leaves_no_process_behind(trained_tloss_model, tmp_path):
    process, tag, _ = _start_and_wait_for_nnunet_workers(trained_tloss_model, tmp_path / "audit")
    process.kill()
    process.wait()
    assert not _alive_after(tag, 5.0)
