"""Command-line options for the measurement scripts, read from their ``Args`` dataclass (CleanRL style).

Each field becomes ``--field-name``, with the string literal under the field (its docstring, as in
CleanRL) as its ``--help`` text:

- a bool is a switch (``--no-field-name`` too when it defaults to True);
- a tuple takes one or more values of its element type, space- or comma-separated (``--sizes 64 128``
  and ``--sizes 64,128`` are the same);
- anything else takes one value of its annotated type (``str | None`` reads a ``str``), else of its
  default's type.

The scripts import this file as a sibling module (``from script_args import parse_dataclass_args``):
Python puts a script's own folder first on ``sys.path``, and ``benchmarks/scripts/`` is not a package.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any


def parse_dataclass_args(cls: type, description: str, argv: list[str] | None = None) -> dict[str, Any]:
    """The options of ``cls`` parsed from ``argv`` (default ``sys.argv``), as keyword arguments for ``cls``.

    Parameters
    ----------
    cls
        A dataclass whose fields all have defaults (the script's ``Args``).
    description
        What ``--help`` says above the options.
    argv
        The arguments, without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    dict
        One entry per field; tuples for tuple fields.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class A:
    ...     quick: bool = False
    ...     sizes: tuple[int, ...] = (512,)
    ...     out: str | None = None
    >>> parse_dataclass_args(A, "demo", ["--quick", "--sizes", "64", "128"])
    {'quick': True, 'sizes': (64, 128), 'out': None}
    >>> parse_dataclass_args(A, "demo", ["--sizes", "64,128", "--out", "x.json"])
    {'quick': False, 'sizes': (64, 128), 'out': 'x.json'}
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    hints = _type_hints(cls)
    docs = field_docstrings(cls)
    tuple_fields = set()
    for f in fields(cls):
        flag = f"--{f.name.replace('_', '-')}"
        default = _default(f)
        # argparse %-formats help strings: a literal % in a docstring must not break --help.
        help_text = docs.get(f.name, "").replace("%", "%%") or None
        kind = _unwrap_optional(hints.get(f.name))
        if isinstance(default, bool):
            action = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(flag, action=action, default=default, help=help_text)
        elif isinstance(default, tuple):
            tuple_fields.add(f.name)
            item = _tuple_item_type(kind) or (type(default[0]) if default else str)
            parser.add_argument(flag, type=_comma_list(item), nargs="+", default=default, help=help_text)
        else:
            value_type = kind if isinstance(kind, type) else (type(default) if default is not None else str)
            parser.add_argument(flag, type=value_type, default=default, help=help_text)
    ns = vars(parser.parse_args(argv))
    for name in tuple_fields:
        value = ns[name]
        if isinstance(value, list):  # given on the command line: one tuple per token, flattened
            ns[name] = tuple(v for part in value for v in part)
    return ns


def field_docstrings(cls: type) -> dict[str, str]:
    """The string literal under each field of ``cls`` (see :func:`field_docstrings_in`); empty without source.

    A class typed at a prompt or in a doctest has no source file, so its options get no help text
    but parse all the same.
    """
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    return field_docstrings_in(source)


def field_docstrings_in(source: str) -> dict[str, str]:
    """The string literal under each annotated field of the first class in ``source``, whitespace collapsed.

    Examples
    --------
    >>> field_docstrings_in("class A:\\n    n: int = 3\\n    'how many,   at most'\\n    seed: int = 0\\n")
    {'n': 'how many, at most'}
    """
    classes = [node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
    if not classes:
        return {}
    docs: dict[str, str] = {}
    statements = classes[0].body
    for prev, stmt in zip(statements, statements[1:], strict=False):
        if (
            isinstance(prev, ast.AnnAssign)
            and isinstance(prev.target, ast.Name)
            and isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            docs[prev.target.id] = " ".join(stmt.value.value.split())
    return docs


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name!r} has no default: every command-line option needs one")


def _type_hints(cls: type) -> dict[str, Any]:
    # Annotations are strings under `from __future__ import annotations`; resolving them needs the
    # defining module in sys.modules. Where that fails, each field falls back to its default's type.
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, KeyError):
        return {}


def _unwrap_optional(kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else kind
    return kind


def _tuple_item_type(kind: Any) -> type | None:
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if args and isinstance(args[0], type):
            return args[0]
    return None


def _comma_list(item: type) -> Callable[[str], tuple]:
    def convert(token: str) -> tuple:
        return tuple(item(v) for v in token.split(",") if v)

    convert.__name__ = item.__name__  # argparse names the type in its error message
    return convert
