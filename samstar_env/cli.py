"""The ``samstar`` command line.

Each subcommand lives beside the code it drives: a module listed in ``_COMMANDS`` exposes
``add_cli(subparsers)``, which adds its parser and sets ``func``. Modules are imported only when the
command line is parsed, so ``samstar --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands, in help order.
_COMMANDS: tuple[str, ...] = ("samstar_env.data.cli", "samstar_env.models.train_tiny", "samstar_env.segment", "samstar_env.stream", "samstar_env.tune")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="samstar",
        description="Task-adaptive Segment Anything for microscopy (SAM*).",
    )
    parser.add_argument("--version", action="version", version=f"samstar {importlib.import_module('samstar_env').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _COMMANDS:
        importlib.import_module(mod).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``samstar`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as exc:
        # Bad input: one clear line, no traceback; the message names the input and what was expected.
        print(f"samstar {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
