"""The ``tloss-nnunet`` command line: one parser, one subcommand per job.

Each feature area owns its subcommands in a module that exposes ``register(subparsers)``; that
function adds its parsers and sets ``func`` (called with the parsed namespace, returning an exit
code). Importing those modules is deferred to here so that ``tloss_nnunet`` itself stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Sequence

from tloss_nnunet.errors import exit_code_of

# Modules that contribute subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "tloss_nnunet.nnunet.cli",
    "tloss_nnunet.noise.cli",
    "tloss_nnunet.converters.cli",
    "tloss_nnunet.audit.cli",
)


if TYPE_CHECKING:
    import argparse


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered subcommand."""
    import argparse  # here, not at import: a Ctrl-C while it loads is then handled by main (one line)

    from tloss_nnunet import __version__

    parser = argparse.ArgumentParser(
        prog="tloss-nnunet",
        description="Robust T-Loss for nnU-Net v2 and MONAI: trainer discovery, noisy-label "
        "protocol, dataset converters, label auditing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen subcommand, return its exit code."""
    prog = _Prog()

    def run() -> int:
        args = build_parser().parse_args(argv)  # inside: Ctrl-C while the subcommands import is one line too
        prog.name = f"tloss-nnunet {args.command}"
        return args.func(args)

    # OSError: the machine's side (disk full, permissions, a folder where a file is expected): one line, exit 1.
    return exit_code_of(run, prog, failures=(OSError,), last_words=argv is None)


class _Prog:
    """The name messages start with: the subcommand's once it is known."""

    name = "tloss-nnunet"

    def __str__(self) -> str:
        return self.name


if __name__ == "__main__":
    raise SystemExit(main())
