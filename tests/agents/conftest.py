"""Agent-test fixtures: a cheap toy problem with TuningProblem's interface, and a small real task."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.params import ParamSpace


class ToyEvaluation:
    def __init__(self, params, rewards, names):
        self.params, self.rewards, self.reward_names = params, rewards, names
        self.cost_s, self.gt, self.n_masks = 0.0, None, ()


class ToyProblem:
    """Two rewards in [0, 1] with a known trade-off: a = iou, b = 1 - iou, both penalized for
    stability away from 0.9 and box_nms away from 0.5 (so the true front is a + b = 1)."""

    search_space = ParamSpace.subset(["pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "points_per_side"])
    reward_names = ("a", "b")

    def evaluate(self, p):
        x = (p.pred_iou_thresh - 0.3) / 0.68
        pen = 4 * (p.stability_score_thresh - 0.9) ** 2 + 4 * (p.box_nms_thresh - 0.5) ** 2
        r = np.clip([x - pen, 1 - x - pen], 0, 1).astype(np.float32)
        return ToyEvaluation(p, r, self.reward_names)


@pytest.fixture
def toy():
    return ToyProblem()


@pytest.fixture(scope="session")
def small_task(random_sam):
    """A 96-px perovskite image, the random 64-px SAM, and a 3-parameter space (cheap filters only)."""
    from samstar_env.task import make_task

    space = ParamSpace.subset(
        ["pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"],
        base=ParamSpace.default().base.replace(points_per_side=8),
    )
    return make_task("perovskite", size=(96, 96), n_test_images=0, model=random_sam, space=space)
