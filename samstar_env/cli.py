"""The ``samstar`` command line.

Each subcommand lives beside the code it drives: the module named for it in ``COMMANDS`` exposes
``add_cli(subparsers)``, which adds its parser and sets ``func``. Only the module of the command
being run is imported (several pull in torch), so ``samstar --help`` and ``samstar data list`` stay
fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from samstar_env.errors import CLI_ERRORS

# command -> (module that defines it, one-line help shown by `samstar --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "tune": ("samstar_env.tune", "tune SAM's mask generator on a task with an agent (NSGA-II by default)"),
    "segment": ("samstar_env.segmentation", "segment images with tuned parameters: label TIFF, overlay, particle table"),
    "stream": ("samstar_env.stream.cli", "segment frames as they arrive in a folder, with a drift monitor"),
    "bench": ("samstar_env.benchmarks.cli", "run a benchmark suite (task x agent x seed); resumable"),
    "report": ("samstar_env.benchmarks.cli", "render a benchmark folder as a static HTML page"),
    "reproduce": ("samstar_env.benchmarks.reproduce", "the SAM* paper's three experiments on the synthetic tasks: paper vs samstar"),
    "cache": ("samstar_env.cache", "prepare (warm), inspect or clear the shared decode cache (SAMSTAR_CACHE)"),
    "data": ("samstar_env.data.cli", "list synthetic tasks; preview micrographs with ground truth"),
    "train-model": ("samstar_env.models.training.cli", "train a small SAM (samstar-tiny) on synthetic and EMPS data"),
    "train-policy": ("samstar_env.policy.cli", "train an amortized policy: a micrograph -> AMG parameters in one step"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command``, only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="samstar",
        description="Task-adaptive Segment Anything for microscopy (SAM*).",
    )
    parser.add_argument("--version", action="version", version=f"samstar {importlib.import_module('samstar_env').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    if command in COMMANDS:
        importlib.import_module(COMMANDS[command][0]).add_cli(sub)
    else:
        # Listing only: placeholders carry the help text without importing anything heavy.
        for name, (_, help_text) in COMMANDS.items():
            sub.add_parser(name, help=help_text)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``samstar`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # sam2 1.1 scripts its image transforms with torch.jit.script, which torch flags on every SAM 2
    # predictor: a note for sam2's authors, not for someone segmenting images.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLI_ERRORS as exc:
        # Bad input (or a missing extra, a failing reward, a mismatched resume): one clear line, no
        # traceback; the message names the input and what was expected. Only samstar's own error
        # types: any other exception is a bug and keeps its traceback.
        print(f"samstar {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
