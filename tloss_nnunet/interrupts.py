"""Ctrl-C during clean-up: hold it until the clean-up is done, then deliver it; keep it from processes as they
start (:func:`sigint_blocked`).

A second SIGINT that lands while a staging folder is being removed or a worker pool is being shut down would
raise :class:`KeyboardInterrupt` in the middle of that work (half-removed folders, pipes closed under a
running thread: "Bad file descriptor"). :func:`deferred_interrupts` runs such a block with SIGINT recorded
instead of raised, and raises one :class:`KeyboardInterrupt` afterwards if any arrived and no other exception
is already on its way. :func:`in_multiprocessing_bookkeeping` tells when a Ctrl-C would cut short
multiprocessing's own record of the semaphores it created (the command's SIGINT handler then sends it again a
little later).
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FrameType

__all__ = ["deferred_interrupts", "ignore_interrupts", "in_multiprocessing_bookkeeping", "sigint_blocked",
           "unblock_sigint"]


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the block with SIGINT held back; re-deliver it as :class:`KeyboardInterrupt` at the end.

    Outside the main thread (where Python cannot change signal handlers) the block simply runs. Nested use is
    fine: the inner block hands a held interrupt to the outer one, which holds it until its own end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    unwinding = False
    try:
        yield
    except BaseException:
        unwinding = True
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and not unwinding and previous is not signal.SIG_IGN:
            if callable(previous) and previous is not signal.default_int_handler:
                previous(signal.SIGINT, None)  # e.g. an outer deferral, which records it
            else:
                raise KeyboardInterrupt


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Run the block with SIGINT blocked in this thread's signal mask; one that arrives meanwhile stays pending
    and is delivered (to whatever handler is then installed) when the block ends.

    Why: a process started inside the block inherits the mask, through fork and exec alike, so it starts with
    Ctrl-C blocked. A terminal's Ctrl-C goes to the whole process group; a child still importing its modules
    (a fork server, a spawned worker) would otherwise die of it with a traceback before it can choose to ignore
    it. Threads started inside inherit the mask too, which is harmless: Python runs handlers in the main thread.
    A no-op where there is no ``pthread_sigmask`` (Windows).
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_sigint() -> None:
    """Take SIGINT out of this thread's mask (a process started by :func:`sigint_blocked` that has chosen what
    Ctrl-C does to it)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def ignore_interrupts() -> None:
    """Ignore SIGINT from now on (the command is already ending after an interrupt; a repeat changes nothing).

    Only in the main thread; elsewhere a no-op.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@functools.cache
def _bookkeeping() -> tuple[frozenset[CodeType], CodeType | None, object, str | None]:
    """What :func:`in_multiprocessing_bookkeeping` looks for: the code of SemLock's ``__init__`` and ``_cleanup``,
    of ``Finalize.__call__``, the ``_cleanup`` function, and the resource tracker's file."""
    try:
        from multiprocessing import resource_tracker, synchronize, util
    except ImportError:  # no sem_open on this platform: nothing is registered either
        return frozenset(), None, None, None
    semlock = synchronize.SemLock
    cleanup = getattr(semlock, "_cleanup", None)  # private, not in typeshed
    codes = {semlock.__init__.__code__} | ({cleanup.__code__} if cleanup is not None else set())
    return frozenset(codes), util.Finalize.__call__.__code__, cleanup, resource_tracker.__file__


def in_multiprocessing_bookkeeping(frame: FrameType | None) -> bool:
    """True when the stack at ``frame`` (a signal handler's) is creating or finalizing a multiprocessing semaphore,
    or talking to the resource tracker.

    Why: a semaphore is registered with the resource tracker inside ``SemLock.__init__`` and unregistered by the
    finalizer that ``__init__`` attaches last; either cut short by an exception leaves the tracker warning of
    "leaked semaphore objects" when the command has ended. Other finalizers (a pool's, which joins its processes)
    are not counted: Ctrl-C must still reach a command stuck in one."""
    codes, finalize_call, cleanup, tracker_file = _bookkeeping()
    while frame is not None:
        code = frame.f_code
        if code in codes or code.co_filename == tracker_file:
            return True
        if code is finalize_call and cleanup is not None and \
                getattr(frame.f_locals.get("self"), "_callback", None) is cleanup:
            return True
        frame = frame.f_back
    return False
