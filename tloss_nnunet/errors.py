"""Exceptions the command line reports as a clean message (exit code 2) instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tloss_nnunet.interrupts import ignore_interrupts

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


def exit_code_of(action: Callable[[], int | None], prog: object, *, interrupted: str = "interrupted",
                 failures: tuple[type[Exception], ...] = (), last_words: bool = False) -> int:
    """Run ``action`` and turn the outcome into a command's exit code, messages on stderr.

    0 (or ``action``'s own code) on success; 2 for :class:`InputError` (``"<prog>: error: ..."``); 1 for one of
    ``failures`` (``"<prog>: failed: ..."``); 130 on Ctrl-C, also when it surfaces as another exception. Anything
    else is a bug and keeps its traceback. ``prog`` is used through ``str()`` when a message is printed.
    ``last_words``: the process ends right after (the command line), so after Ctrl-C further ones are ignored:
    a repeat cannot interrupt the exit itself with a traceback.
    """
    try:
        return int(action() or 0)
    except BaseException as err:  # noqa: BLE001 - sorted below; everything else is re-raised
        if _caused_by_interrupt(err):
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
