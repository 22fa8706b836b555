"""Collect the docstring examples of the installed package, each module under its installed name.

``python -m pytest`` (pyproject's ``testpaths``) runs the examples in ``samstar_env/``, ``agents/``,
``rewards/`` and ``benchmarks/``. pyproject's ``[tool.setuptools] package-dir`` installs the last three
as ``samstar_env.agents``, ``samstar_env.rewards`` and ``samstar_env.benchmarks``; pytest's own
``--doctest-modules`` would import ``agents/base.py`` as ``agents.base``, a second copy of the module
that registers every agent again. This hook collects the same doctests (pytest's ``DoctestModule``)
from the module the package itself imports. ``benchmarks/scripts/`` holds scripts, not modules: never
imported here.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.doctest import DoctestModule

# As in tests/conftest.py: examples never read or fill the user's decode cache.
os.environ["SAMSTAR_CACHE"] = "off"

ROOT = Path(__file__).resolve().parent

# Source folder -> installed package name (pyproject [tool.setuptools] package-dir).
INSTALLED_AS = {
    "samstar_env": "samstar_env",
    "agents": "samstar_env.agents",
    "rewards": "samstar_env.rewards",
    "benchmarks": "samstar_env.benchmarks",
}

# Not modules of the package: run as scripts (`python benchmarks/scripts/NAME.py`), never imported.
NOT_INSTALLED = (ROOT / "benchmarks" / "scripts",)


def installed_module_name(path: Path) -> str | None:
    """The dotted name ``path`` is installed under, or ``None`` when it is not part of the package."""
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.suffix != ".py" or not rel.parts or rel.parts[0] not in INSTALLED_AS:
        return None
    if any(path.resolve().is_relative_to(p) for p in NOT_INSTALLED):
        return None
    parts = [INSTALLED_AS[rel.parts[0]], *rel.parts[1:-1]]
    if rel.stem != "__init__":
        parts.append(rel.stem)
    return ".".join(parts)


class InstalledDoctestModule(DoctestModule):
    """pytest's doctest collector, importing the module by its installed name instead of its path."""

    def _getobj(self) -> ModuleType:
        name = installed_module_name(self.path)
        assert name is not None, self.path
        return importlib.import_module(name)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if installed_module_name(file_path) is None:
        return None
    return InstalledDoctestModule.from_parent(parent, path=file_path)
