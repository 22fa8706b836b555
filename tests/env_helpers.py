"""The small environment setup shared by the env, wrapper and registration tests."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

import samstar_env  # noqa: F401  (registers the ids)
from samstar_env.data.synthetic import generate, prior
from samstar_env.params import AmgParams, Dimension, ParamSpace
from samstar_env.registration import CUSTOM_ID

SIZE = (96, 96)


def small_space() -> ParamSpace:
    """Two tiny point grids and thresholds low enough that the random model's few masks survive
    (so reward vectors are not all zeros)."""
    return ParamSpace(
        dimensions=(
            Dimension("points_per_side", "grid", choices=(2, 4)),
            Dimension("pred_iou_thresh", "float", 0.0, 0.9),
            Dimension("stability_score_thresh", "float", 0.0, 0.9),
            Dimension("box_nms_thresh", "float", 0.3, 0.95),
        ),
        base=AmgParams(points_per_side=4),
    )


def make(env_id: str, model, *, custom_seeds: Sequence[int] = (0, 1), **kw) -> gym.Env:
    """``gym.make`` with the small test setup injected through kwargs."""
    kw = {"model": model, "space": small_space(), "budget": 4, **kw}
    if env_id == CUSTOM_ID:
        kw.setdefault("images", [generate("perovskite", s, size=SIZE) for s in custom_seeds])
        kw.setdefault("prior", prior("perovskite"))
    else:
        kw.setdefault("size", SIZE)
    return gym.make(env_id, **kw)
