"""Command-line options for the measurement scripts, read from their ``Args`` dataclass (CleanRL style).

Each field becomes ``--field-name``: a bool a switch, a tuple a list of values of its first
element's type, anything else one value of its default's type.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any


def parse_dataclass_args(cls: type, description: str, argv: list[str] | None = None) -> dict[str, Any]:
    """The options of ``cls`` parsed from ``argv`` (default ``sys.argv``), as keyword arguments for ``cls``.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class A:
    ...     quick: bool = False
    ...     sizes: tuple[int, ...] = (512,)
    >>> parse_dataclass_args(A, "demo", ["--quick", "--sizes", "64", "128"])
    {'quick': True, 'sizes': (64, 128)}
    """
    parser = argparse.ArgumentParser(description=description)
    for f in fields(cls):
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true")
        elif isinstance(f.default, tuple):
            kind = type(f.default[0]) if f.default else str
            parser.add_argument(flag, type=kind, nargs="+", default=list(f.default))
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    ns = vars(parser.parse_args(argv))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in ns.items()}
