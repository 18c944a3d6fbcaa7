"""Exceptions the command line reports as a clean message (exit code 2) instead of a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from tloss_nnunet.interrupts import ignore_interrupts

__all__ = ["InputError", "exit_code_of"]


class InputError(ValueError):
    """Bad user input (files, folders, options). The message lists every problem found."""


def exit_code_of(action: Callable[[], int | None], prog: str, *, interrupted: str = "interrupted",
                 failures: tuple[type[Exception], ...] = (), last_words: bool = False) -> int:
    """Run ``action`` and turn the outcome into a command's exit code, messages on stderr.

    0 (or ``action``'s own code) on success; 2 for :class:`InputError` (``"<prog>: error: ..."``); 1 for one of
    ``failures`` (``"<prog>: failed: ..."``); 130 on Ctrl-C. Anything else is a bug and keeps its traceback.
    ``last_words``: the process ends right after (the command line), so after Ctrl-C further ones are ignored:
    a repeat cannot interrupt the exit itself with a traceback.
    """
    try:
        return int(action() or 0)
    except InputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except failures as err:
        print(f"{prog}: failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if last_words:
            ignore_interrupts()
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
