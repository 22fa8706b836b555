"""The drift monitor: flag frames whose physics rewards fall below the level of in-distribution frames.

Per frame, the physics rewards of the task (``--task``, else a ``task`` key of the params file or of
the ``result.json`` that ``samstar tune`` writes beside it, else the policy's task) are computed on the
frame's masks, timed separately from segmentation (``rewards_s``) and optional (``--no-drift``). A
frame is flagged when any reward falls more than ``drift_tol`` (absolute; rewards are in [0, 1]) below
the level. The level comes from held-out frames: the mean of the first ``baseline_frames`` frames
(never flagged themselves), or a policy's rewards on its held-out images. The rewards a params file
records (``{"rewards": {name: value}}`` or ``"rewards"`` + ``"reward_names"`` lists) are the tuned
image's optimized values, biased high (a tune run's level flagged 3 of 3 new frames of the same
generator), so they are the level only when asked for (``--drift-level params``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.errors import InputError
from samstar_env.params import AmgParams

__all__ = ["DriftCheck", "DriftMonitor", "make_monitor", "read_params_file"]


@dataclass(frozen=True)
class DriftCheck:
    """The drift monitor's verdict on one frame.

    Parameters
    ----------
    rewards : ndarray of float
        The frame's reward vector.
    level : ndarray of float or None
        The tuned level it was compared with (``None`` while the baseline is being collected).
    flagged : bool
        Whether any reward fell more than the tolerance below its level.
    below : tuple of str
        Names of the rewards that did.
    seconds : float
        Time spent computing the rewards.
    """

    rewards: np.ndarray
    level: np.ndarray | None
    flagged: bool
    below: tuple[str, ...]
    seconds: float


class DriftMonitor:
    """Flags frames whose physics rewards fall below the tuned level.

    Parameters
    ----------
    suite : RewardSuite-like
        Has ``names`` and ``evaluate(masks, image, prior, params=...) -> vector``.
    prior : PhysicsPrior
        The task's prior.
    tuned_level : mapping of str to float, optional
        A given level (by name): a policy's held-out rewards, or a params file's; missing names fall
        back to the running baseline.
    baseline_frames : int
        Frames averaged into the level when ``tuned_level`` does not give it.
    tolerance : float
        Absolute drop that flags a frame.
    level_source : str, optional
        Where ``tuned_level`` came from, for the journal (default ``"params-file"``).
    """

    def __init__(self, suite: Any, prior: Any, *, tuned_level: Mapping[str, float] | None = None, baseline_frames: int = 5,
                 tolerance: float = 0.1, level_source: str | None = None) -> None:
        if baseline_frames < 1:
            raise InputError(f"baseline_frames must be >= 1, got {baseline_frames}")
        self.suite = suite
        self.prior = prior
        self.names: tuple[str, ...] = tuple(suite.names)
        self.tolerance = float(tolerance)
        self.baseline_frames = int(baseline_frames)
        given = dict(tuned_level or {})
        self._fixed = np.array([float(given.get(n, math.nan)) for n in self.names])
        self._history: list[np.ndarray] = []
        given_name = level_source or "params-file"
        self.level_source = given_name if np.isfinite(self._fixed).all() else (f"partly {given_name}" if np.isfinite(self._fixed).any() else "baseline")

    @property
    def level(self) -> np.ndarray | None:
        """Current tuned level (``None`` until the baseline is complete, where one is needed)."""
        if np.isfinite(self._fixed).all():
            return self._fixed
        if len(self._history) < self.baseline_frames:
            return None
        base = np.mean(self._history[: self.baseline_frames], axis=0)
        return np.where(np.isfinite(self._fixed), self._fixed, base)

    def evaluate(self, masks: Any, micrograph: Micrograph, params: AmgParams) -> np.ndarray:
        """The reward vector of one frame."""
        return np.asarray(self.suite.evaluate(masks, micrograph, self.prior, params=params), np.float64).reshape(-1)

    def check(self, masks: Any, micrograph: Micrograph, params: AmgParams) -> DriftCheck:
        """Compute the frame's rewards and compare them with the level."""
        t0 = time.perf_counter()
        r = self.evaluate(masks, micrograph, params)
        sec = time.perf_counter() - t0
        level = self.level
        if level is None:
            self._history.append(r)
            return DriftCheck(r, None, False, (), sec)
        below = tuple(n for n, v, lv in zip(self.names, r, level, strict=True) if not v >= lv - self.tolerance)
        return DriftCheck(r, level, bool(below), below, sec)

    def reset_level(self, level: np.ndarray) -> None:
        """Adopt a new tuned level (after switching parameters)."""
        self._fixed = np.asarray(level, np.float64).copy()
        self.level_source = "retune"


def make_monitor(task: str, *, tuned_level: Mapping[str, float] | None = None, baseline_frames: int = 5, tolerance: float = 0.1,
                 level_source: str | None = None) -> DriftMonitor:
    """A drift monitor with the task's reward preset and prior."""
    from samstar_env.data.synthetic import prior
    from samstar_env.rewards import preset

    return DriftMonitor(preset(task), prior(task), tuned_level=tuned_level, baseline_frames=baseline_frames, tolerance=tolerance,
                        level_source=level_source)


def read_params_file(path: str | Path) -> tuple[AmgParams, dict[str, float], str | None]:
    """Parameters, the rewards recorded at tuning time (by name; may be empty) and the task name."""
    params = AmgParams.from_json(str(path))
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    level: dict[str, float] = {}
    task = None
    if isinstance(data, dict):
        task = data.get("task") if isinstance(data.get("task"), str) else None
        r = data.get("rewards")
        if isinstance(r, dict):
            level = {str(k): float(v) for k, v in r.items() if isinstance(v, (int, float))}
        elif isinstance(r, list) and isinstance(data.get("reward_names"), list) and len(r) == len(data["reward_names"]):
            level = {str(k): float(v) for k, v in zip(data["reward_names"], r, strict=True)}
    sibling = Path(path).with_name("result.json")  # `samstar tune` records the task there
    if task is None and sibling.is_file():
        try:
            t = json.loads(sibling.read_text(encoding="utf-8")).get("task")
            task = t if isinstance(t, str) else None
        except (json.JSONDecodeError, AttributeError):
            task = None
    return params, level, task
