"""A terminal's Ctrl-C (SIGINT to the whole process group) while a pool's fork server imports its preload modules
(issue 22): the command prints one "interrupted" line and exits 130; before, the fork server died of it with a
traceback and the command failed with ``EOFError: unexpected EOF`` (rc 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(),
                                reason="needs the fork server start method")

SCRIPT = """
    import sys

    from tloss_nnunet.errors import exit_code_of
    from tloss_nnunet.workers import process_pool


    def square(x):
        return x * x


    def run():
        with process_pool(2, preload=["slow_preload"]) as pool:
            print(sum(pool.map(square, range(8))))
        return 0


    if __name__ == "__main__":
        sys.exit(exit_code_of(run, "probe", last_words=True))
"""
# Imported by the fork server only: says when it started, then takes long enough to be hit.
PRELOAD = """
    import os
    import pathlib
    import time

    pathlib.Path(os.environ["PRELOAD_MARK"]).write_text("importing")
    time.sleep(3)
"""


def _group_ctrl_c_during_preload(tmp_path: Path, second: bool) -> subprocess.CompletedProcess:
    (tmp_path / "probe.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "slow_preload.py").write_text(textwrap.dedent(PRELOAD))
    mark = tmp_path / "mark"
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PRELOAD_MARK": str(mark)}
    process = subprocess.Popen([sys.executable, str(tmp_path / "probe.py")], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mark.exists(), "the fork server never imported its preload module"
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    if second:
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("second", [False, True], ids=["one", "two"])
def test_group_ctrl_c_while_the_fork_server_imports_is_one_line_and_130(tmp_path, second):
    done = _group_ctrl_c_during_preload(tmp_path, second)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["probe: interrupted"], done.stderr
