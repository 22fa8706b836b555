"""TuningResult: every evaluation of a tuning run, its Pareto front and the operating-point rules.

A result is a value: the trials in evaluation order (action, decoded parameters, reward vector,
cost, optional ground-truth metrics), the reward names, who produced it (agent, options, seed) and
where (task, search space). The non-dominated set comes from pymoo's ``NonDominatedSorting`` through
:mod:`samstar_env.metrics.multiobjective`, so the front here and the benchmark metrics can never
disagree.

Rewards are higher-is-better everywhere in this module; nothing here flips signs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.jsonutil import to_jsonable
from samstar_env.params import AmgParams

RESULT_FORMAT = "samstar-tuning-result/1"

# Named priorities: reward name -> weight (names absent from a result are ignored, the rest are
# renormalized). They encode the two operating points the SAM* paper reads off its AuCo front —
# detect every small particle vs. keep large aggregates whole — in terms of the reward names the
# presets use. A reward name is itself a priority too ("maximize this reward first").
PRIORITIES: dict[str, dict[str, float]] = {
    "small_particles": {"count": 2.0, "size": 2.0, "small": 3.0, "coverage": 1.0, "overlap": 0.5, "shape": 0.5},
    "large_aggregates": {"large": 3.0, "aggregate": 3.0, "coverage": 2.0, "oversegmentation": 2.0, "overlap": 1.0},
    "balanced": {},
}


def _gt_value(v: Any) -> Any:
    """A ground-truth metric as JSON: numbers as float; labels (``size_unit``) and undefined (None) as they are."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return float(v)
    return v


@dataclass(frozen=True, eq=False)
class Trial:
    """One evaluation.

    Parameters
    ----------
    index : int
        Position in evaluation order (0-based).
    action : ndarray of float64, shape (d,)
        The agent's proposal in ``[-1, 1]^d`` (decoded by the search space into ``params``).
    params : AmgParams
        The evaluated parameters.
    rewards : ndarray of float32, shape (k,)
        Reward vector, higher is better.
    cost_s : float
        Wall-clock seconds of the evaluation.
    gt : mapping or None
        Ground-truth metrics (benchmarks only; never seen by the agent).
    n_masks : tuple of int
        Masks produced on each image.
    """

    index: int
    action: np.ndarray
    params: AmgParams
    rewards: np.ndarray
    cost_s: float
    gt: Mapping[str, float] | None = None
    n_masks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", np.asarray(self.action, np.float64).reshape(-1))
        object.__setattr__(self, "rewards", np.asarray(self.rewards, np.float32).reshape(-1))
        object.__setattr__(self, "n_masks", tuple(int(n) for n in self.n_masks))

    @classmethod
    def from_evaluation(cls, index: int, action: np.ndarray, evaluation: Any) -> Trial:
        """Build from a :class:`~samstar_env.problem.Evaluation` (or any object with its fields)."""
        return cls(
            index=int(index),
            action=action,
            params=evaluation.params,
            rewards=evaluation.rewards,
            cost_s=float(evaluation.cost_s),
            gt=None if getattr(evaluation, "gt", None) is None else dict(evaluation.gt),
            n_masks=tuple(getattr(evaluation, "n_masks", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict. Floats are written with ``repr`` precision, so a round trip is exact."""
        return {
            "index": self.index,
            "action": [float(v) for v in self.action],
            "params": self.params.to_dict(),
            "rewards": [float(v) for v in self.rewards],
            "cost_s": float(self.cost_s),
            "gt": None if self.gt is None else {k: _gt_value(v) for k, v in self.gt.items()},
            "n_masks": list(self.n_masks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        """Inverse of :meth:`to_dict`."""
        return cls(
            index=int(data["index"]),
            action=np.asarray(data["action"], np.float64),
            params=AmgParams.from_dict(data["params"]),
            rewards=np.asarray(data["rewards"], np.float32),
            cost_s=float(data["cost_s"]),
            gt=None if data.get("gt") is None else dict(data["gt"]),
            n_masks=tuple(data.get("n_masks", ())),
        )

    def same_as(self, other: Trial) -> bool:
        """Same action, parameters and rewards (cost is wall time and never compared)."""
        return (
            self.index == other.index
            and np.array_equal(self.action, other.action)
            and self.params == other.params
            and np.array_equal(self.rewards, other.rewards)
        )


@dataclass(frozen=True)
class OperatingPoint:
    """A chosen trial and the rule that chose it (written to ``best_params.json``)."""

    rule: str
    trial: Trial
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, reward_names: Sequence[str]) -> dict[str, Any]:
        """The ``best_params.json`` layout: ``params`` (readable by ``AmgParams.from_json``) + provenance."""
        return {
            "params": self.trial.params.to_dict(),
            "rule": self.rule,
            "rule_detail": dict(self.detail),
            "trial_index": self.trial.index,
            "rewards": {n: float(v) for n, v in zip(reward_names, self.trial.rewards, strict=True)},
        }


@dataclass(frozen=True, eq=False)
class TuningResult:
    """All evaluations of one tuning run and its non-dominated set.

    Parameters
    ----------
    agent : str
        Registered agent name.
    seed : int
        The run's seed.
    reward_names : tuple of str
        Objective names (all maximized), in reward-vector order.
    trials : tuple of Trial
        Every evaluation, in order.
    task : str, optional
        Task name.
    budget : int, optional
        The evaluation budget the run was given.
    agent_options : mapping
        The agent's constructor options (for reproduction).
    space : list of dict
        ``ParamSpace.describe()`` of the search space.
    metadata : mapping
        Anything else (timings, versions, the amortized policy's path, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from samstar_env.params import AmgParams
    >>> t = [Trial(i, np.zeros(1), AmgParams(), r, 0.0) for i, r in enumerate([[1, 0], [0, 1], [0.2, 0.2], [0.1, 0]])]
    >>> res = TuningResult(agent="demo", seed=0, reward_names=("a", "b"), trials=tuple(t))
    >>> res.front_indices.tolist()  # (0.1, 0) is dominated by (1, 0); (0.2, 0.2) by neither corner
    [0, 1, 2]
    """

    agent: str
    seed: int
    reward_names: tuple[str, ...]
    trials: tuple[Trial, ...]
    task: str | None = None
    budget: int | None = None
    agent_options: Mapping[str, Any] = field(default_factory=dict)
    space: Sequence[Mapping[str, Any]] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward_names", tuple(self.reward_names))
        object.__setattr__(self, "trials", tuple(self.trials))
        k = len(self.reward_names)
        for t in self.trials:
            if t.rewards.shape != (k,):
                raise ValueError(f"TuningResult: trial {t.index} has {t.rewards.shape[0]} rewards; expected {k} {self.reward_names}")

    # -- arrays and the front ----------------------------------------------------------------
    @property
    def rewards(self) -> np.ndarray:
        """(n, k) float32 reward matrix in evaluation order."""
        return np.stack([t.rewards for t in self.trials]) if self.trials else np.zeros((0, len(self.reward_names)), np.float32)

    @property
    def costs_s(self) -> np.ndarray:
        """Seconds per evaluation."""
        return np.array([t.cost_s for t in self.trials], np.float64)

    @property
    def front_indices(self) -> np.ndarray:
        """Indices of the non-dominated trials (pymoo ``NonDominatedSorting``), ascending.

        Duplicated reward vectors are all non-dominated (none strictly dominates the other).
        """
        from samstar_env.metrics.multiobjective import non_dominated

        return non_dominated(self.rewards) if self.trials else np.zeros(0, int)

    @property
    def front(self) -> tuple[Trial, ...]:
        """The non-dominated trials, in evaluation order."""
        return tuple(self.trials[i] for i in self.front_indices)

    def hypervolume(self) -> float:
        """Hypervolume of all evaluations with the reference point at reward 0 (see ``samstar_env.metrics``)."""
        from samstar_env.metrics.multiobjective import hypervolume

        return hypervolume(self.rewards) if self.trials else 0.0

    def best(self, reward: str) -> Trial:
        """The trial with the highest value of one reward (first one on ties)."""
        j = self._reward_index(reward)
        return self.trials[int(np.argmax(self.rewards[:, j]))]

    # -- operating points --------------------------------------------------------------------
    def by_weights(self, weights: Mapping[str, float] | Sequence[float]) -> OperatingPoint:
        """The front member maximizing the weighted sum of rewards (first one on ties).

        ``weights`` is a sequence in reward order or a mapping name -> weight (missing names weigh 0).
        """
        w = self._weights(weights)
        front = self.front_indices
        self._need_trials()
        scores = self.rewards[front].astype(np.float64) @ w
        i = int(front[int(np.argmax(scores))])
        return OperatingPoint("weights", self.trials[i], {"weights": dict(zip(self.reward_names, map(float, w), strict=True))})

    def knee(self) -> OperatingPoint:
        """The knee of the front: the best compromise, where improving any reward costs most in others.

        Method: each reward is normalized over the front to [0, 1] (front minimum -> 0, maximum -> 1;
        a reward constant over the front is dropped). pymoo's ``HighTradeoffPoints`` (Rachmawati &
        Srinivasan 2009: the least improvement per unit deterioration to a neighbour, with outliers of
        that trade-off flagged as knees) proposes candidates; among them, or among the whole front when
        it flags none (small or smoothly convex fronts), the point nearest the front's ideal point
        (all normalized rewards 1; Euclidean distance) is the knee. Ties go to the earlier trial.
        """
        self._need_trials()
        front = self.front_indices
        if len(front) == 1:
            return OperatingPoint("knee", self.trials[int(front[0])], {"method": "single front member"})
        r = self.rewards[front].astype(np.float64)
        lo, hi = r.min(axis=0), r.max(axis=0)
        keep = hi > lo
        if not keep.any():
            return OperatingPoint("knee", self.trials[int(front[0])], {"method": "all front members equal"})
        z = (r[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
        candidates = np.arange(len(front))
        method = "nearest to ideal (no high-trade-off point flagged)"
        if len(front) >= 3:
            try:
                from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

                # pymoo's decision making minimizes: normalized losses are 1 - z (a reparametrization of
                # the same front, not a second sign convention: z is already in [0, 1]).
                flagged = HighTradeoffPoints().do(1.0 - z)
            except Exception:  # noqa: BLE001 - degenerate neighbourhoods on tiny fronts; fall back
                flagged = None
            if flagged is not None and len(np.atleast_1d(flagged)):
                candidates = np.sort(np.atleast_1d(np.asarray(flagged, int)))
                method = "HighTradeoffPoints, then nearest to ideal"
        dist = np.linalg.norm(1.0 - z[candidates], axis=1)
        i = int(front[int(candidates[int(np.argmin(dist))])])
        return OperatingPoint("knee", self.trials[i], {"method": method})

    def by_priority(self, name: str) -> OperatingPoint:
        """An operating point by a named priority.

        ``knee`` -> :meth:`knee`; a reward name -> the front member best in that reward (ties broken
        by the sum of the others); a key of :data:`PRIORITIES` -> :meth:`by_weights` with its weights
        (reward names containing a key get its weight; ``balanced`` = equal weights).
        """
        self._need_trials()
        if name == "knee":
            return self.knee()
        if name in self.reward_names:
            j = self._reward_index(name)
            front = self.front_indices
            r = self.rewards[front].astype(np.float64)
            order = np.lexsort((-(r.sum(axis=1) - r[:, j]), -r[:, j]))
            return OperatingPoint(f"priority:{name}", self.trials[int(front[order[0]])], {"maximize": name})
        if name not in PRIORITIES:
            raise ValueError(
                f"unknown priority {name!r}; expected 'knee', a reward name {list(self.reward_names)} "
                f"or one of {sorted(PRIORITIES)}"
            )
        w = np.array([sum(v for key, v in PRIORITIES[name].items() if key in rn) for rn in self.reward_names], float)
        if not w.any():
            w = np.ones(len(self.reward_names))
        op = self.by_weights(w)
        return OperatingPoint(f"priority:{name}", op.trial, op.detail)

    def pick(self, rule: str | Mapping[str, float]) -> OperatingPoint:
        """Dispatch: a mapping -> weights; ``"knee"``, a reward or a priority name -> :meth:`by_priority`."""
        if isinstance(rule, Mapping):
            return self.by_weights(rule)
        return self.by_priority(rule)

    # -- serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the front is recomputed on load; it is stored for readers of the file)."""
        return {
            "format": RESULT_FORMAT,
            "agent": self.agent,
            "seed": int(self.seed),
            "task": self.task,
            "budget": self.budget,
            "reward_names": list(self.reward_names),
            # Options and metadata may hold anything: other objects, NaN and infinity become strings.
            "agent_options": to_jsonable(dict(self.agent_options), non_finite="str", fallback=str),
            "space": [dict(d) for d in self.space],
            "metadata": to_jsonable(dict(self.metadata), non_finite="str", fallback=str),
            "front": [int(i) for i in self.front_indices],
            "trials": [t.to_dict() for t in self.trials],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningResult:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != RESULT_FORMAT:
            raise ValueError(f"not a samstar tuning result: format {data.get('format')!r}, expected {RESULT_FORMAT!r}")
        return cls(
            agent=data["agent"],
            seed=int(data["seed"]),
            reward_names=tuple(data["reward_names"]),
            trials=tuple(Trial.from_dict(t) for t in data["trials"]),
            task=data.get("task"),
            budget=data.get("budget"),
            agent_options=dict(data.get("agent_options", {})),
            space=tuple(data.get("space", ())),
            metadata=dict(data.get("metadata", {})),
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize (and write to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> TuningResult:
        """Read a result written by :meth:`to_json` (a path or the JSON text)."""
        s = str(path_or_text)
        text = s if s.lstrip().startswith("{") else Path(s).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def same_as(self, other: TuningResult) -> bool:
        """Same agent, seed, reward names and trials (actions, params, rewards; not wall times)."""
        return (
            self.agent == other.agent
            and self.seed == other.seed
            and self.reward_names == other.reward_names
            and len(self.trials) == len(other.trials)
            and all(a.same_as(b) for a, b in zip(self.trials, other.trials, strict=True))
        )

    # -- helpers -----------------------------------------------------------------------------
    def _reward_index(self, name: str) -> int:
        if name not in self.reward_names:
            raise ValueError(f"unknown reward {name!r}; this result has {list(self.reward_names)}")
        return self.reward_names.index(name)

    def _weights(self, weights: Mapping[str, float] | Sequence[float]) -> np.ndarray:
        if isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(self.reward_names))
            if unknown:
                raise ValueError(f"weights name unknown reward(s) {unknown}; expected some of {list(self.reward_names)}")
            w = np.array([float(weights.get(n, 0.0)) for n in self.reward_names])
        else:
            w = np.asarray(weights, np.float64).reshape(-1)
            if w.shape[0] != len(self.reward_names):
                raise ValueError(f"expected {len(self.reward_names)} weights {list(self.reward_names)}, got {w.shape[0]}")
        if not np.isfinite(w).all() or (w < 0).any() or not w.any():
            raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
        return w

    def _need_trials(self) -> None:
        if not self.trials:
            raise ValueError("this tuning result has no evaluations; no operating point can be chosen")
