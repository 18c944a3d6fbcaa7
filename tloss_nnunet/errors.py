"""Exceptions the command line reports as a clean message (exit code 2) instead of a traceback."""


class InputError(ValueError):
    """Bad user input (files, folders, options). The message lists every problem found."""
