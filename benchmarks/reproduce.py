"""``samstar reproduce``: the three SAM* experiments (arXiv 2509.07047) on samstar's synthetic tasks.

The experiments, and what samstar measures for each:

- **(a) perovskite**: SAM's default AMG parameters, the model's recommended operating point
  ("vanilla", from the model registry: :func:`~samstar_env.models.registry.recommended_params`;
  SAM's defaults again for a SAM checkpoint) and NSGA-II-tuned ones (the task's reward preset):
  masks per image and occluded-particle recall. Paper: 349 -> 415 masks.
- **(b) ITO**: the same three points; the ground-truth over-segmentation rate (fraction of particles
  split into two or more masks) and its change. Paper: -70 %.
- **(c) AuCo**: NSGA-II on exactly two rewards, ``small_particle_detection`` and
  ``aggregate_coverage`` (the preset's versions, triangle foreground); the Pareto front, the
  Spearman correlation of the two rewards over it, and the masks per image of three operating
  points. Paper: 117 / 22 / 11 masks.

Choices where the paper leaves room (all recorded in the JSON):

- "tuned" is the front member picked by ``--rule`` (default
  :data:`~samstar_env.agents.operating_points.DEFAULT_RULE`, the rule that came nearest the
  ground-truth oracle on held-out images, as for ``samstar tune`` and ``samstar bench``); the
  changes in (a) and (b) are from the vanilla point (the model's own baseline: samstar-tiny keeps no
  mask at SAM's defaults) and, on a second row, from SAM's defaults; a change from a baseline whose
  mean is 0 is given as an absolute change;
- the three AuCo points are the front's two extremes and its knee: the front member best in
  small-particle detection (the paper's 117-mask point, dense and lenient), the knee (22) and the
  member best in aggregate coverage (11); ties go to the larger sum of the other reward
  (:meth:`~samstar_env.agents.TuningResult.by_priority`);
- tuning sees only the task's ``tune`` images, once per seed (``--seeds``); every figure in the
  table is measured on its held-out ``test`` images and printed as mean ± standard error: over
  (seed, test image) pairs for tuned points, over test images for the two fixed points, and over
  the paired (seed, image) differences for changes.

The table itself (statistics, points, rows and verdicts) is built in
:mod:`samstar_env.benchmarks.reproduce_table`. Each table row says whether samstar agrees with the paper (within 25 % for counts and changes; the
sign only for "same direction") and, where it does not, why. Output folder (``--out``):
``reproduce.json`` (schema :data:`SCHEMA`, below), ``runs/<exp>_<task>_s<seed>.json`` (every
NSGA-II evaluation, a :class:`~samstar_env.agents.TuningResult`), and the figures
``perovskite_default_vs_tuned.png``, ``ito_default_vs_tuned.png`` (SAM defaults | vanilla | tuned,
first seed), ``auco_pareto_front.png`` and ``auco_operating_points.png`` (first seed).

``reproduce.json``: ``schema``, ``paper`` (the figures compared against), ``config``,
``measured_on``, ``experiments`` (per letter: ``task``, ``reward_names``, ``rule``, ``points`` (the
fixed points ``sam_defaults`` and ``vanilla``, :meth:`Point.to_dict`, with ground truth per test
image), ``seeds`` (per seed: ``n_evaluations``, ``front_size``, ``points``; for AuCo also ``front``,
``distinct_points`` and ``front_spearman``), ``summary`` (label -> metric -> :meth:`Stat.to_dict`),
``wall_s``), ``rows`` (the table: :meth:`Row.to_dict`, with the numbers behind each entry in
``stat``), ``causes`` (the general reasons the rows name, :func:`general_causes`), ``figures``
(file names in ``--out``), ``versions`` and ``wall_s``. The same seeds give the same file except
the ``wall_s`` values.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.agents.operating_points import DEFAULT_RULE
from samstar_env.benchmarks.reproduce_table import (
    AUCO_POINTS,
    PAPER,
    SUMMARY_KEYS,
    Point,
    Row,
    Stat,
    rows_a,
    rows_b,
    rows_c,
    samples,
)
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError
from samstar_env.params import AmgParams, ParamSpace

# samstar tune's defaults and --space syntax, so that the two commands tune alike.
from samstar_env.tune import DEFAULT_AGENT_OPTIONS, DEFAULT_SIZE, DEFAULT_SPACE, parse_space

SCHEMA = "samstar-reproduce/2"

#: Experiment letter -> task, in the paper's order.
EXPERIMENTS: dict[str, str] = {"a": "perovskite", "b": "ito", "c": "auco"}

#: The two antagonistic AuCo rewards of experiment (c), in objective order.
AUCO_OBJECTIVES = ("small_particle_detection", "aggregate_coverage")


# The SAM* group's NSGA-II population (see agents/nsga2.py); quoted when the budget is smaller.
PAPER_POP_SIZE = 100

# Every table entry is a mean ± SE over at least 8 test images and 3 seeds (issue 17).
DEFAULT_TEST_IMAGES = 8
DEFAULT_SEEDS = (0, 1, 2)
# Tune images per experiment: one for (a) and (b), the paper's single-image session; four for (c),
# whose averaged rewards give a front of many distinct members (one image gave two reward vectors,
# so its three operating points could not differ). 120 evaluations are 10 generations of the
# default population.
DEFAULT_IMAGES: dict[str, int] = {"a": 1, "b": 1, "c": 4}
DEFAULT_REPRODUCE_BUDGET = 120


@dataclass(frozen=True)
class ReproduceConfig:
    """Everything ``samstar reproduce`` needs (the CLI fills it).

    Parameters
    ----------
    out : Path
        Output folder (created; files in it are overwritten).
    model : str, Path or torch.nn.Module
        Model name or checkpoint path (default samstar-tiny), or an in-memory SAM.
    budget : int
        Evaluations per NSGA-II run (one run per experiment and seed).
    pop_size : int
        NSGA-II population; ``budget`` must hold at least one population.
    seeds : tuple of int
        One NSGA-II run per seed and experiment; tuned points are averaged over them.
    images : int, optional
        ``tune`` images averaged per evaluation (default :data:`DEFAULT_IMAGES`: 1 for (a) and
        (b), 4 for (c)).
    test_images : int
        Held-out ``test`` images every reported figure is measured on.
    size : int
        Side of the synthetic images in pixels.
    space : tuple of str
        Tuned parameters (empty: the whole default space); the rest stay at SAM's defaults.
    only : tuple of str
        Experiments to run: letters ``a``, ``b``, ``c`` or their task names (normalized to letters,
        in the paper's order).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    rule : str
        Operating-point rule of the "tuned" point in (a) and (b)
        (:func:`~samstar_env.agents.operating_points.choose`).
    """

    out: Path
    model: str | Path | Any = DEFAULT_MODEL
    budget: int = DEFAULT_REPRODUCE_BUDGET
    pop_size: int = DEFAULT_AGENT_OPTIONS["nsga2"]["pop_size"]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    images: int | None = None
    test_images: int = DEFAULT_TEST_IMAGES
    size: int = DEFAULT_SIZE
    space: tuple[str, ...] = DEFAULT_SPACE
    only: tuple[str, ...] = tuple(EXPERIMENTS)
    device: str = "auto"
    rule: str = DEFAULT_RULE

    def __post_init__(self) -> None:
        # Checked before any model is loaded, so bad input fails in a second, not after a run.
        object.__setattr__(self, "only", experiment_ids(self.only))
        object.__setattr__(self, "space", tuple(self.space))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"--seeds must name one or more distinct seeds, got {list(self.seeds)}")
        from samstar_env.agents.operating_points import RULES

        if self.rule not in RULES:
            raise InputError(f"--rule {self.rule!r} is not an operating-point rule; expected one of {', '.join(RULES)}")
        if self.pop_size < 2:
            raise InputError(f"--pop-size must be >= 2, got {self.pop_size}")
        if self.budget < self.pop_size:
            raise InputError(
                f"--budget {self.budget} is smaller than the NSGA-II population {self.pop_size}: "
                "a run needs at least one full population (lower --pop-size or raise --budget)"
            )
        from samstar_env.data.synthetic import split_seeds

        # The splits have the same seeds for every task, so one task's sizes are every task's.
        for flag, n, split in (("--images", self.images_for("c"), "tune"), ("--test-images", self.test_images, "test")):
            n_max = len(split_seeds("perovskite", split))
            if not 1 <= n <= n_max:
                raise InputError(f"{flag} must be between 1 and {n_max} (the task's {split!r} split), got {n}")
        if self.size < 32:
            raise InputError(f"--size must be >= 32 px, got {self.size}")
        self.param_space()  # unknown dimension names raise here

    def images_for(self, letter: str) -> int:
        """Tune images of experiment ``letter`` (``images``, else :data:`DEFAULT_IMAGES`)."""
        return DEFAULT_IMAGES[letter] if self.images is None else int(self.images)

    def param_space(self) -> ParamSpace:
        """The tuned space; untuned parameters at SAM's defaults."""
        if not self.space:
            return ParamSpace.default()
        return ParamSpace.subset(list(self.space), base=AmgParams())

    def model_label(self) -> str:
        """The model as written in the JSON (names and paths as given)."""
        if isinstance(self.model, (str, Path)):
            return str(self.model)
        from samstar_env.models import model_fingerprint

        return f"in-memory model {model_fingerprint(self.model)[:12]}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without ``out``, so two output folders compare equal)."""
        return {
            "model": self.model_label(), "budget": self.budget, "pop_size": self.pop_size, "seeds": list(self.seeds),
            "images": {k: self.images_for(k) for k in self.only}, "test_images": self.test_images, "size": self.size,
            "space": list(self.param_space().names), "only": list(self.only), "device": self.device, "rule": self.rule,
        }


def experiment_ids(names: Iterable[str] | str) -> tuple[str, ...]:
    """Normalize experiment names (``"a,c"``, ``["perovskite", "c"]``) to letters in the paper's order."""
    items = names.split(",") if isinstance(names, str) else list(names)
    by_task = {t: k for k, t in EXPERIMENTS.items()}
    picked = set()
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        if name not in EXPERIMENTS and name not in by_task:
            valid = ", ".join(f"{k} ({t})" for k, t in EXPERIMENTS.items())
            raise InputError(f"unknown experiment {raw!r}; expected some of {valid}")
        picked.add(by_task.get(name, name))
    if not picked:
        raise InputError("no experiment selected; expected some of a, b, c")
    return tuple(k for k in EXPERIMENTS if k in picked)


@dataclass(frozen=True)
class ReproduceReport:
    """What ``samstar reproduce`` found (written to ``reproduce.json``; :meth:`format_table` prints it)."""

    config: ReproduceConfig
    rows: tuple[Row, ...]
    causes: Mapping[str, str]
    experiments: Mapping[str, Any]
    figures: Mapping[str, str]
    wall_s: float = 0.0
    versions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (schema :data:`SCHEMA`)."""
        return {
            "schema": SCHEMA,
            "paper": dict(PAPER),
            "config": self.config.to_dict(),
            "measured_on": _measured_on(self.config),
            "experiments": dict(self.experiments),
            "rows": [r.to_dict() for r in self.rows],
            "causes": dict(self.causes),
            "figures": dict(self.figures),
            "versions": dict(self.versions),
            "wall_s": self.wall_s,
        }

    def format_table(self) -> str:
        """The plain-text table: one line per row, its reason below wherever it does not agree, then
        the general causes the rows name."""
        cfg = self.config
        head = ("exp", "quantity", "paper", "samstar (mean ± SE)", "verdict")
        cells = [(f"({r.experiment})", r.quantity, r.paper, r.samstar, r.verdict) for r in self.rows]
        width = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
        line = lambda c: "  ".join(s.ljust(w) for s, w in zip(c, width, strict=True)).rstrip()  # noqa: E731
        out = [
            "SAM* (arXiv 2509.07047) vs samstar",
            f"model {cfg.model_label()}; NSGA-II {cfg.budget} evaluations (population {cfg.pop_size}), "
            f"seeds {', '.join(map(str, cfg.seeds))}; tuned: {', '.join(cfg.param_space().names)}; "
            f"tuned point by the {cfg.rule!r} rule",
            _measured_on(cfg),
            "",
            line(head),
            line(tuple("-" * w for w in width)),
        ]
        for r, c in zip(self.rows, cells, strict=True):
            out.append(line(c))
            keys = ", ".join(r.causes) + " (see below)" if r.causes else ""
            why = "; also ".join(s for s in (r.why, keys) if s)
            if why:
                out.extend(textwrap.wrap(f"why: {why}", width=110, initial_indent="     ", subsequent_indent="          "))
        if self.causes:
            out += ["", "Where samstar differs from the paper in general (the rows above name these):"]
            key_w = max(map(len, self.causes))
            for k, text in self.causes.items():
                out.extend(textwrap.wrap(text + ".", width=110, initial_indent=f"  {k.ljust(key_w)}  ", subsequent_indent=" " * (key_w + 4)))
        return "\n".join(out)


def _measured_on(cfg: ReproduceConfig) -> str:
    tune = ", ".join(f"({k}) {cfg.images_for(k)}" for k in cfg.only)
    return (
        f"NSGA-II tunes on 'tune' images ({tune}), once per seed; every samstar number is a mean ± "
        f"standard error over {cfg.test_images} held-out 'test' image(s) per task x {len(cfg.seeds)} seed(s) for "
        f"tuned points, over the test images for the fixed ones ({cfg.size}x{cfg.size} px)."
    )


# -- running one experiment --------------------------------------------------------------------
def _point(problem: Any, label: str, rule: str, params: AmgParams, *, seed: int | None = None, trial: Any = None) -> Point:
    from samstar_env.problem import TuningProblem

    if trial is None:
        ev = problem.evaluate(params)
        tune_rewards, tune_masks = ev.rewards, ev.n_masks
    else:
        tune_rewards, tune_masks = trial.rewards, trial.n_masks
    # Held out: the setting was chosen on the tune images and is judged on test images it never
    # saw, one image at a time so that every image is a sample of the standard error.
    scorer = TuningProblem(problem.task, gt_metrics=True, engine=problem.engine)
    per_image = [scorer.evaluate(params, images=(im,)) for im in problem.task.test_images]
    return Point(
        label=label, rule=rule, params=params, seed=seed, trial_index=None if trial is None else int(trial.index),
        tune_rewards=dict(zip(problem.reward_names, map(float, tune_rewards), strict=True)),
        tune_n_masks=tuple(int(n) for n in tune_masks),
        test_n_masks=tuple(int(ev.n_masks[0]) for ev in per_image),
        test_gt=tuple(dict(ev.gt or {}) for ev in per_image),
    )


def _overlays(problem: Any, points: Sequence[Point], path: Path) -> Path:
    """The points' masks side by side on the first test image."""
    from samstar_env.report_plots import overlay, save_png

    im = problem.task.test_images[0]
    masks = [problem.engine.generate(im, p.params) for p in points]  # cached: no new decode
    panels = [overlay(im.image, m.to_label_image()) for m in masks]
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    rgb = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)
    title = " | ".join(f"{p.label}: {len(m)} masks" for p, m in zip(points, masks, strict=True))
    return save_png(rgb, path, title=title)


def _front_spearman(result: Any) -> float | None:
    """Spearman's rho between the two rewards over the distinct members of a two-reward front."""
    from scipy.stats import spearmanr

    r = np.unique(result.rewards[result.front_indices].astype(np.float64), axis=0)
    if len(r) < 3:
        return None
    rho = spearmanr(r[:, 0], r[:, 1]).statistic
    return float(rho) if np.isfinite(rho) else None


def _experiment(letter: str, cfg: ReproduceConfig, out: Path, evaluator: Any) -> tuple[dict[str, Any], dict[str, list[Point]], Any, dict[str, str]]:
    """Tune one task once per seed and score its points; returns (JSON part, label -> points, problem, figures)."""
    from samstar_env.agents import make_agent
    from samstar_env.agents.operating_points import choose
    from samstar_env.models.registry import recommended_params
    from samstar_env.problem import TuningProblem
    from samstar_env.rewards import RewardSuite, preset
    from samstar_env.task import make_task

    name = EXPERIMENTS[letter]
    rewards = None
    if letter == "c":
        # Exactly the two antagonistic rewards, with the preset's options (triangle foreground).
        full = preset("auco")
        rewards = RewardSuite([(n, full.functions[full.names.index(n)]) for n in AUCO_OBJECTIVES])
    task = make_task(
        name, n_images=cfg.images_for(letter), n_test_images=cfg.test_images, size=(cfg.size, cfg.size),
        model=cfg.model, space=cfg.param_space(), rewards=rewards,
    )
    t0 = time.perf_counter()
    problem = TuningProblem(task, device=cfg.device)
    vanilla_params, vanilla_source = recommended_params(cfg.model)
    points: dict[str, list[Point]] = {
        "sam_defaults": [_point(problem, "sam_defaults", "SAM defaults", AmgParams())],
        "vanilla": [_point(problem, "vanilla", vanilla_source, vanilla_params)],
    }
    (out / "runs").mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    first: dict[str, Point] = {}
    for seed in cfg.seeds:
        result = make_agent("nsga2", pop_size=cfg.pop_size).run(problem, budget=cfg.budget, seed=seed, evaluator=evaluator)
        result.to_json(out / "runs" / f"{letter}_{name}_s{seed}.json")
        if letter == "c":
            # The front's two extremes and its knee, in the paper's order (117 / 22 / 11 masks).
            picks = [("small_particles", result.by_priority(AUCO_OBJECTIVES[0])), ("knee", result.knee()),
                     ("aggregates", result.by_priority(AUCO_OBJECTIVES[1]))]
        else:
            picks = [("tuned", choose(result, cfg.rule, problem=problem))]
        run: dict[str, Any] = {"n_evaluations": len(result.trials), "front_size": len(result.front), "points": {}}
        for label, op in picks:
            pt = _point(problem, label, op.rule, op.trial.params, seed=seed, trial=op.trial)
            points.setdefault(label, []).append(pt)
            run["points"][label] = pt.to_dict()
            first.setdefault(label, pt)
        if letter == "c":
            run["front"] = [
                {"trial_index": t.index, "rewards": [float(v) for v in t.rewards], "tune_n_masks": list(t.n_masks)} for t in result.front
            ]
            run["distinct_points"] = len({op.trial.params for _, op in picks})
            run["front_spearman"] = _front_spearman(result)
            if seed == cfg.seeds[0]:
                from samstar_env.report_plots import pareto_plot

                figures = {"auco_pareto_front": pareto_plot(result, out / "auco_pareto_front.png",
                                                            highlight=[(lab, op.trial.index) for lab, op in picks]).name}
        runs[str(seed)] = run
    if letter == "c":
        figures["auco_operating_points"] = _overlays(problem, [first[lab] for lab in AUCO_POINTS], out / "auco_operating_points.png").name
    else:
        key = f"{name}_default_vs_tuned"
        shown = [points["sam_defaults"][0], points["vanilla"][0], first["tuned"]]
        figures = {key: _overlays(problem, shown, out / f"{key}.png").name}
    part: dict[str, Any] = {
        "task": name,
        "reward_names": list(problem.reward_names),
        "rule": "knee and the two extremes" if letter == "c" else cfg.rule,
        "points": {label: points[label][0].to_dict() for label in ("sam_defaults", "vanilla")},
        "seeds": runs,
        "summary": {label: {key: Stat.of(samples(pts, key)).to_dict() for key in SUMMARY_KEYS} for label, pts in points.items()},
    }
    part["wall_s"] = time.perf_counter() - t0
    return part, points, problem, figures


# -- the table ---------------------------------------------------------------------------------
def general_causes(cfg: ReproduceConfig, engine: Any) -> dict[str, str]:
    """The reasons that apply to every row of a run, by key (``images``, ``model``, ``budget``, ``space``).

    ``budget`` is absent when the budget is at least ten of the paper's populations, ``space`` when
    the prompt grid is tuned too.
    """
    model: Any = getattr(engine, "model", None)
    n_params: int = sum(int(p.numel()) for p in model.parameters()) if hasattr(model, "parameters") else 0
    what = " (samstar-tiny, a tiny CPU model trained on synthetic data)" if cfg.model_label() == DEFAULT_MODEL else f" ({cfg.model_label()})"
    out = {
        "images": (
            f"different images: {cfg.test_images} synthetic {cfg.size}x{cfg.size} test image(s) per task here, real "
            "micrographs in the paper; absolute counts scale with the field of view and the number of particles"
        ),
        "model": (f"a {n_params / 1e6:.1f} M-parameter model" if n_params else "another model") + what
        + ", where the paper uses a released SAM (91-636 M parameters)",
    }
    if cfg.budget < 10 * PAPER_POP_SIZE:
        out["budget"] = (
            f"a small budget: {cfg.budget} NSGA-II evaluations, population {cfg.pop_size} "
            f"(the SAM* group's NSGA-II uses population {PAPER_POP_SIZE})"
        )
    names = cfg.param_space().names
    if "points_per_side" not in names:
        out["space"] = f"only {len(names)} filter parameter(s) tuned; the 32x32 prompt grid and crops stay at SAM's defaults"
    return out


def parse_seeds(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"3"`` -> (0, 1, 2); ``"0,4"`` -> (0, 4); a sequence passes through.

    Examples
    --------
    >>> parse_seeds("3"), parse_seeds("1,5")
    ((0, 1, 2), (1, 5))
    """
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        return tuple(int(s) for s in text)
    items = [x.strip() for x in text.split(",") if x.strip()]
    try:
        values = [int(x) for x in items]
    except ValueError:
        raise InputError(f"--seeds must be a count or comma-separated integers, got {text!r}") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise InputError(f"--seeds count must be >= 1, got {values[0]}")
        return tuple(range(values[0]))
    return tuple(values)


# -- the command -------------------------------------------------------------------------------
def reproduce(
    cfg: ReproduceConfig,
    *,
    evaluator: Callable[..., Iterable[Any]] | None = None,
    progress: Callable[[str], None] | None = print,
) -> ReproduceReport:
    """Run the selected experiments, write ``reproduce.json``, the tuning results and the figures.

    Parameters
    ----------
    cfg : ReproduceConfig
        What to run.
    evaluator : callable, optional
        Population evaluator for ``Agent.run`` (e.g. :func:`~samstar_env.benchmarks.executors.dask_evaluator`).
    progress : callable, optional
        Receives one line as each experiment starts and ends.

    Returns
    -------
    ReproduceReport
    """
    from samstar_env.benchmarks.runner import versions, write_json_atomic

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    experiments: dict[str, Any] = {}
    rows: list[Row] = []
    figures: dict[str, str] = {}
    causes: dict[str, str] = {}
    for letter in cfg.only:
        if progress:
            progress(f"({letter}) {EXPERIMENTS[letter]}: NSGA-II, {cfg.budget} evaluations x {len(cfg.seeds)} seed(s) ...")
        part, pts, problem, figs = _experiment(letter, cfg, out, evaluator)
        experiments[letter] = part
        figures.update(figs)
        causes = causes or general_causes(cfg, problem.engine)
        if letter == "a":
            rows += rows_a(pts, causes)
        elif letter == "b":
            rows += rows_b(pts, causes)
        else:
            rows += rows_c(pts, causes, runs=part["seeds"])
        if progress:
            progress(f"({letter}) {EXPERIMENTS[letter]}: done in {part['wall_s']:.1f} s")
    report = ReproduceReport(
        config=cfg, rows=tuple(rows), causes=causes, experiments=experiments, figures=figures,
        wall_s=time.perf_counter() - t0, versions=versions(),
    )
    write_json_atomic(out / "reproduce.json", report.to_dict())
    return report


def _run_cli(args: argparse.Namespace) -> int:
    cfg = ReproduceConfig(
        out=Path(args.out), model=args.model or DEFAULT_MODEL, budget=args.budget, pop_size=args.pop_size, seeds=parse_seeds(args.seeds),
        images=args.images, test_images=args.test_images, size=args.size, space=parse_space(args.space),
        only=experiment_ids(args.only), device=args.device, rule=args.rule,
    )
    evaluator, dask = None, None
    if args.executor == "dask-evaluations":
        from samstar_env.benchmarks.executors import DaskExecutor, dask_evaluator

        dask = DaskExecutor(scheduler=args.scheduler, n_workers=args.workers)
        evaluator = dask_evaluator(dask.client)
    try:
        report = reproduce(cfg, evaluator=evaluator, progress=None if args.quiet else print)
    finally:
        if dask is not None:
            dask.close()
    print(report.format_table())
    print(f"\nresults: {cfg.out}/reproduce.json (schema {SCHEMA}); figures: " + ", ".join(f"{cfg.out}/{f}" for f in report.figures.values()))
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar reproduce``."""
    p = subparsers.add_parser(
        "reproduce",
        help="the SAM* paper's three experiments on the synthetic tasks: a table 'paper vs samstar' and figures",
        description=(
            "Run SAM*'s three experiments (arXiv 2509.07047) on samstar's synthetic tasks: (a) perovskite, SAM's defaults and "
            "the model's recommended (vanilla) point vs NSGA-II-tuned: masks and occluded-particle recall; (b) ITO, "
            "over-segmentation at the same three points; (c) AuCo, the Pareto front of "
            "small-particle detection vs aggregate coverage and three operating points. Tunes on 'tune' images, "
            f"measures on held-out 'test' images. Defaults: {DEFAULT_REPRODUCE_BUDGET} evaluations per experiment and seed on "
            f"{DEFAULT_SIZE}x{DEFAULT_SIZE} images with samstar-tiny, {len(DEFAULT_SEEDS)} seeds, {DEFAULT_TEST_IMAGES} "
            "test images: every number is a mean ± standard error (a few minutes on 2 CPU cores)."
        ),
    )
    p.add_argument("--model", help="model name or checkpoint path (default: samstar-tiny)")
    p.add_argument("--budget", type=int, default=DEFAULT_REPRODUCE_BUDGET,
                   help=f"evaluations per NSGA-II run (default {DEFAULT_REPRODUCE_BUDGET})")
    p.add_argument("--pop-size", type=int, default=DEFAULT_AGENT_OPTIONS["nsga2"]["pop_size"],
                   help=f"NSGA-II population (default {DEFAULT_AGENT_OPTIONS['nsga2']['pop_size']}; at most --budget)")
    p.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)),
                   help="NSGA-II seeds, one run each: a count N (seeds 0..N-1) or a comma-separated list (default 0,1,2)")
    p.add_argument("--images", "--n-images", dest="images", type=int, default=None,
                   help="tune images averaged per evaluation (default: 1 for a and b, 4 for c)")
    p.add_argument("--test-images", type=int, default=DEFAULT_TEST_IMAGES,
                   help=f"held-out test images every reported number is measured on (default {DEFAULT_TEST_IMAGES})")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"synthetic image side in px (default {DEFAULT_SIZE})")
    p.add_argument("--space", help="comma-separated parameters to tune, or 'all' (default: " + ",".join(DEFAULT_SPACE) + ")")
    p.add_argument("--only", default="a,b,c", help="experiments to run: a (perovskite), b (ito), c (auco); comma-separated (default a,b,c)")
    p.add_argument("--executor", choices=("local", "dask-evaluations"), default="local",
                   help="local: here; dask-evaluations: each population's evaluations on Dask workers")
    p.add_argument("--scheduler", help="Dask scheduler address (default: start a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--rule", default=DEFAULT_RULE,
                   help=f"operating-point rule of the tuned point in (a) and (b) (default {DEFAULT_RULE}; see samstar tune --pick)")
    p.add_argument("--out", default="runs/reproduce", help="output folder (default runs/reproduce)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.set_defaults(func=_run_cli)

