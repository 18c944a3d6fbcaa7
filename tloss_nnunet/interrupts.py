"""Ctrl-C during clean-up: hold it until the clean-up is done, then deliver it.

A second SIGINT that lands while a staging folder is being removed or a worker pool is being shut down would
raise :class:`KeyboardInterrupt` in the middle of that work (half-removed folders, pipes closed under a
running thread: "Bad file descriptor"). :func:`deferred_interrupts` runs such a block with SIGINT recorded
instead of raised, and raises one :class:`KeyboardInterrupt` afterwards if any arrived and no other exception
is already on its way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["deferred_interrupts", "ignore_interrupts"]


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


def ignore_interrupts() -> None:
    """Ignore SIGINT from now on (the command is already ending after an interrupt; a repeat changes nothing).

    Only in the main thread; elsewhere a no-op.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
