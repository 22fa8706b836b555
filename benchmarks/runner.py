"""Run a benchmark suite: task x agent x seed, one JSON record per run, resumable.

Each run builds its task from the suite, runs the agent for the suite's budget, and records every
evaluation (the agent's :class:`~samstar_env.agents.TuningResult`), the anytime hypervolume curve,
IGD+ and evaluations-to-90 % against the task's shipped reference front (when one exists), the
operating point (:data:`~samstar_env.agents.operating_points.DEFAULT_RULE`) and its ground-truth metrics on the task's held-out ``test`` images, and
wall time. Records are written atomically as each run finishes; a run whose record exists for the
same suite and problem (model weights and rewards version, :func:`~samstar_env.benchmarks.reference.problem_of`)
is skipped, so an interrupted suite resumes where it stopped, and records made with other weights
or reward definitions are run again.

Run record schema (``RUN_SCHEMA``, JSON object):

``schema``, ``suite`` (the Suite dict), ``suite_version``, ``problem`` (the suite's problem key:
model sha256 and rewards version included), ``task``, ``agent``, ``seed``, ``budget``,
``reward_names``, ``result`` (TuningResult dict: every trial's action, params, rewards, cost),
``hypervolume_curve`` (list, one value per evaluation), ``final_hypervolume``,
``reference_hypervolume`` (or null), ``igd_plus`` (or null), ``evals_to_90pct`` (or null),
``operating_point`` ({rule, params, rewards}), ``test_gt`` (mean GT metrics of the operating point
on the test images), ``wall_s``, ``versions`` (samstar, torch, segment_anything, pymoo, numpy,
scikit-image), ``segmenter`` (``"sam"``, or ``"watershed"`` for that baseline, whose trial and
operating-point ``params`` are :class:`~samstar_env.benchmarks.watershed.WatershedParams` dicts) and
``uses_labels`` (``true`` only for an oracle that chose its operating point with ground truth on the
tune images: the ``gt-grid`` baseline). Records written before the last two keys existed lack them
(read them with ``.get``). The baselines (:mod:`samstar_env.benchmarks.baselines`) write records
through :func:`run_record` too, so their keys are the same.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samstar_env.benchmarks.reference import load_reference_front, problem_of
from samstar_env.benchmarks.suites import Suite
from samstar_env.metrics.multiobjective import (
    anytime_hypervolume,
    evaluations_to_reach,
    hypervolume,
    igd_plus,
)

RUN_SCHEMA = "samstar-bench-run/1"


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite (picklable: it travels to Dask workers).

    Parameters
    ----------
    suite : Suite
        The suite it belongs to.
    task, agent : str
        Task and agent names.
    seed : int
        The run's seed.
    """

    suite: Suite
    task: str
    agent: str
    seed: int

    @property
    def run_id(self) -> str:
        """File-name-safe identifier, e.g. ``perovskite__nsga2__s3``."""
        return f"{self.task}__{self.agent}__s{self.seed}"


def run_specs(suite: Suite) -> list[RunSpec]:
    """Every run of ``suite`` in its fixed order."""
    return [RunSpec(suite, t, a, s) for t, a, s in suite.runs()]


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("samstar", "torch", "segment-anything", "pymoo", "numpy", "optuna", "scikit-image"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def build_problem(spec: RunSpec, *, gt_metrics: bool = False) -> Any:
    """The :class:`~samstar_env.problem.TuningProblem` of a run (deterministic from the suite)."""
    from samstar_env.problem import TuningProblem
    from samstar_env.task import make_task

    s = spec.suite
    task = make_task(
        spec.task,
        n_images=s.n_images,
        n_test_images=s.n_test_images,
        size=tuple(s.image_size),
        model=s.model,
        space=s.param_space(),
    )
    from samstar_env.problem import shared_engine
    from samstar_env.task import adapt_to_backbone

    # A suite on a SAM 2 checkpoint tunes SAM 2's own parameters too (its space gains them).
    task = adapt_to_backbone(task, shared_engine(s.model).backbone)
    if s.tile_shape != 0:
        # Automatic tiles need the model's input size, hence the model (the problem loads it anyway).
        from samstar_env.engine.tiles import model_input_size
        from samstar_env.problem import shared_engine
        from samstar_env.task import tile_task

        size = model_input_size(shared_engine(s.model)) if s.tile_shape is None else None
        task, _ = tile_task(task, input_size=size, tile_shape=s.tile_shape, halo=s.halo, source=f"suite {s.name!r}: tile_shape")
    return TuningProblem(task, gt_metrics=gt_metrics)


def execute_run(
    spec: RunSpec,
    *,
    evaluator: Callable[..., Iterable[Any]] | None = None,
    overlay_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run one (task, agent, seed) and return its record (see the module docstring for the schema).

    Parameters
    ----------
    spec : RunSpec
        What to run. A baseline name (:data:`~samstar_env.benchmarks.baselines.BASELINES`) runs that
        baseline (:func:`~samstar_env.benchmarks.baselines.execute_baseline`); any other name is an agent.
    evaluator : callable, optional
        Population evaluator passed to ``Agent.run`` (e.g. :func:`~samstar_env.benchmarks.executors.dask_evaluator`).
    overlay_dir : path, optional
        Where to write ``<run_id>.png``, the operating point's masks on the first test image.
    """
    from samstar_env.agents import make_agent
    from samstar_env.agents.operating_points import DEFAULT_RULE, choose
    from samstar_env.benchmarks.baselines import BASELINES, check_agent_names, execute_baseline

    if spec.agent in BASELINES:
        return execute_baseline(spec, evaluator=evaluator, overlay_dir=overlay_dir)
    check_agent_names((spec.agent,), source=f"run {spec.run_id!r}")
    t0 = time.perf_counter()
    problem = build_problem(spec)
    agent = make_agent(spec.agent, **dict(spec.suite.agent_options.get(spec.agent, {})))
    result = agent.run(problem, budget=spec.suite.budget, seed=spec.seed, evaluator=evaluator)
    op = choose(result, DEFAULT_RULE, problem=problem)
    test_gt: dict[str, float] | None = None
    if problem.task.test_images:
        # Held-out check: the operating point chosen on tune images, scored by ground truth on
        # test images it never saw.
        test_gt = sam_test_gt(problem, op.trial.params)
        if overlay_dir is not None:
            im = problem.task.test_images[0]
            save_overlay(overlay_dir, spec, im, problem.engine.generate(im, op.trial.params), test_gt)  # cached: no new decode
    return run_record(spec, result, op, test_gt=test_gt, wall_s=time.perf_counter() - t0, segmenter="sam", uses_labels=False)


def sam_test_gt(problem: Any, params: Any) -> dict[str, Any] | None:
    """Mean ground-truth metrics of AMG ``params`` on the test images of ``problem`` (a TuningProblem)."""
    from samstar_env.problem import TuningProblem

    test_eval = TuningProblem(problem.task, gt_metrics=True, engine=problem.engine).evaluate(params, images=problem.task.test_images)
    return dict(test_eval.gt) if test_eval.gt is not None else None


def save_overlay(overlay_dir: str | Path, spec: RunSpec, image: Any, masks: Any, test_gt: dict[str, Any] | None) -> None:
    """Write ``<overlay_dir>/<run_id>.png``: ``masks`` over ``image`` (the first test image)."""
    from samstar_env.report_plots import overlay, save_png

    Path(overlay_dir).mkdir(parents=True, exist_ok=True)
    save_png(
        overlay(image.image, masks.to_label_image()),
        Path(overlay_dir) / f"{spec.run_id}.png",
        title=f"{spec.run_id}: {len(masks)} masks, test F1 {(test_gt or {}).get('f1', float('nan')):.3f}",
    )


def run_record(
    spec: RunSpec,
    result: Any,
    op: Any,
    *,
    test_gt: dict[str, Any] | None,
    wall_s: float,
    segmenter: str,
    uses_labels: bool,
) -> dict[str, Any]:
    """The run record (module docstring) of a finished run: the one place its keys are written.

    Parameters
    ----------
    spec : RunSpec
        The run.
    result : TuningResult
        Every evaluation; its ``budget`` is the record's (the suite's, except for a baseline that
        evaluates a fixed design, e.g. gt-grid's 195 points).
    op : OperatingPoint
        The chosen trial and the rule that chose it.
    test_gt : dict or None
        Ground-truth metrics of the operating point on the test images.
    wall_s : float
        Seconds of the whole run.
    segmenter : {"sam", "watershed"}
        What produced the masks.
    uses_labels : bool
        True when ground truth of the tune images chose anything (an oracle).
    """
    rewards = result.rewards
    curve = anytime_hypervolume(rewards)
    # Same rewards on the same images as the task's SAM runs, so the task's front is the reference
    # for every segmenter and tuner alike.
    ref = load_reference_front(spec.suite, spec.task, reward_names=result.reward_names)
    ref_hv = hypervolume(ref) if ref is not None else None
    front = rewards[result.front_indices] if len(rewards) else rewards
    return {
        "schema": RUN_SCHEMA,
        "suite": spec.suite.to_dict(),
        "suite_version": spec.suite.version,
        "problem": problem_of(spec.suite),
        "task": spec.task,
        "agent": spec.agent,
        "seed": spec.seed,
        "budget": int(result.budget) if result.budget is not None else spec.suite.budget,
        "reward_names": list(result.reward_names),
        "result": result.to_dict(),
        "hypervolume_curve": [float(v) for v in curve],
        "final_hypervolume": float(curve[-1]) if len(curve) else 0.0,
        "reference_hypervolume": ref_hv,
        "igd_plus": igd_plus(front, ref) if ref is not None and len(front) else None,
        "evals_to_90pct": evaluations_to_reach(curve, 0.9 * ref_hv) if ref_hv is not None else None,
        "operating_point": {
            "rule": op.rule,
            "params": op.trial.params.to_dict(),
            "rewards": [float(v) for v in op.trial.rewards],
        },
        "test_gt": test_gt,
        "wall_s": float(wall_s),
        "versions": versions(),
        "segmenter": segmenter,
        "uses_labels": bool(uses_labels),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a resumed suite) never sees a half-written file."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_run(path: Path) -> dict[str, Any] | None:
    """A finished run record, or ``None`` when the file is missing, partial or of another schema."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == RUN_SCHEMA else None


def pending_runs(suite: Suite, out_dir: Path) -> tuple[list[RunSpec], list[RunSpec]]:
    """Split the suite's runs into (done, todo) by the records already in ``out_dir/runs``."""
    done, todo = [], []
    problem = problem_of(suite)
    for spec in run_specs(suite):
        rec = read_run(Path(out_dir) / "runs" / f"{spec.run_id}.json")
        ok = rec is not None and rec.get("suite") == suite.to_dict() and rec.get("problem") == problem
        (done if ok else todo).append(spec)
    return done, todo


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    *,
    executor: Any | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run every unfinished run of ``suite`` and write ``runs/*.json`` and ``summary.json``.

    Parameters
    ----------
    suite : Suite
        What to run.
    out_dir : path
        Output folder (created). Existing records of the same suite are kept and skipped.
    executor : object, optional
        Something with ``map_runs(specs) -> iterable of (spec, record)`` in completion order
        (:class:`~samstar_env.benchmarks.executors.LocalExecutor` by default, or the Dask one).
    progress : callable, optional
        Receives one line per finished run.

    Returns
    -------
    dict
        The summary (also written to ``summary.json``).
    """
    from samstar_env.benchmarks.executors import LocalExecutor
    from samstar_env.benchmarks.summary import summarize

    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "suite.json", suite.to_dict())
    done, todo = pending_runs(suite, out)
    if progress and done:
        progress(f"{len(done)} finished run(s) found in {out / 'runs'}: skipped")
    executor = executor or LocalExecutor()
    for i, (spec, record) in enumerate(executor.map_runs(todo, overlay_dir=out / "overlays"), start=1):
        write_json_atomic(out / "runs" / f"{spec.run_id}.json", record)
        if progress:
            gt = record.get("test_gt") or {}
            progress(
                f"[{len(done) + i}/{len(done) + len(todo)}] {spec.run_id}: HV {record['final_hypervolume']:.4f}"
                f"  test F1 {gt.get('f1', float('nan')):.3f}  {record['wall_s']:.1f} s"
            )
    records = [r for r in (read_run(out / "runs" / f"{s.run_id}.json") for s in run_specs(suite)) if r is not None]
    summary = summarize(records, suite=suite)
    write_json_atomic(out / "summary.json", summary)
    return summary

