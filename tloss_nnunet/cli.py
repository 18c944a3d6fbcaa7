"""The ``tloss-nnunet`` command line: one parser, one subcommand per job; the layer above every wing.

Each wing owns its subcommands in a ``cli`` module that exposes ``register(subparsers)``; that function adds
its parsers and sets ``func`` (called with the parsed namespace, returning an exit code). This module imports
those modules with plain import statements inside :func:`build_parser`, so importing ``tloss_nnunet`` stays
light; it is the only library module that may import the noise and converter wings (``tests/test_layout.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tloss_nnunet.errors import exit_code_of

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
    # The wings' commands, in the order ``--help`` lists them.
    from tloss_nnunet.audit import cli as audit_cli
    from tloss_nnunet.audit import repair_cli
    from tloss_nnunet.converters import cli as converters_cli
    from tloss_nnunet.nnunet import cli as nnunet_cli
    from tloss_nnunet.noise import cli as noise_cli

    for wing in (nnunet_cli, noise_cli, converters_cli, audit_cli, repair_cli):
        wing.register(subparsers)
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
