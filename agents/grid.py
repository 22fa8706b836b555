"""micro-sam-style grid search over ``pred_iou_thresh`` x ``stability_score_thresh``.

micro-sam (``micro_sam.evaluation.instance_segmentation.default_grid_search_values_amg``) tunes AMG
by a grid over the two filter thresholds with everything else at its default: pred_iou_thresh in
[0.6, 0.9] and stability_score_thresh in [0.6, 0.95], both in steps of 0.025 (13 x 15 = 195 points).
Here the other tuned dimensions stay at the search space's ``base`` (SAM's defaults unless the task
says otherwise), encoded into actions through the ParamSpace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samstar_env.agents.base import Agent
from samstar_env.agents.registry import register_agent
from samstar_env.type_aliases import ProblemLike

IOU_RANGE = (0.6, 0.9)
STABILITY_RANGE = (0.6, 0.95)
STEP = 0.025


def grid_shape(budget: int, *, full: tuple[int, int]) -> tuple[int, int]:
    """The grid (n_iou, n_stability) that fits ``budget``: the full grid, or a coarser one over the
    same ranges with the same aspect and the most points <= budget."""
    if budget >= full[0] * full[1]:
        return full
    s = np.sqrt(budget / (full[0] * full[1]))
    a, b = max(1, int(full[0] * s)), max(1, int(full[1] * s))
    # Grow the axis that keeps the grid closest to the full aspect while it still fits.
    while True:
        grow_b = (a * (b + 1) <= budget) and (b + 1) <= full[1]
        grow_a = ((a + 1) * b <= budget) and (a + 1) <= full[0]
        if grow_b and (not grow_a or b / full[1] <= a / full[0]):
            b += 1
        elif grow_a:
            a += 1
        else:
            return a, b


@register_agent("grid")
class GridAgent(Agent):
    """Grid search over the two AMG filter thresholds (seed-independent).

    Parameters
    ----------
    iou_range, stability_range : (float, float)
        Grid ranges (micro-sam's defaults); clipped to the search space's bounds.
    step : float
        Grid step of the full grid (0.025 as in micro-sam). When the budget is smaller than the full
        grid, a coarser grid over the same ranges is used (see :func:`grid_shape`); when larger, the
        run ends after the grid (fewer evaluations than the budget).
    batch_size : int
        Actions asked at once (for parallel executors).
    """

    def __init__(
        self,
        *,
        iou_range: tuple[float, float] = IOU_RANGE,
        stability_range: tuple[float, float] = STABILITY_RANGE,
        step: float = STEP,
        batch_size: int = 16,
    ) -> None:
        super().__init__(iou_range=tuple(iou_range), stability_range=tuple(stability_range), step=step, batch_size=batch_size)
        self._ranges = (tuple(map(float, iou_range)), tuple(map(float, stability_range)))
        self._step = float(step)
        self._batch = int(batch_size)
        self._actions = np.zeros((0, 0))
        self._next = 0

    @property
    def batch_size(self) -> int:
        return self._batch

    def _setup(self, problem: ProblemLike) -> None:
        space = self.space
        assert space is not None
        names = space.names
        for need in ("pred_iou_thresh", "stability_score_thresh"):
            if need not in names:
                raise ValueError(f"grid agent: the search space has no {need!r} dimension (it has {list(names)})")
        full = tuple(int(round((hi - lo) / self._step)) + 1 for lo, hi in self._ranges)
        n_iou, n_stab = grid_shape(self.budget, full=(full[0], full[1]))
        dims = {d.name: d for d in space.dimensions}
        axes = []
        for name, (lo, hi), n in zip(("pred_iou_thresh", "stability_score_thresh"), self._ranges, (n_iou, n_stab), strict=True):
            d = dims[name]
            axes.append(np.clip(np.linspace(lo, hi, n), d.low, d.high))
        base = space.encode(space.base).astype(np.float64)
        i_iou, i_stab = names.index("pred_iou_thresh"), names.index("stability_score_thresh")
        rows = []
        for v_iou in axes[0]:
            for v_stab in axes[1]:
                a = base.copy()
                a[i_iou] = dims["pred_iou_thresh"].encode(v_iou)
                a[i_stab] = dims["stability_score_thresh"].encode(v_stab)
                rows.append(a)
        self._actions = np.stack(rows)
        self._next = 0

    def ask(self, n: int) -> np.ndarray:
        out = self._actions[self._next : self._next + n]
        self._next += len(out)
        return out

    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        """A grid ignores rewards."""
