"""Baselines benchmarked beside the SAM tuners in ``samstar bench``: what a microscopist would do instead.

``watershed``
    A classical pipeline (smoothing, Otsu or Li threshold, distance transform, ``peak_local_max``
    markers, watershed, small-object removal; :mod:`samstar_env.benchmarks.watershed`). Its five
    parameters are tuned like SAM's: by the same NSGA-II agent
    (:class:`~samstar_env.agents.nsga2.NSGA2Agent`, with the suite's ``nsga2`` options, so the same
    population size), on the same tune images, for the same budget, against the task's own reward
    suite. Its reward vectors, hypervolume, IGD+ against the task's reference front and default-rule
    operating point therefore compare directly with NSGA-II on SAM. ``segmenter`` is
    ``"watershed"``; trial and operating-point ``params`` are
    :class:`~samstar_env.benchmarks.watershed.WatershedParams` dicts. It never loads SAM, and it
    segments whole images (a suite's tiles are a SAM input-size matter).
``gt-grid``
    micro-sam's ground-truth grid search: SAM's AMG over ``pred_iou_thresh`` x
    ``stability_score_thresh`` (micro-sam's ranges and step, :mod:`samstar_env.agents.grid`:
    13 x 15 = :data:`GT_GRID_POINTS` points, every other parameter at the suite space's base),
    scored by the task's rewards as every run is, but its operating point is the point of highest
    mean segmentation accuracy against the tune images' GROUND TRUTH (``mean_seg_accuracy`` of
    :func:`~samstar_env.metrics.ground_truth.gt_metrics`), not a label-free rule. It is an oracle: no
    label-free tuner can do that, and its record says ``"uses_labels": true``. The whole grid is
    evaluated whatever the suite's budget (its ``budget`` and hypervolume curve are 195 long), as
    micro-sam does: after the point grid's one decode per image, each point is a cached threshold
    replay. Its trials carry their tune-image ground-truth metrics (``gt``).
    ``agent_options["gt-grid"]`` may move the ranges (``iou_range``, ``stability_range``; the step
    stays micro-sam's 0.025) for a model whose predicted IoU is calibrated otherwise: samstar-tiny
    predicts IoUs below 0.6 on the synthetic tasks, so micro-sam's own ranges keep no mask there.

``vanilla``
    No tuning: the model's recommended operating point, what ``samstar segment`` uses without
    ``--params`` (:func:`~samstar_env.models.registry.recommended_params`; SAM's defaults for a
    checkpoint without one). One evaluation, scored by the task's rewards and on the test images
    as every run is; the record's ``operating_point`` rule says where the parameters came from.
``sam-defaults``
    No tuning: ``SamAutomaticMaskGenerator``'s defaults (:class:`~samstar_env.params.AmgParams` as
    constructed, or SAM 2's for a SAM 2 suite), what a user of plain SAM gets. One evaluation.

Every baseline writes its record through :func:`~samstar_env.benchmarks.runner.run_record`, so its
keys are those of every run (``samstar-bench-run/1``), and every one runs under the local and the
Dask executors (through :func:`~samstar_env.benchmarks.runner.execute_run`, which hands them here).
The two fixed points do not depend on the seed: every seed repeats the same evaluation (a cached
replay after the first), which keeps the suite's task x agent x seed table rectangular for the
summary's rank tests.

Examples
--------
>>> GT_GRID_POINTS
195
>>> sorted(BASELINES)
['gt-grid', 'sam-defaults', 'vanilla', 'watershed']
>>> check_agent_names(["nsga2", "watershed"], source="--agents")
>>> check_agent_names(["nsga"], source="--agents")
Traceback (most recent call last):
...
samstar_env.errors.InputError: --agents: unknown agent(s) ['nsga']; expected agents [...] or baselines ['watershed', 'gt-grid', 'vanilla', 'sam-defaults']
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np

from samstar_env.agents.grid import IOU_RANGE, STABILITY_RANGE, STEP
from samstar_env.agents.result import OperatingPoint, TuningResult
from samstar_env.benchmarks.runner import RunSpec, build_problem, run_record, sam_test_gt, save_overlay
from samstar_env.errors import InputError

#: Baseline name -> what it is (``samstar bench --agents`` accepts these beside the agents).
BASELINES: dict[str, str] = {
    "watershed": "classical threshold + distance-transform watershed, its parameters tuned by NSGA-II on the task's rewards",
    "gt-grid": "micro-sam's pred_iou x stability grid on SAM, operating point by tune-image ground truth (an oracle: uses labels)",
    "vanilla": "no tuning: the model's recommended operating point (what `samstar segment` uses without --params)",
    "sam-defaults": "no tuning: SamAutomaticMaskGenerator's default parameters",
}


def _axis_points(lo_hi: tuple[float, float]) -> int:
    lo, hi = lo_hi
    return int(round((hi - lo) / STEP)) + 1


#: Points of micro-sam's full grid (13 pred_iou_thresh x 15 stability_score_thresh values).
GT_GRID_POINTS = _axis_points(IOU_RANGE) * _axis_points(STABILITY_RANGE)

#: The ground-truth metric gt-grid maximizes on the tune images (micro-sam's mSA).
GT_GRID_METRIC = "mean_seg_accuracy"

# gt-grid is micro-sam's grid: its step stays micro-sam's; the ranges may move for a model whose
# predicted IoU is calibrated otherwise, and the batch size is how many points an executor gets at once.
_GT_GRID_OPTIONS = ("batch_size", "iou_range", "stability_range")


def gt_grid_points(*, iou_range: tuple[float, float] = IOU_RANGE, stability_range: tuple[float, float] = STABILITY_RANGE) -> int:
    """Points of the gt-grid over these ranges at micro-sam's step (:data:`GT_GRID_POINTS` for its own).

    Examples
    --------
    >>> gt_grid_points(iou_range=(0.1, 0.4))
    195
    """
    return _axis_points(iou_range) * _axis_points(stability_range)


def known_agents() -> list[str]:
    """Every name a suite may list: the registered agents, then the baselines."""
    from samstar_env.agents import available_agents

    return [*available_agents(), *BASELINES]


def check_agent_names(names: Iterable[str], *, source: str) -> None:
    """Raise :class:`~samstar_env.errors.InputError` naming ``source`` when a name is neither an agent nor a baseline."""
    from samstar_env.agents import available_agents

    agents = available_agents()
    unknown = [n for n in names if n not in BASELINES and n not in agents]
    if unknown:
        raise InputError(f"{source}: unknown agent(s) {unknown}; expected agents {agents} or baselines {list(BASELINES)}")


def execute_baseline(
    spec: RunSpec,
    *,
    evaluator: Callable[..., Iterable[Any]] | None = None,
    overlay_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the baseline ``spec.agent`` and return its run record (same keys as every run).

    Parameters
    ----------
    spec : RunSpec
        A run whose ``agent`` is a key of :data:`BASELINES`.
    evaluator : callable, optional
        Population evaluator for ``Agent.run`` (e.g. :func:`~samstar_env.benchmarks.executors.dask_evaluator`).
    overlay_dir : path, optional
        Where to write ``<run_id>.png``, the operating point's masks on the first test image.
    """
    if spec.agent == "watershed":
        return run_watershed(spec, evaluator=evaluator, overlay_dir=overlay_dir)
    if spec.agent == "gt-grid":
        return run_gt_grid(spec, evaluator=evaluator, overlay_dir=overlay_dir)
    if spec.agent in ("vanilla", "sam-defaults"):
        return run_fixed_point(spec, overlay_dir=overlay_dir)
    raise InputError(f"run {spec.run_id!r}: {spec.agent!r} is not a baseline; expected one of {list(BASELINES)}")


def run_watershed(
    spec: RunSpec,
    *,
    evaluator: Callable[..., Iterable[Any]] | None = None,
    overlay_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The ``watershed`` baseline: NSGA-II over :class:`~samstar_env.benchmarks.watershed.WatershedSpace`.

    The NSGA-II options are the suite's ``agent_options["nsga2"]`` (so the population of the SAM
    runs), updated by ``agent_options["watershed"]`` when given; the budget and seed are the run's.
    """
    from samstar_env.agents.nsga2 import NSGA2Agent
    from samstar_env.agents.operating_points import DEFAULT_RULE, choose
    from samstar_env.benchmarks.watershed import WatershedProblem, watershed_segment
    from samstar_env.task import make_task

    t0 = time.perf_counter()
    s = spec.suite
    # The task's images, prior and rewards, built as for SAM but without its model or tiles.
    task = make_task(spec.task, n_images=s.n_images, n_test_images=s.n_test_images, size=tuple(s.image_size), model=s.model)
    problem = WatershedProblem(task)
    options = {**s.agent_options.get("nsga2", {}), **s.agent_options.get("watershed", {})}
    try:
        agent = NSGA2Agent(**options)
    except (TypeError, ValueError) as exc:
        raise InputError(f"suite {s.name!r}: agent_options for the watershed's NSGA-II {options}: {exc}") from exc
    # Agent.run reads of its problem only search_space (dim, decode, describe), reward_names and
    # evaluate, and of the parameters only to_dict and ==: WatershedProblem provides them for
    # WatershedParams (ProblemLike is typed with AMG's ParamSpace, hence the cast).
    result = agent.run(cast(Any, problem), budget=s.budget, seed=spec.seed, evaluator=evaluator)
    result = dataclasses.replace(result, agent=spec.agent, metadata={**result.metadata, "tuner": "nsga2", "segmenter": "watershed"})
    # The same label-free rule as the SAM runs (problem.task holds the images, prior and weights).
    op = choose(result, DEFAULT_RULE, problem=problem)
    test_gt = None
    if task.test_images:
        params = op.trial.params
        ev = WatershedProblem(task, gt_metrics=True).evaluate(params, images=task.test_images)
        test_gt = dict(ev.gt) if ev.gt is not None else None
        if overlay_dir is not None:
            im = task.test_images[0]
            save_overlay(overlay_dir, spec, im, watershed_segment(im, params, prior=task.prior), test_gt)
    return run_record(spec, result, op, test_gt=test_gt, wall_s=time.perf_counter() - t0, segmenter="watershed", uses_labels=False)


def run_gt_grid(
    spec: RunSpec,
    *,
    evaluator: Callable[..., Iterable[Any]] | None = None,
    overlay_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The ``gt-grid`` oracle: micro-sam's full grid on SAM, operating point by tune-image mSA.

    Raises
    ------
    InputError
        When the suite's space lacks ``pred_iou_thresh`` or ``stability_score_thresh``, a tune image
        has no labels, or ``agent_options["gt-grid"]`` holds other keys than ``batch_size``,
        ``iou_range`` and ``stability_range`` or a range outside the space's bounds.
    """
    from samstar_env.agents.grid import GridAgent

    t0 = time.perf_counter()
    s = spec.suite
    options = dict(s.agent_options.get("gt-grid", {}))
    bad = sorted(set(options) - set(_GT_GRID_OPTIONS))
    if bad:
        raise InputError(f"suite {s.name!r}: agent_options for gt-grid {bad}; expected only {list(_GT_GRID_OPTIONS)} (the step is micro-sam's)")
    space = s.param_space()
    missing = [n for n in ("pred_iou_thresh", "stability_score_thresh") if n not in space.names]
    if missing:
        raise InputError(f"suite {s.name!r}: gt-grid needs the dimension(s) {missing} in the suite's space; it has {list(space.names)}")
    ranges = {"iou_range": IOU_RANGE, "stability_range": STABILITY_RANGE}
    for key, dim_name in (("iou_range", "pred_iou_thresh"), ("stability_range", "stability_score_thresh")):
        d = next(d for d in space.dimensions if d.name == dim_name)
        try:
            lo, hi = (float(v) for v in options.get(key, ranges[key]))
        except (TypeError, ValueError) as exc:
            raise InputError(f"suite {s.name!r}: agent_options gt-grid {key} {options.get(key)!r}: expected two numbers [low, high]") from exc
        if not d.low <= lo < hi <= d.high:
            # Outside the space the grid agent would clip points onto its bounds: duplicates, not a grid.
            raise InputError(f"suite {s.name!r}: gt-grid {key} [{lo}, {hi}]: expected low < high within the space's {dim_name} bounds [{d.low}, {d.high}]")
        ranges[key] = (lo, hi)
    options.update(ranges)
    problem = build_problem(spec, gt_metrics=True)
    unlabeled = [im.name for im in problem.task.images if im.labels is None]
    if unlabeled:
        raise InputError(f"task {spec.task!r}: gt-grid needs ground-truth labels on every tune image; {unlabeled} have none")
    # The whole grid whatever the suite's budget: it is micro-sam's design, not a search.
    result = GridAgent(**options).run(problem, budget=gt_grid_points(**ranges), seed=spec.seed, evaluator=evaluator)
    result = dataclasses.replace(
        result,
        agent=spec.agent,
        trials=tuple(dataclasses.replace(t, gt=numeric_metrics(t.gt)) for t in result.trials),
        metadata={**result.metadata, "tuner": "grid", "segmenter": "sam", "uses_labels": True},
    )
    op = best_by_gt(result, GT_GRID_METRIC)
    test_gt = None
    if problem.task.test_images:
        test_gt = sam_test_gt(problem, op.trial.params)
        if overlay_dir is not None:
            im = problem.task.test_images[0]
            save_overlay(overlay_dir, spec, im, problem.engine.generate(im, op.trial.params), test_gt)
    return run_record(spec, result, op, test_gt=test_gt, wall_s=time.perf_counter() - t0, segmenter="sam", uses_labels=True)


def fixed_params(agent: str, *, model: Any, base: Any = None, backbone: str = "sam1") -> tuple[Any, str]:
    """The parameters of a fixed-point baseline and where they come from.

    Parameters
    ----------
    agent : {"vanilla", "sam-defaults"}
        ``vanilla``: ``model``'s recommended point (:func:`~samstar_env.models.registry.recommended_params`);
        ``sam-defaults``: SAM's (SAM 2's for ``backbone="sam2"``) default AMG parameters.
    model : str, path or module
        The suite's model.
    base : AmgParams, optional
        The run space's base: its tiling (``tile_shape``, ``halo``) is kept, since how a large image
        is cut is the suite's choice, not the model's operating point.

    Examples
    --------
    >>> params, source = fixed_params("sam-defaults", model="samstar-tiny")
    >>> params.pred_iou_thresh, params.points_per_side, source
    (0.88, 32, "SAM's defaults")
    """
    from samstar_env.models.registry import recommended_params
    from samstar_env.params import TILING_FIELDS, AmgParams, Sam2AmgParams

    if agent == "vanilla":
        params, source = recommended_params(model, backbone=backbone)
    elif agent == "sam-defaults":
        params, source = (Sam2AmgParams(), "SAM 2's defaults") if backbone == "sam2" else (AmgParams(), "SAM's defaults")
    else:
        raise InputError(f"{agent!r} is not a fixed-point baseline; expected 'vanilla' or 'sam-defaults'")
    if base is not None:
        params = dataclasses.replace(params, **{k: getattr(base, k) for k in TILING_FIELDS})
    return params, source


def run_fixed_point(spec: RunSpec, *, overlay_dir: str | Path | None = None) -> dict[str, Any]:
    """The ``vanilla`` and ``sam-defaults`` baselines: one fixed parameter set, scored as every run is.

    The result holds one trial (its action is the parameters encoded in the suite's space, clipped
    to it, for the record only); the operating point is that trial, with the rule ``fixed:<name>``
    (``fixed:vanilla``, ``fixed:sam-defaults``) and the parameters' source in its detail and in the
    result's ``metadata["params_source"]`` (e.g. "samstar-tiny's recommended operating point (...)").
    """
    from samstar_env.agents.result import Trial
    from samstar_env.problem import shared_engine

    t0 = time.perf_counter()
    problem = build_problem(spec)
    params, source = fixed_params(spec.agent, model=spec.suite.model, base=problem.search_space.base,
                                  backbone=shared_engine(spec.suite.model).backbone)
    ev = problem.evaluate(params)
    trial = Trial.from_evaluation(0, problem.search_space.encode(params), ev)
    result = TuningResult(
        agent=spec.agent,
        seed=spec.seed,
        reward_names=tuple(problem.reward_names),
        trials=(trial,),
        task=spec.task,
        budget=1,
        metadata={"tuner": "none", "segmenter": "sam", "params_source": source},
    )
    op = OperatingPoint(f"fixed:{spec.agent}", trial, {"params_source": source})
    test_gt = None
    if problem.task.test_images:
        test_gt = sam_test_gt(problem, params)
        if overlay_dir is not None:
            im = problem.task.test_images[0]
            save_overlay(overlay_dir, spec, im, problem.engine.generate(im, params), test_gt)
    return run_record(spec, result, op, test_gt=test_gt, wall_s=time.perf_counter() - t0, segmenter="sam", uses_labels=False)


def numeric_metrics(gt: Any) -> dict[str, float] | None:
    """The finite numbers of a ground-truth metrics dict (a trial's ``gt`` holds floats only).

    Examples
    --------
    >>> numeric_metrics({"f1": 0.5, "tp": 3, "size_unit": "px", "occluded_recall": None})
    {'f1': 0.5, 'tp': 3.0}
    """
    if gt is None:
        return None
    out = {}
    for k, v in dict(gt).items():
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def best_by_gt(result: TuningResult, metric: str = GT_GRID_METRIC) -> OperatingPoint:
    """The trial with the highest ground-truth ``metric`` (first one on ties): gt-grid's operating point.

    Examples
    --------
    >>> import numpy as np
    >>> from samstar_env.agents import Trial
    >>> from samstar_env.params import AmgParams
    >>> ts = [Trial(i, np.zeros(1), AmgParams(), [0.0], 0.0, gt={"mean_seg_accuracy": m}) for i, m in enumerate([0.2, 0.7, 0.7])]
    >>> op = best_by_gt(TuningResult(agent="gt-grid", seed=0, reward_names=("r",), trials=tuple(ts)))
    >>> op.rule, op.trial.index
    ('max_tune_gt:mean_seg_accuracy', 1)
    """
    values = [(t.gt or {}).get(metric) for t in result.trials]
    scored = [(float(v), -i) for i, v in enumerate(values) if v is not None and math.isfinite(float(v))]
    if not scored:
        raise InputError(f"{result.agent}: no trial has the ground-truth metric {metric!r}; expected labelled tune images")
    value, neg_i = max(scored)
    return OperatingPoint(f"max_tune_gt:{metric}", result.trials[-neg_i], {"metric": metric, "tune_value": value})
