"""Background re-tuning (``--retune``): a short local search when the drift monitor flags a frame.

On a flagged frame a background thread runs a short local random search around the current
parameters on the most recent frames: ``retune_evals`` candidates drawn from a Gaussian (sigma 0.25
in the ``[-1, 1]`` action space of :class:`~samstar_env.params.ParamSpace`) over the *cheap*
parameters only (:data:`CHEAP_PARAMS`: IoU and stability thresholds and offset, the two NMS
thresholds, small-region area), which the engine replays from its cache of those frames in
milliseconds, so the burst costs about one decode per frame. The stream switches to the best
candidate (largest reward sum) among those that Pareto-dominate the current parameters on those
frames (>= on every reward, > on one; :func:`samstar_env.metrics.multiobjective.dominates`), logs
``params_switched`` and takes the new rewards as the tuned level. It is a local search rather than
``samstar_env.agents``' NSGA-II because a burst needs a handful of evaluations around one point, not
a population. Searching points_per_side or crops would cost a full decode per candidate per frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.metrics.multiobjective import dominates
from samstar_env.params import AmgParams, ParamSpace, Sam2AmgParams
from samstar_env.stream.drift import DriftMonitor

__all__ = ["CHEAP_PARAMS", "RetuneOutcome", "Retuner", "cheap_params"]

# Parameters a retune burst may change: each is a filter replayed from the engine's cache.
CHEAP_PARAMS: tuple[str, ...] = (
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "box_nms_thresh",
    "crop_nms_thresh",
    "min_mask_region_area",
)


def cheap_params(params: AmgParams) -> tuple[str, ...]:
    """The replayed parameters of ``params``' generator: SAM 2 adds ``mask_threshold`` (its grid values come
    from every decode) and drops ``min_mask_region_area`` (a decode of its own there, or nothing on a CPU).

    >>> "mask_threshold" in cheap_params(Sam2AmgParams()), "mask_threshold" in cheap_params(AmgParams())
    (True, False)
    """
    if isinstance(params, Sam2AmgParams):
        return (*(p for p in CHEAP_PARAMS if p != "min_mask_region_area"), "mask_threshold")
    return CHEAP_PARAMS


@dataclass(frozen=True)
class RetuneOutcome:
    """Result of one burst.

    Parameters
    ----------
    current : ndarray
        Mean reward vector of the parameters in use, on the burst's frames.
    best_params : AmgParams or None
        The chosen dominating candidate, or ``None`` when no candidate dominated.
    best_rewards : ndarray or None
        Its mean reward vector.
    n_evals : int
        Candidates evaluated.
    seconds : float
        Wall time of the burst.
    error : str or None
        Set when the burst failed (the stream keeps its parameters).
    """

    current: np.ndarray | None
    best_params: AmgParams | None
    best_rewards: np.ndarray | None
    n_evals: int
    seconds: float
    error: str | None = None


class Retuner:
    """Runs local random-search bursts in a background thread.

    Parameters
    ----------
    engine : MaskEngine
        Shared with the stream (thread-safe); the burst's frames stay in its cache.
    monitor : DriftMonitor
        Supplies the rewards and prior.
    n_evals : int
        Candidates per burst.
    sigma : float
        Gaussian step in action space.
    seed : int
        Seed of the candidate draws (burst ``k`` uses ``seed + k``).
    """

    def __init__(self, engine: Any, monitor: DriftMonitor, *, n_evals: int = 16, sigma: float = 0.25, seed: int = 0) -> None:
        self.engine = engine
        self.monitor = monitor
        self.n_evals = int(n_evals)
        self.sigma = float(sigma)
        self.seed = int(seed)
        self._bursts = 0
        self._thread: threading.Thread | None = None
        self._outcome: RetuneOutcome | None = None

    @property
    def running(self) -> bool:
        """Whether a burst is in progress."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, params: AmgParams, frames: Sequence[Micrograph]) -> bool:
        """Start a burst unless one is running; returns whether it started."""
        if self.running or not frames:
            return False
        self._outcome = None
        rng = np.random.default_rng(self.seed + self._bursts)
        self._bursts += 1
        self._thread = threading.Thread(target=self._run, args=(params, tuple(frames), rng), name="samstar-retune", daemon=True)
        self._thread.start()
        return True

    def take(self) -> RetuneOutcome | None:
        """The finished burst's outcome, once (``None`` while running or when none finished)."""
        if self.running:
            return None
        out, self._outcome = self._outcome, None
        return out

    def join(self, timeout: float | None = None) -> None:
        """Wait for a running burst."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _score(self, params: AmgParams, frames: Sequence[Micrograph]) -> np.ndarray:
        return np.mean([self.monitor.evaluate(self.engine.generate(f, params), f, params) for f in frames], axis=0)

    def _run(self, params: AmgParams, frames: tuple[Micrograph, ...], rng: np.random.Generator) -> None:
        t0 = time.perf_counter()
        try:
            space = ParamSpace.subset(cheap_params(params), base=params)
            x0 = space.encode(params).astype(np.float64)
            current = self._score(params, frames)
            best: tuple[float, AmgParams, np.ndarray] | None = None
            for _ in range(self.n_evals):
                cand = space.decode(np.clip(x0 + self.sigma * rng.standard_normal(space.dim), -1.0, 1.0))
                r = self._score(cand, frames)
                if dominates(r, current) and (best is None or r.sum() > best[0]):
                    best = (float(r.sum()), cand, r)
            self._outcome = RetuneOutcome(current, None if best is None else best[1], None if best is None else best[2], self.n_evals, time.perf_counter() - t0)
        except Exception as exc:  # a failed burst must never stop the stream
            self._outcome = RetuneOutcome(None, None, None, 0, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
