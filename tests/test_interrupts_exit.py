"""Ctrl-C while a finished command exits (issue 22): after the work is done and published, a SIGINT to the process
group that lands during Python's exit (atexit handlers, interpreter finalization) changes nothing: exit 0, nothing
printed. Before, it died silently of SIGINT (-2) or printed a KeyboardInterrupt from an atexit handler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = """
    import atexit
    import pathlib
    import sys
    import time

    from tloss_nnunet.errors import exit_code_of


    def slow_exit():  # as multiprocessing's atexit handler joining a pool's processes
        pathlib.Path(sys.argv[1]).write_text("exiting")
        time.sleep(2)


    if __name__ == "__main__":
        atexit.register(slow_exit)
        sys.exit(exit_code_of(lambda: 0, "probe", last_words=True))
"""


def test_group_ctrl_c_while_a_finished_command_exits_changes_nothing(tmp_path: Path):
    (tmp_path / "probe.py").write_text(textwrap.dedent(SCRIPT))
    mark = tmp_path / "mark"
    process = subprocess.Popen([sys.executable, str(tmp_path / "probe.py"), str(mark)], stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (0, "")


def test_an_error_that_follows_a_ctrl_c_is_reported_as_the_interrupt(capsys):
    """A library that turns Ctrl-C into another error without chaining it (numpy's import cut short gave
    ``ImportError: PyCapsule_Import could not import module "datetime"``) still ends in one line and 130."""
    from tloss_nnunet.errors import exit_code_of

    def action() -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # swallowed, as a library's bare except does
        raise ImportError("cut short")  # no __context__: raised after the except block

    assert exit_code_of(action, "prog") == 130
    assert capsys.readouterr().err.strip() == "prog: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_an_error_without_a_ctrl_c_keeps_its_traceback():
    from tloss_nnunet.errors import exit_code_of

    def action() -> int:
        raise ImportError("a real bug")

    try:
        exit_code_of(action, "prog")
    except ImportError as err:
        assert str(err) == "a real bug"
    else:
        raise AssertionError("the ImportError was swallowed")


def test_a_ctrl_c_that_lands_in_a_finalizer_is_not_lost(capsys):
    """Python prints a KeyboardInterrupt raised in a ``__del__`` as "Exception ignored in ..." and goes on as if
    nothing happened (seen in the fault run: an imageio reader's ``__del__``, multiprocessing's finalizers)."""
    from tloss_nnunet.errors import exit_code_of

    class Closing:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here, inside the finalizer

    def action() -> int:
        Closing()  # collected at once: its __del__ gets the Ctrl-C
        time.sleep(5)
        return 0

    started = time.perf_counter()
    assert exit_code_of(action, "prog") == 130
    assert time.perf_counter() - started < 4
    assert capsys.readouterr().err.strip() == "prog: interrupted"


LEAK_PROBE = """
    import os
    import signal
    import sys
    import time
    from multiprocessing import get_context, resource_tracker

    from tloss_nnunet.errors import exit_code_of

    registered = resource_tracker.register


    def register(name, rtype):  # the Ctrl-C lands just after the tracker has recorded the new semaphore
        registered(name, rtype)
        os.kill(os.getpid(), signal.SIGINT)


    def work():
        resource_tracker.register = register
        lock = get_context("spawn").Lock()  # what a process pool's queues make
        resource_tracker.register = registered
        time.sleep(10)  # where the Ctrl-C sent again lands
        return 0 if lock else 1


    if __name__ == "__main__":
        sys.exit(exit_code_of(work, "probe", last_words=True))
"""


def test_a_ctrl_c_while_a_pool_makes_its_queues_leaks_no_semaphore(tmp_path: Path):
    """The CI failure of stop 27: ``convert`` interrupted while its process pool made its queues ended in
    "interrupted" followed by the resource tracker's "There appear to be 1 leaked semaphore objects" warning
    (the KeyboardInterrupt cut SemLock.__init__ short between registering the semaphore and attaching the
    finalizer that unregisters it). Now that Ctrl-C is sent again once the semaphore's bookkeeping is done."""
    (tmp_path / "probe.py").write_text(textwrap.dedent(LEAK_PROBE))
    started = time.perf_counter()
    # communicate() waits for the resource tracker too: it shares stderr and prints its warning as it exits.
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, "probe: interrupted\n")
    assert time.perf_counter() - started < 8  # not the 10 s sleep: the interrupt was delivered, only later


def test_bookkeeping_is_recognised_only_inside_multiprocessings_semaphore_code():
    import inspect
    from multiprocessing import get_context, resource_tracker

    from tloss_nnunet.interrupts import in_multiprocessing_bookkeeping

    seen: list[bool] = []
    registered = resource_tracker.register

    def register(name, rtype):
        seen.append(in_multiprocessing_bookkeeping(inspect.currentframe()))
        registered(name, rtype)

    resource_tracker.register = register
    try:
        lock = get_context("spawn").Lock()
    finally:
        resource_tracker.register = registered
    assert seen == [True] and lock
    assert not in_multiprocessing_bookkeeping(inspect.currentframe())
    assert not in_multiprocessing_bookkeeping(None)
