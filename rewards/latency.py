"""Latency: the predicted decoder cost of the AMG parameters (for real-time trade-offs)."""

from __future__ import annotations

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards.registry import register_reward

# Measured (DESIGN.md, 2 CPU cores, samstar-tiny, 512^2): one image embedding 0.03 s, the mask
# decoder 7.6 s for 3,072 prompts, i.e. 2.5 ms per prompt. One crop's embedding therefore costs
# about as much as 12 prompts.
ENCODER_COST_IN_PROMPTS = 12.0

#: Cheapest configuration of the default ParamSpace: 8x8 prompts, no crop layers.
MIN_COST = 8 * 8 + ENCODER_COST_IN_PROMPTS
#: Dearest configuration of the default ParamSpace: 64x64 prompts on 1 + 4 + 16 crops.
MAX_COST = 64 * 64 * (1 + 4 + 16) + ENCODER_COST_IN_PROMPTS * (1 + 4 + 16)


def predicted_cost(params: AmgParams) -> float:
    """Prompt-equivalents AMG decodes for ``params``.

    Crop layer i has ``(2**i)**2`` crops (layer 0 is the whole image), each prompted with
    ``(points_per_side / downscale**i)**2`` points (or the explicit ``point_grids[i]``); each crop
    also costs one image embedding (``ENCODER_COST_IN_PROMPTS``).

    Examples
    --------
    >>> predicted_cost(AmgParams(points_per_side=32))
    1036.0
    >>> predicted_cost(AmgParams(points_per_side=32, crop_n_layers=1, crop_n_points_downscale_factor=2))
    2108.0
    """
    cost = 0.0
    for layer in range(params.crop_n_layers + 1):
        n_crops = (2**layer) ** 2
        if params.point_grids is not None:
            n_points = len(params.point_grids[layer])
        else:
            assert params.points_per_side is not None
            n_points = int(params.points_per_side / params.crop_n_points_downscale_factor**layer) ** 2
        cost += n_crops * (n_points + ENCODER_COST_IN_PROMPTS)
    return float(cost)


@register_reward("latency")
def latency(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, params: AmgParams | None = None) -> float:
    """One minus the normalized log decoder cost of the parameters that made the masks.

    Physics of the machine, not the sample: on a CPU with a small SAM the mask decoder, not the
    encoder, dominates (DESIGN.md: 7.6 s of a 10.5 s AMG call at 32x32 prompts), and its cost is
    linear in the prompts decoded, summed over crops. For live (streaming) microscopy the tuner must
    trade quality against this cost. On a log scale, between the cheapest and dearest settings of
    the default search space:

    ``latency = clip(1 - log(cost / MIN_COST) / log(MAX_COST / MIN_COST), 0, 1)``

    It depends only on ``params`` (so, unlike the other rewards, an empty MaskSet does not score 0).
    ``params`` comes from the :class:`RewardContext`; without it the reward cannot be computed and
    raises ``ValueError`` (the suite reports it as a :class:`RewardError`).

    Examples
    --------
    >>> import numpy as np
    >>> img, prior = Micrograph(np.zeros((8, 8), np.float32)), PhysicsPrior((5.0, 40.0))
    >>> ms = MaskSet.empty((8, 8))
    >>> latency(ms, img, prior, params=AmgParams(points_per_side=8))
    1.0
    >>> round(latency(ms, img, prior, params=AmgParams(points_per_side=32)), 3)
    0.629
    """
    if params is None:
        raise ValueError("latency needs the AMG parameters: pass params=AmgParams(...) (RewardSuite.evaluate(..., params=...))")
    cost = predicted_cost(params)
    return float(np.clip(1.0 - np.log(cost / MIN_COST) / np.log(MAX_COST / MIN_COST), 0.0, 1.0))
