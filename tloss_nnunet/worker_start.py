"""How every process of a pool starts under the project's policy (see :mod:`tloss_nnunet.workers`).

A worker ignores Ctrl-C (its parent handles it and stops the pool) and ends itself when the process that
started it is gone: a daemon thread waits on :func:`multiprocessing.parent_process`'s sentinel, and a spawned
worker also asks the kernel to kill it with its parent (Linux ``PR_SET_PDEATHSIG``) as soon as it unpickles
what its parent sent, before the imports that can take seconds. Processes are started with SIGINT blocked
(:func:`~tloss_nnunet.interrupts.sigint_blocked`), so a terminal's Ctrl-C cannot kill one that has not got
this far; here it is ignored and unblocked.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tloss_nnunet.interrupts import unblock_sigint

__all__ = ["PARENT_GONE_EXIT", "Initializer", "arrived_process", "start_worker"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Exit status of a worker whose parent died (nobody reads it; it tells the case apart in a core dump).
PARENT_GONE_EXIT = 70


def _exit_with_parent() -> None:
    """In a pool process: a daemon thread ends this process as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])  # readable (EOF) once the parent's end is closed: it died
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _on_arrival(parent_pid: int) -> None:
    """In a spawned process, while it unpickles what its parent sent (before the imports that can take seconds):
    ignore Ctrl-C, and have the kernel kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``; only where the
    parent that pickled it is its OS parent, i.e. not under a fork server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    unblock_sigint()
    if sys.platform != "linux" or os.getppid() != parent_pid:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the request took effect
        os._exit(PARENT_GONE_EXIT)


class Initializer:
    """A pool's initializer (:func:`start_worker` with the caller's) that runs :func:`_on_arrival` as soon as a
    spawned worker unpickles it, which is before the worker imports anything heavy."""

    def __init__(self, initializer: Callable[..., None] | None, parent_pid: int | None = None) -> None:
        self.initializer = initializer
        self.parent_pid = parent_pid

    def __call__(self, *initargs: Any) -> None:
        start_worker(self.initializer, *initargs)

    def __reduce__(self) -> tuple:
        return _arrived_initializer, (self.initializer, os.getpid())


def _arrived_initializer(initializer: Callable[..., None] | None, parent_pid: int) -> Initializer:
    _on_arrival(parent_pid)
    return Initializer(initializer, parent_pid)


def arrived_process(cls: type, parent_pid: int) -> Any:
    _on_arrival(parent_pid)
    return object.__new__(cls)


def start_worker(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    """First thing every pool process runs: Ctrl-C is the parent's to handle, die with the parent, then the
    caller's own initializer. The process started with SIGINT blocked (:func:`_PolicyPool.submit` and the policy
    context start processes under :func:`~tloss_nnunet.interrupts.sigint_blocked`); ignored now, it is unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    unblock_sigint()
    _exit_with_parent()
    if initializer is not None:
        initializer(*initargs)
