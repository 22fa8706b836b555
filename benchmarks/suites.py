"""Benchmark suites as data: which tasks, agents, baselines, seeds, budget and search space.

A suite is a TOML file (the shipped ones live in ``benchmarks/suites/``) parsed into a frozen
:class:`Suite`. Names resolve to shipped files; anything else is read as a path.

``agents`` are the tuners of SAM's AMG (registered agents: nsga2, random, grid, optuna, ...);
``baselines`` are what a microscopist would do instead, run beside them with the same images,
rewards, budget and seeds (:mod:`samstar_env.benchmarks.baselines`): ``watershed`` (a classical
pipeline tuned by NSGA-II on the task's rewards) and ``gt-grid`` (micro-sam's threshold grid on SAM
with the operating point chosen by GROUND TRUTH on the tune images: an oracle, its records say
``"uses_labels": true``). Either list may name either kind; ``runs()`` covers agents then baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from samstar_env import _toml as tomllib
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError, MissingFileError
from samstar_env.params import DEFAULT_DIMENSIONS, TILING_DIMENSIONS, Dimension, ParamSpace

_FIELDS = {
    "name", "version", "description", "tasks", "agents", "seeds", "budget", "image_size", "n_images",
    "n_test_images", "model", "space", "grids", "agent_options", "tile_shape", "halo", "baselines",
}


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: task x agent x seed runs with one budget.

    Parameters
    ----------
    name : str
        Suite name (used in result folders).
    version : int
        Bumped whenever a field that changes results changes.
    tasks, agents : tuple of str
        Registered task and agent names (baseline names are accepted in ``agents`` too).
    seeds : tuple of int
        Named seeds; each (task, agent, seed) is one run.
    budget : int
        Evaluations per run.
    image_size : (int, int)
        Synthetic image size.
    n_images, n_test_images : int
        Tune images averaged per evaluation; held-out test images scored at the end.
    model : str
        Model name or checkpoint path.
    space : str or tuple of str
        ``"default"`` or the names of the tuned dimensions.
    grids : mapping of str to tuple
        Replacement choices for grid dimensions of the space, e.g. ``{"points_per_side": (8, 16)}``:
        every new point grid or crop layout costs a full decode, so CPU suites keep these small.
    agent_options : mapping
        Per-agent keyword arguments, e.g. ``{"nsga2": {"pop_size": 20}}``.
    tile_shape, halo : int, optional
        Tiles of the images (:mod:`samstar_env.engine.tiles`): 0 never tiles; None (the default)
        tiles images larger than twice the model's input automatically. ``space`` may also name the
        ``tile_shape`` and ``halo`` dimensions to tune them.
    baselines : tuple of str
        Baselines run after the agents (:data:`~samstar_env.benchmarks.baselines.BASELINES`:
        ``watershed``, ``gt-grid``), each for every task and seed. Kept apart from ``agents`` so a
        suite's list of tuners reads as such; ``samstar bench --agents`` replaces both lists.
        ``agent_options["watershed"]`` updates the NSGA-II options it shares with ``nsga2``;
        ``agent_options["gt-grid"]`` may set only ``batch_size``, ``iou_range`` and ``stability_range``.
    """

    name: str
    tasks: tuple[str, ...]
    agents: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: int
    version: int = 1
    description: str = ""
    image_size: tuple[int, int] = (512, 512)
    n_images: int = 1
    n_test_images: int = 4
    model: str = DEFAULT_MODEL
    space: str | tuple[str, ...] = "default"
    grids: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    agent_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    tile_shape: int | None = None
    halo: int | None = None
    baselines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise InputError(f"suite {self.name!r}: budget must be >= 1, got {self.budget}")
        if not self.tasks or not self.agents or not self.seeds:
            raise InputError(f"suite {self.name!r}: tasks, agents and seeds must be non-empty")
        from samstar_env.benchmarks.baselines import check_agent_names

        # Caught here, when a suite file is read or --agents given, not hours into a suite.
        check_agent_names((*self.agents, *self.baselines), source=f"suite {self.name!r}: agents and baselines")
        twice = sorted({a for a in (*self.agents, *self.baselines) if (*self.agents, *self.baselines).count(a) > 1})
        if twice:
            raise InputError(f"suite {self.name!r}: {twice} listed more than once in agents and baselines; expected each name once")

    def param_space(self) -> ParamSpace:
        """The suite's search space."""
        dims: tuple[Dimension, ...] = DEFAULT_DIMENSIONS
        if self.space != "default":
            by_name = {d.name: d for d in (*DEFAULT_DIMENSIONS, *TILING_DIMENSIONS)}
            unknown = [n for n in self.space if n not in by_name]
            if unknown:
                raise InputError(f"suite {self.name!r}: unknown space dimension(s) {unknown}; expected some of {list(by_name)}")
            dims = tuple(by_name[n] for n in self.space)
        unknown = sorted(set(self.grids) - {d.name for d in dims if d.kind == "grid"})
        if unknown:
            raise InputError(f"suite {self.name!r}: grids given for {unknown}, which are not grid dimensions of its space")
        dims = tuple(Dimension(d.name, "grid", choices=tuple(self.grids[d.name])) if d.name in self.grids else d for d in dims)
        return ParamSpace(dimensions=dims)

    def runs(self) -> list[tuple[str, str, int]]:
        """Every (task, agent or baseline, seed), in a fixed order (agents first, then baselines)."""
        return [(t, a, s) for t in self.tasks for a in (*self.agents, *self.baselines) for s in self.seeds]

    def override(self, **changes: Any) -> Suite:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name, "version": self.version, "description": self.description,
            "tasks": list(self.tasks), "agents": list(self.agents), "seeds": list(self.seeds),
            "budget": self.budget, "image_size": list(self.image_size), "n_images": self.n_images,
            "n_test_images": self.n_test_images, "model": self.model,
            "space": self.space if isinstance(self.space, str) else list(self.space),
            "grids": {k: list(v) for k, v in sorted(self.grids.items())}, "agent_options": self.agent_options,
            # Written only when set, so suites without tiles keep the form (and hashes) of earlier results.
            **{k: getattr(self, k) for k in ("tile_shape", "halo") if getattr(self, k) is not None},
            # Likewise only when there are some: records of suites without baselines stay valid.
            **({"baselines": list(self.baselines)} if self.baselines else {}),
        }


def suite_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Suite:
    """Build a :class:`Suite` from a parsed TOML/JSON mapping; unknown keys are errors."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InputError(f"{source}: unknown suite key(s) {unknown}; expected some of {sorted(_FIELDS)}")
    missing = [k for k in ("name", "tasks", "agents", "seeds", "budget") if k not in data]
    if missing:
        raise InputError(f"{source}: missing suite key(s) {missing}")
    d = dict(data)
    if "grids" in d:
        d["grids"] = {k: tuple(v) for k, v in dict(d["grids"]).items()}
    for key in ("tasks", "agents", "seeds", "baselines"):
        if key in d:
            d[key] = tuple(d[key])
    if "image_size" in d:
        d["image_size"] = tuple(int(v) for v in d["image_size"])
    if isinstance(d.get("space"), list):
        d["space"] = tuple(d["space"])
    return Suite(**d)


def builtin_suites() -> list[str]:
    """Names of the shipped suites."""
    folder = resources.files("samstar_env.benchmarks") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``default``, ``quick``) or a suite TOML file by path."""
    text: str
    source = str(name_or_path)
    if str(name_or_path) in builtin_suites():
        text = (resources.files("samstar_env.benchmarks") / "suites" / f"{name_or_path}.toml").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise MissingFileError(f"suite {source!r} is neither a shipped suite {builtin_suites()} nor a TOML file")
        text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: invalid TOML ({exc})") from exc
    return suite_from_dict(data, source=source)
