"""TuningProblem: evaluate AMG parameters on a task, independent of RL.

The shape follows HPOBench / OptunaHub: a ``search_space``, the objectives' ``directions`` and
``evaluate(params) -> Evaluation``. The Gymnasium environment calls the same ``evaluate``, so the
RL path and the black-box path give identical numbers.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.errors import InputError, MaskBudgetExceeded
from samstar_env.params import AmgParams, ParamSpace
from samstar_env.task import Task
from samstar_env.type_aliases import Segmenter

if TYPE_CHECKING:
    from samstar_env.engine import MaskEngine, MaskSet


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one parameter evaluation.

    Parameters
    ----------
    params : AmgParams
        What was evaluated.
    rewards : ndarray of float32, shape (k,)
        Reward vector (mean over the task's images), higher is better, in ``reward_names`` order.
    reward_names : tuple of str
        Names of the rewards.
    cost_s : float
        Wall-clock seconds of the evaluation (segmentation + rewards).
    n_masks : tuple of int
        Masks produced on each image.
    per_image : tuple of ndarray
        Reward vector of each image.
    gt : mapping or None
        Ground-truth metrics averaged over images (only when requested and labels exist; never
        part of the reward). Numbers are means over the images where defined (``None`` where
        undefined on every image); labels such as ``size_unit`` are kept when all images agree.
    details : mapping
        ``details["rewards"]``: per-image per-reward details from the suite;
        ``details["engine"]``: what the engine's counters moved by during THIS evaluation (cache
        hits and misses, stage seconds), flattened to ``"a.b" -> number``.
    """

    params: AmgParams
    rewards: np.ndarray
    reward_names: tuple[str, ...]
    cost_s: float
    n_masks: tuple[int, ...] = ()
    per_image: tuple[np.ndarray, ...] = ()
    gt: Mapping[str, Any] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (rewards as a name -> value mapping too)."""
        return {
            "params": self.params.to_dict(),
            "rewards": [float(v) for v in self.rewards],
            "reward_names": list(self.reward_names),
            "cost_s": float(self.cost_s),
            "n_masks": [int(n) for n in self.n_masks],
            "per_image": [[float(v) for v in r] for r in self.per_image],
            "gt": None if self.gt is None else {k: _json_value(v) for k, v in self.gt.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict` (details are not round-tripped)."""
        return cls(
            params=AmgParams.from_dict(data["params"]),
            rewards=np.asarray(data["rewards"], np.float32),
            reward_names=tuple(data["reward_names"]),
            cost_s=float(data["cost_s"]),
            n_masks=tuple(int(n) for n in data.get("n_masks", ())),
            per_image=tuple(np.asarray(r, np.float32) for r in data.get("per_image", ())),
            gt=None if data.get("gt") is None else dict(data["gt"]),
        )

    @property
    def cache_hits(self) -> int:
        """Engine cache hits during this evaluation (sum over the engine's caches)."""
        return _count(self.details.get("engine", {}), "hit")

    @property
    def cache_misses(self) -> int:
        """Engine cache misses during this evaluation (sum over the engine's caches)."""
        return _count(self.details.get("engine", {}), "miss")


# MaskEngine's caches: embeddings per crop and decoded proposals per point grid. Its disk_hits are
# already counted among these (a disk hit is an embedding or proposal hit), so they are not added.
_CACHE_COUNTERS = {"hit": ("embedding_hits", "proposal_hits"), "miss": ("embedding_misses", "proposal_misses")}


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return v


def mean_metrics(per_image: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Average ground-truth metric dicts over images, key by key (what :attr:`Evaluation.gt` holds).

    Numbers (counts included) become the mean over the images where they are defined; a metric
    undefined (``None``) on every image stays ``None``; non-numeric values (e.g. ``size_unit``) are
    kept when every image agrees and listed per image otherwise. Public so that another segmenter's
    problem (the watershed baseline's) averages exactly as this one does.

    Examples
    --------
    >>> mean_metrics([{"f1": 0.5, "occluded_recall": None, "size_unit": "px"},
    ...               {"f1": 1.0, "occluded_recall": 0.2, "size_unit": "px"}])
    {'f1': 0.75, 'occluded_recall': 0.2, 'size_unit': 'px'}
    """
    out: dict[str, Any] = {}
    for key in per_image[0]:
        vals = [g.get(key) for g in per_image]
        nums = [v for v in vals if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)]
        if nums and len(nums) == sum(v is not None for v in vals):
            out[key] = float(np.mean(np.asarray(nums, dtype=np.float64)))
        elif all(v is None for v in vals):
            out[key] = None
        else:
            out[key] = vals[0] if all(v == vals[0] for v in vals) else list(vals)
    return out


def _count(stats: Mapping[str, Any], word: str) -> int:
    keys = _CACHE_COUNTERS[word]
    if any(k in stats for k in keys):
        return int(sum(stats.get(k, 0) for k in keys))
    # Another engine (e.g. a user's): sum whatever counters name hits or misses.
    return int(sum(v for k, v in stats.items() if word in k.rsplit(".", 1)[-1].lower()))


def _flatten_stats(stats: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of an engine's ``stats`` (mapping, dataclass or plain object) as ``"a.b" -> value``."""
    if stats is None:
        return {}
    items: Any
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        items = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}.items()
    elif isinstance(stats, Mapping):
        items = stats.items()
    elif hasattr(stats, "__dict__"):
        items = vars(stats).items()
    else:
        return {}
    out: dict[str, float] = {}
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            out[key] = float(v)
        elif isinstance(v, Mapping) or dataclasses.is_dataclass(v):
            out.update(_flatten_stats(v, key + "."))
    return out


def _stats_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    # Counters are cumulative over the engine's life (and the engine is shared per process), so an
    # evaluation's own cache hits are the difference. Concurrent evaluations on one shared engine
    # may see each other's counts: these are diagnostics, never part of a result.
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


# One engine per (model, device) per process: every problem on the same model shares its caches,
# which is exact (the engine equals AMG) and makes benchmark suites far cheaper.
_ENGINES: dict[tuple[str, str], MaskEngine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(model: Any, *, device: str = "auto") -> MaskEngine:
    """The process-wide :class:`~samstar_env.engine.MaskEngine` for ``model`` (loaded once).

    Parameters
    ----------
    model : str, Path or torch.nn.Module
        A registered model name or checkpoint path (loaded with ``load_sam(model, device=device)``),
        or an in-memory SAM, used as is on its own device. In-memory models are keyed by their
        weights' fingerprint, so copies of one model (e.g. unpickled in this process, or given to
        every env of a vector env) share one engine and its caches.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``; for names and paths.

    The engine keeps its decodes in the shared disk cache
    (:func:`~samstar_env.engine.default_cache_dir`, ``SAMSTAR_CACHE``), so what ``samstar cache warm``
    or an earlier run decoded is a replay here.
    """
    from samstar_env.engine import MaskEngine, default_cache_dir

    if _is_model_reference(model):
        key = (str(model), device)
    else:
        from samstar_env.models import model_fingerprint

        key = (f"module:{model_fingerprint(model)}", "as-is")
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            if _is_model_reference(model):
                from samstar_env.models import load_sam

                model = load_sam(model, device=device)
            _ENGINES[key] = MaskEngine(model, cache_dir=default_cache_dir())
        return _ENGINES[key]


def clear_shared_engines() -> None:
    """Forget the process-wide engines (their memory caches); the next :func:`shared_engine` starts
    fresh from the disk cache, as a new process would."""
    with _ENGINES_LOCK:
        _ENGINES.clear()


def _is_model_reference(model: Any) -> bool:
    return isinstance(model, (str, Path))


# The image area a mask budget is given for (the registered tasks' 512² images).
BUDGET_AREA = 512 * 512


def _accepts_max_masks(engine: Any) -> bool:
    try:
        return "max_masks" in inspect.signature(engine.generate).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


class TuningProblem:
    """Evaluate AMG parameters on a :class:`Task`.

    Parameters
    ----------
    task : Task
        Images, prior, rewards, search space and model.
    gt_metrics : bool
        Also compute ground-truth metrics where images carry labels (for benchmarks; never a reward).
    engine : MaskEngine, optional
        Engine to use; default: the process-wide shared engine of ``task.model`` (a name, a
        checkpoint path or an in-memory SAM; see :func:`shared_engine`). Not pickled: a problem
        sent to another process rebuilds its engine there.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    max_masks : int, optional
        Mask budget per image. A configuration that keeps more masks on an image than this (counted
        after AMG's filters and NMS, before small-region post-processing) is not scored there: its
        reward vector on that image is the reward space's low end (0 for the built-in rewards) and
        ``details["over_mask_budget"]`` holds its count. Scoring thousands of masks costs seconds
        (the rewards and post-processing work per mask), while no particle image is segmented well
        by that many; a :class:`~samstar_env.engine.MaskEngine` stops before the per-mask work.
        The budget is per 512² pixels for larger images (a 4096² frame gets 64 times it, as it
        holds 64 times the particles); smaller images get it whole.
        ``None`` (default): every configuration is scored.

    Examples
    --------
    Skipped when the docs are tested: an evaluation loads the task's model and segments (seconds
    to minutes on a CPU); ``tests/test_env.py`` evaluates on a small random-weight model.

    >>> problem = TuningProblem(make_task("perovskite"))          # doctest: +SKIP
    >>> ev = problem.evaluate(problem.search_space.base)          # doctest: +SKIP
    >>> dict(zip(ev.reward_names, ev.rewards))                    # doctest: +SKIP
    """

    def __init__(
        self, task: Task, *, gt_metrics: bool = False, engine: Segmenter[MaskSet] | None = None, device: str = "auto",
        max_masks: int | None = None,
    ) -> None:
        if max_masks is not None and (isinstance(max_masks, bool) or not isinstance(max_masks, (int, np.integer)) or max_masks < 1):
            raise InputError(f"TuningProblem: max_masks must be a positive integer or None, got {max_masks!r}")
        self.task = task
        self.gt_metrics = bool(gt_metrics)
        self.device = device
        self.max_masks = None if max_masks is None else int(max_masks)
        self._engine: Segmenter[MaskSet] | None = engine
        self._engine_takes_budget: bool | None = None

    # -- description -------------------------------------------------------------------------
    @property
    def search_space(self) -> ParamSpace:
        """The tuned parameters (decode actions through it)."""
        return self.task.space

    @property
    def reward_names(self) -> tuple[str, ...]:
        """Objective names, in vector order."""
        return tuple(self.task.rewards.names)

    @property
    def directions(self) -> tuple[str, ...]:
        """``"maximize"`` for every objective (rewards are higher-is-better)."""
        return ("maximize",) * len(self.reward_names)

    @property
    def engine(self) -> Segmenter[MaskSet]:
        """The mask engine (created on first use): a MaskEngine, or any :class:`~samstar_env.type_aliases.Segmenter`."""
        if self._engine is None:
            self._engine = shared_engine(self.task.model, device=self.device)
        return self._engine

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, params: AmgParams, *, images: tuple[Micrograph, ...] | None = None) -> Evaluation:
        """Segment the task's images with ``params`` and score them.

        Parameters
        ----------
        params : AmgParams
            The configuration to evaluate.
        images : tuple of Micrograph, optional
            Override the images (e.g. one image per contextual episode, or the held-out test images).
        """
        if not isinstance(params, AmgParams):
            raise TypeError(f"evaluate: params must be AmgParams, got {type(params).__name__}")
        imgs = self.task.images if images is None else tuple(images)
        if not imgs:
            raise ValueError("evaluate: no images to evaluate on")
        suite = self.task.rewards
        engine = self.engine
        stats_before = _flatten_stats(getattr(engine, "stats", None))
        t0 = time.perf_counter()
        vectors, n_masks, gts, details, over = [], [], [], [], []
        for im in imgs:
            masks = self._generate(engine, im, params)
            if isinstance(masks, MaskBudgetExceeded):
                vectors.append(np.asarray(suite.reward_space.low, np.float32))
                n_masks.append(masks.count)
                details.append({"over_mask_budget": masks.count, "max_masks": masks.limit})
                over.append(masks.count)
                continue
            vec, det = suite.evaluate_with_details(masks, im, self.task.prior, params=params)
            vectors.append(np.asarray(vec, np.float32))
            n_masks.append(len(masks))
            details.append(det)
            if self.gt_metrics and im.labels is not None:
                from samstar_env.metrics.ground_truth import gt_metrics

                gts.append(gt_metrics(masks, im))
        cost = time.perf_counter() - t0
        gt = mean_metrics(gts) if gts else None
        return Evaluation(
            params=params,
            rewards=np.mean(vectors, axis=0).astype(np.float32),
            reward_names=self.reward_names,
            cost_s=cost,
            n_masks=tuple(n_masks),
            per_image=tuple(vectors),
            gt=gt,
            details={
                "rewards": details,
                "engine": _stats_delta(stats_before, _flatten_stats(getattr(engine, "stats", None))),
                **({"over_mask_budget": tuple(over)} if over else {}),
            },
        )

    def mask_budget(self, image_shape: tuple[int, int]) -> int | None:
        """The mask budget of an image of ``image_shape``: ``max_masks`` per 512² pixels, at least ``max_masks``."""
        if self.max_masks is None:
            return None
        h, w = image_shape[:2]
        return int(self.max_masks * max(1.0, (int(h) * int(w)) / BUDGET_AREA))

    def _generate(self, engine: Segmenter[MaskSet], image: Micrograph, params: AmgParams) -> MaskSet | MaskBudgetExceeded:
        """The image's masks, or the budget error when ``max_masks`` is set and exceeded."""
        limit = self.mask_budget(image.shape)
        if limit is None:
            return engine.generate(image, params)
        if self._engine_takes_budget is None:  # asked once per problem, not per image
            self._engine_takes_budget = _accepts_max_masks(engine)
        if self._engine_takes_budget:
            try:
                return engine.generate(image, params, max_masks=limit)  # type: ignore[call-arg]
            except MaskBudgetExceeded as exc:
                return exc
        # Another segmenter: it did the per-mask work already; the budget still decides the score.
        masks = engine.generate(image, params)
        return MaskBudgetExceeded(len(masks), limit) if len(masks) > limit else masks

    def evaluate_action(self, action: np.ndarray) -> Evaluation:
        """Decode ``action`` in ``[-1, 1]^d`` through the search space and evaluate it."""
        return self.evaluate(self.search_space.decode(action))

    # -- pickling (Dask, vector envs) --------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"] = None
        state["_engine_takes_budget"] = None  # asked again of the engine rebuilt there
        return state
