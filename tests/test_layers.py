"""The import contract of DESIGN.md § Layers: a module imports only from its own layer or below.

An AST walk over every installed module (the packages and folders that pyproject's ``[tool.setuptools]``
installs: ``samstar_env`` plus ``agents/``, ``rewards/`` and ``benchmarks/`` under their installed
names), every ``import`` statement included, even one inside a function or under ``TYPE_CHECKING``:
a lazy import reaches up just the same. Scripts (``benchmarks/scripts/``) are not installed and are not
walked. Imports by string (``importlib.import_module``, Gymnasium entry points) are not seen.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from samstar_env import _toml

ROOT = Path(__file__).resolve().parents[1]
TOP = "samstar_env"

LAYER_NAMES = {
    0: "values and data",
    1: "models and engine",
    2: "judging",
    3: "the problem",
    4: "interfaces",
    5: "applications",
}

# Module prefix -> layer. A prefix covers the module of that name and everything below it
# ("samstar_env.data" covers "samstar_env.data.synthetic.ito"); a prefix ending in "*" covers every
# name that starts with it ("samstar_env.stream*" covers "samstar_env.stream_drift" too). The longest
# matching prefix wins, so a package's CLI can sit above the package. The top-level package
# ``samstar_env`` itself is mapped exactly (see ``TOP_LAYER``), never as a prefix.
LAYERS: dict[str, int] = {
    # 0 values and data: plain values and pure helpers, no model, no reward.
    "samstar_env.params": 0,
    "samstar_env.data": 0,
    "samstar_env.type_aliases": 0,
    "samstar_env.errors": 0,
    "samstar_env._toml": 0,
    "samstar_env.defaults": 0,
    "samstar_env.journal": 0,
    "samstar_env.jsonutil": 0,
    # 1 models and engine
    "samstar_env.models": 1,
    "samstar_env.engine": 1,
    # 2 judging: label-free rewards, ground-truth and multi-objective metrics
    "samstar_env.rewards": 2,
    "samstar_env.metrics": 2,
    # 3 the problem
    "samstar_env.task": 3,
    "samstar_env.task_file": 3,
    "samstar_env.problem": 3,
    # 4 interfaces
    "samstar_env.env": 4,
    "samstar_env.observation": 4,
    "samstar_env.wrappers": 4,
    "samstar_env.registration": 4,
    "samstar_env.agents": 4,
    "samstar_env.policy": 4,
    "samstar_env.policy.pool": 3,
    # 5 applications
    "samstar_env.tune": 5,
    "samstar_env.segmentation": 5,
    "samstar_env.particles": 5,
    "samstar_env.imagej_rois": 5,
    "samstar_env.stream*": 5,
    "samstar_env.cache": 5,
    "samstar_env.report_plots": 5,
    "samstar_env.cli": 5,
    "samstar_env.benchmarks": 5,
    "samstar_env.models.training.cli": 5,
    "samstar_env.policy.train": 5,
    "samstar_env.policy.cli": 5,
}

# The package's front door: it registers the env ids on import (layer 4) and re-exports names of
# every layer lazily, so only applications may import it by its bare name.
TOP_LAYER = 5


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name, or ``None`` when no prefix of ``LAYERS`` covers it."""
    if module == TOP:
        return TOP_LAYER
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for prefix, layer in LAYERS.items():
        if prefix.endswith("*"):
            hit = module.startswith(prefix[:-1])
        else:
            hit = module == prefix or module.startswith(prefix + ".")
        if hit and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Module:
    """One installed module: its dotted name, its file and whether it is a package ``__init__``."""

    name: str
    path: Path
    is_package: bool


def _setuptools_config() -> tuple[list[str], dict[str, str]]:
    tool = _toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return list(tool["packages"]), dict(tool.get("package-dir", {}))


def _package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The folder setuptools installs ``package`` from (the longest mapped parent, then the rest)."""
    parts = package.split(".")
    for k in range(len(parts), 0, -1):
        head = ".".join(parts[:k])
        if head in package_dir:
            return ROOT / package_dir[head] / Path(*parts[k:])
    return ROOT / Path(*parts)


def installed_modules() -> list[Module]:
    """Every module setuptools installs: the ``.py`` files directly in each listed package's folder."""
    packages, package_dir = _setuptools_config()
    out = []
    for package in packages:
        for path in sorted(_package_folder(package, package_dir).glob("*.py")):
            is_package = path.stem == "__init__"
            out.append(Module(package if is_package else f"{package}.{path.stem}", path, is_package))
    return out


def _imported(module: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The first-party modules one import statement names (``from pkg import sub`` names ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == TOP or a.name.startswith(TOP + ".")]
    if node.level:
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not (base == TOP or base.startswith(TOP + ".")):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


@dataclass(frozen=True)
class Edge:
    """One import statement from a module to a first-party module."""

    source: Module
    line: int
    target: str
    type_checking: bool  # under ``if TYPE_CHECKING:``: never run, still a dependency of the module


def _type_checking_imports(tree: ast.Module) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            out.update(
                n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))
            )
    return out


def import_edges(modules: list[Module]) -> list[Edge]:
    """Every first-party import in ``modules``, at any depth (functions, ``if TYPE_CHECKING``, ...)."""
    known = {m.name for m in modules}
    edges = []
    for m in modules:
        tree = ast.parse(m.path.read_text(encoding="utf-8"), filename=str(m.path))
        typing_only = _type_checking_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.extend(Edge(m, node.lineno, t, node in typing_only) for t in _imported(m, node, known))
    return edges


MODULES = installed_modules()


def _where(m: Module, line: int | None = None) -> str:
    rel = m.path.relative_to(ROOT).as_posix()
    return rel if line is None else f"{rel}:{line}"


def test_the_walk_sees_every_layer():
    # Guards against a vacuous pass: a broken walk would find no module and no edge.
    names = {m.name for m in MODULES}
    assert {"samstar_env.params", "samstar_env.metrics.multiobjective", "samstar_env.agents.result",
            "samstar_env.rewards.geometry", "samstar_env.benchmarks.runner"} <= names  # fmt: skip
    assert not any(n.startswith("samstar_env.benchmarks.scripts") for n in names)  # scripts: not installed
    assert len(import_edges(MODULES)) > 100


def test_every_module_has_a_layer():
    unmapped = [f"{_where(m)} ({m.name})" for m in MODULES if layer_of(m.name) is None]
    assert not unmapped, (
        "modules without a layer; add their prefix to LAYERS in tests/test_layers.py "
        "(see DESIGN.md § Layers):\n  " + "\n  ".join(unmapped)
    )


def test_every_package_folder_is_installed():
    # A folder with an __init__.py under an installed package but missing from pyproject's
    # `packages` would be importable in an editable install and absent from a wheel.
    packages, package_dir = _setuptools_config()
    folders = {_package_folder(p, package_dir).resolve() for p in packages}
    missing = sorted(
        init.parent.relative_to(ROOT).as_posix()
        for folder in list(folders)
        for init in folder.rglob("__init__.py")
        if init.parent.resolve() not in folders
    )
    assert not missing, f"package folders missing from pyproject's [tool.setuptools] packages: {missing}"


def test_no_module_imports_a_higher_layer():
    bad = []
    for e in import_edges(MODULES):
        src, dst = layer_of(e.source.name), layer_of(e.target)
        if src is not None and dst is not None and dst > src:
            bad.append(
                f"{_where(e.source, e.line)}: {e.source.name} (layer {src}, {LAYER_NAMES[src]}) imports "
                f"{e.target} (layer {dst}, {LAYER_NAMES[dst]})"
                + (" under TYPE_CHECKING" if e.type_checking else "")
            )
    assert not bad, "imports that reach up a layer (DESIGN.md § Layers):\n  " + "\n  ".join(bad)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("samstar_env.data.synthetic.ito", 0),
        ("samstar_env.jsonutil", 0),
        ("samstar_env.models.training.loop", 1),
        ("samstar_env.models.training.cli", 5),
        ("samstar_env.metrics.multiobjective", 2),
        ("samstar_env.task", 3),
        ("samstar_env.task_file", 3),
        ("samstar_env.agents.nsga2", 4),
        ("samstar_env.benchmarks.baselines", 5),
        ("samstar_env.benchmarks.watershed", 5),
        ("samstar_env.stream", 5),
        ("samstar_env.stream.drift", 5),
        ("samstar_env.stream_watch", 5),
        ("samstar_env", TOP_LAYER),
        ("samstar_env.somethingnew", None),
        ("samstar_env.tasks", None),  # a prefix covers a name, not a longer word
    ],
)
def test_layer_rule(module: str, layer: int | None):
    assert layer_of(module) == layer
