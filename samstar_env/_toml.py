"""TOML reading on every supported Python (tomllib from 3.11, the tomli backport before).

The one place that picks the TOML reader: task files and benchmark suites both read through it.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

load = tomllib.load
loads = tomllib.loads
TOMLDecodeError = tomllib.TOMLDecodeError

__all__ = ["TOMLDecodeError", "load", "loads"]
