"""Exceptions the command line reports as a clean message (exit code 2) instead of a traceback."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from tloss_nnunet.interrupts import ignore_interrupts, in_multiprocessing_bookkeeping

__all__ = ["InputError", "exit_code_of"]


class InputError(ValueError):
    """Bad user input (files, folders, options). The message lists every problem found."""


def _caused_by_interrupt(error: BaseException) -> bool:
    """True when Ctrl-C is somewhere in ``error``'s chain (e.g. an import that a KeyboardInterrupt cut short,
    retried by the library and failing as an ImportError)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


#: Delay before a Ctrl-C caught in a finalizer (or in multiprocessing's bookkeeping) is sent again.
_REDELIVER_AFTER_S = 0.05


def _send_again_later() -> None:
    """SIGINT to this process in :data:`_REDELIVER_AFTER_S`, from a daemon thread."""
    timer = threading.Timer(_REDELIVER_AFTER_S, os.kill, (os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()


class _InterruptWatch:
    """SIGINT handler while a command runs: Python's own (raise KeyboardInterrupt), remembering that it fired.

    Some libraries turn a KeyboardInterrupt into another error without chaining it (numpy's C import of
    ``datetime`` cut short becomes an ``ImportError``); after a Ctrl-C, such an error is the Ctrl-C's doing."""

    def __init__(self) -> None:
        self.fired = False
        self._hook = sys.unraisablehook

    def __call__(self, signum, frame) -> None:
        if in_multiprocessing_bookkeeping(frame):  # e.g. a pool creating its queues: it would leak semaphores
            _send_again_later()
            return
        self.fired = True
        raise KeyboardInterrupt

    def install(self) -> bool:
        """Become the SIGINT handler where Python's default is (main thread only); True when installed. Also
        catch a Ctrl-C that lands in a finalizer (a ``__del__``, a weakref callback): Python would print it as
        "Exception ignored in ..." and lose it; it is sent again instead, from a thread, so that it arrives once
        the finalizer is done."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False
        signal.signal(signal.SIGINT, self)
        self._hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return True

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _send_again_later()  # a little later, so that it finds this hook (and the aborted finalizer) done
            return
        self._hook(unraisable)

    def uninstall(self) -> None:
        if sys.unraisablehook == self._unraisable:
            sys.unraisablehook = self._hook
        if signal.getsignal(signal.SIGINT) is self:  # not when ignore_interrupts() has replaced it since
            signal.signal(signal.SIGINT, signal.default_int_handler)


def exit_code_of(action: Callable[[], int | None], prog: object, *, interrupted: str = "interrupted",
                 failures: tuple[type[Exception], ...] = (), last_words: bool = False) -> int:
    """Run ``action`` and turn the outcome into a command's exit code, messages on stderr.

    0 (or ``action``'s own code) on success; 2 for :class:`InputError` (``"<prog>: error: ..."``); 1 for one of
    ``failures`` (``"<prog>: failed: ..."``); 130 on Ctrl-C, also when it surfaces as another exception. Anything
    else is a bug and keeps its traceback. ``prog`` is used through ``str()`` when a message is printed.
    ``last_words``: the process ends right after (the command line), so once the action is over (done, failed or
    interrupted) Ctrl-C is ignored: one landing while Python exits (atexit handlers joining a pool's processes,
    interpreter finalization, which would restore SIGINT's default action and die silently of it) changes nothing.
    """
    watch = _InterruptWatch()
    installed = watch.install()
    try:
        code = int(action() or 0)
        if last_words:
            ignore_interrupts()
        return code
    except BaseException as err:  # noqa: BLE001 - sorted below; everything else is re-raised
        if _caused_by_interrupt(err) or watch.fired:
            if last_words:
                ignore_interrupts()
            print(f"{prog}: {interrupted}", file=sys.stderr)
            return 130
        if isinstance(err, InputError):
            print(f"{prog}: error: {err}", file=sys.stderr)
            return 2
        if failures and isinstance(err, failures):
            print(f"{prog}: failed: {err}", file=sys.stderr)
            return 1
        raise
    finally:
        if installed:
            watch.uninstall()
