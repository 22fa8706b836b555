"""TuningProblem: evaluate AMG parameters on a task, independent of RL.

The shape follows HPOBench / OptunaHub: a ``search_space``, the objectives' ``directions`` and
``evaluate(params) -> Evaluation``. The Gymnasium environment calls the same ``evaluate``, so the
RL path and the black-box path give identical numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.params import AmgParams, ParamSpace
from samstar_env.task import Task


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
        part of the reward).
    details : mapping
        Per-reward details and engine statistics (cache hits, stage seconds).
    """

    params: AmgParams
    rewards: np.ndarray
    reward_names: tuple[str, ...]
    cost_s: float
    n_masks: tuple[int, ...] = ()
    per_image: tuple[np.ndarray, ...] = ()
    gt: Mapping[str, float] | None = None
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
            "gt": None if self.gt is None else {k: float(v) for k, v in self.gt.items()},
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


# One engine per (model, device) per process: every problem on the same model shares its caches,
# which is exact (the engine equals AMG) and makes benchmark suites far cheaper.
_ENGINES: dict[tuple[str, str], Any] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(model: str | Path, *, device: str = "auto") -> Any:
    """The process-wide :class:`~samstar_env.engine.MaskEngine` for ``model`` (loaded once)."""
    from samstar_env.engine import MaskEngine
    from samstar_env.models import load_sam

    key = (str(model), device)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = MaskEngine(load_sam(model, device=device))
        return _ENGINES[key]


class TuningProblem:
    """Evaluate AMG parameters on a :class:`Task`.

    Parameters
    ----------
    task : Task
        Images, prior, rewards, search space and model.
    gt_metrics : bool
        Also compute ground-truth metrics where images carry labels (for benchmarks; never a reward).
    engine : MaskEngine, optional
        Engine to use; default: the process-wide shared engine of ``task.model``. Not pickled: a
        problem sent to another process rebuilds its engine there.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Examples
    --------
    >>> problem = TuningProblem(make_task("perovskite"))          # doctest: +SKIP
    >>> ev = problem.evaluate(problem.search_space.base)          # doctest: +SKIP
    >>> dict(zip(ev.reward_names, ev.rewards))                    # doctest: +SKIP
    """

    def __init__(self, task: Task, *, gt_metrics: bool = False, engine: Any | None = None, device: str = "auto") -> None:
        self.task = task
        self.gt_metrics = bool(gt_metrics)
        self.device = device
        self._engine = engine

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
    def engine(self) -> Any:
        """The mask engine (created on first use)."""
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
        suite = self.task.rewards
        t0 = time.perf_counter()
        vectors, n_masks, gts, details = [], [], [], []
        for im in imgs:
            masks = self.engine.generate(im, params)
            vec, det = suite.evaluate_with_details(masks, im, self.task.prior, params=params)
            vectors.append(np.asarray(vec, np.float32))
            n_masks.append(len(masks))
            details.append(det)
            if self.gt_metrics and im.labels is not None:
                from samstar_env.benchmarks.metrics import gt_metrics

                gts.append(gt_metrics(masks, im))
        cost = time.perf_counter() - t0
        gt = {k: float(np.mean([g[k] for g in gts])) for k in gts[0]} if gts else None
        return Evaluation(
            params=params,
            rewards=np.mean(vectors, axis=0).astype(np.float32),
            reward_names=self.reward_names,
            cost_s=cost,
            n_masks=tuple(n_masks),
            per_image=tuple(vectors),
            gt=gt,
            details={"rewards": details, "engine": dict(getattr(self.engine, "stats", {}) or {})},
        )

    def evaluate_action(self, action: np.ndarray) -> Evaluation:
        """Decode ``action`` in ``[-1, 1]^d`` through the search space and evaluate it."""
        return self.evaluate(self.search_space.decode(action))

    # -- pickling (Dask, vector envs) --------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"] = None
        return state
