"""The one CLI-from-dataclass helper of the measurement scripts, and the scripts' shape.

Every script in ``benchmarks/scripts/`` reads its options from an ``Args`` dataclass through
``script_args.parse_dataclass_args``, runs nothing on import, and is not part of the installed package.
"""

from __future__ import annotations

import doctest
import sys
from dataclasses import dataclass, field

import pytest

from samstar_env import _toml
from tests.script_helpers import SCRIPTS_DIR, load_script

SCRIPTS = sorted(p.stem for p in SCRIPTS_DIR.glob("*.py") if p.stem != "script_args")


@dataclass(frozen=True)
class Demo:
    quick: bool = False
    """a small run"""
    cache: bool = True
    """reuse the cache (100% of the time)"""
    sizes: tuple[int, ...] = (512, 1024)
    """image sides in pixels"""
    thresholds: tuple[float, ...] = ()
    """cut-offs"""
    out: str | None = None
    """where the JSON goes"""
    seed: int = 0
    names: list[str] = field(default_factory=lambda: ["a"])


@pytest.fixture(scope="module")
def script_args():
    return load_script("script_args")


def test_defaults_when_no_arguments(script_args) -> None:
    ns = script_args.parse_dataclass_args(Demo, "demo", [])
    assert Demo(**ns) == Demo()


def test_switches_lists_and_optional_values(script_args) -> None:
    argv = [
        "--quick",
        "--no-cache",
        "--sizes",
        "64",
        "128,256",
        "--thresholds",
        "0.5,0.7",
        "--out",
        "x.json",
        "--seed",
        "3",
    ]
    ns = script_args.parse_dataclass_args(Demo, "demo", argv)
    assert ns == {
        "quick": True,
        "cache": False,
        "sizes": (64, 128, 256),
        "thresholds": (0.5, 0.7),
        "out": "x.json",
        "seed": 3,
        "names": ["a"],
    }


def test_field_docstrings_are_the_help_text(script_args, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script_args.parse_dataclass_args(Demo, "demo help", ["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "demo help",
        "a small run",
        "reuse the cache (100% of the time)",
        "image sides in pixels",
        "where the JSON goes",
    ):
        assert text in out


def test_a_bad_value_is_a_usage_error(script_args, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script_args.parse_dataclass_args(Demo, "demo", ["--sizes", "big"])
    assert exit_info.value.code == 2
    assert "--sizes" in capsys.readouterr().err


def test_a_field_without_default_is_refused(script_args) -> None:
    @dataclass
    class NoDefault:
        n: int

    with pytest.raises(TypeError, match="'n' has no default"):
        script_args.parse_dataclass_args(NoDefault, "demo", [])


def test_doctests_of_the_helper_pass(script_args) -> None:
    result = doctest.testmod(script_args)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_imports_without_running_and_prints_help(name: str, capsys, monkeypatch) -> None:
    # An import that parsed sys.argv would fail on this option instead of defining names.
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--not-an-option"])
    module = load_script(name)
    assert callable(module.main)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_uses_the_one_helper(name: str) -> None:
    source = (SCRIPTS_DIR / f"{name}.py").read_text(encoding="utf-8")
    assert "from script_args import parse_dataclass_args" in source
    assert "add_argument" not in source and "ArgumentParser" not in source


def test_scripts_are_not_installed() -> None:
    assert not (SCRIPTS_DIR / "__init__.py").exists()
    pyproject = _toml.loads((SCRIPTS_DIR.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["setuptools"]["packages"]
    assert not any(p.endswith(".scripts") or "scripts" in p.split(".") for p in packages)
