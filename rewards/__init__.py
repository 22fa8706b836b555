"""Physics-guided, label-free rewards (installed as ``samstar_env.rewards``).

Every reward is a plain function ``f(masks, image, prior, *, ...) -> float`` in [0, 1], higher is
better, computed WITHOUT ground truth. :class:`RewardSuite` turns an ordered list of them into the
environment's vector reward; :func:`preset` gives each task's suite; :func:`register_reward` adds
your own. Shared per-mask measurements live in :mod:`samstar_env.rewards.geometry` and are
computed once per MaskSet.
"""

from samstar_env.errors import RewardError
from samstar_env.rewards.boundary import boundary_contrast
from samstar_env.rewards.count import count_plausibility, expected_count
from samstar_env.rewards.coverage import CoverageTerms, coverage, coverage_terms
from samstar_env.rewards.duplicates import duplicate_free, redundant_masks
from samstar_env.rewards.geometry import MaskGeometry, image_features, mask_geometry
from samstar_env.rewards.latency import latency, predicted_cost
from samstar_env.rewards.overlap import overlap_fidelity
from samstar_env.rewards.populations import aggregate_coverage, small_particle_detection
from samstar_env.rewards.presets import PRESETS, configure_suite, preset, reward_options
from samstar_env.rewards.registry import (
    REWARDS_VERSION,
    RewardContext,
    get_reward,
    list_rewards,
    register_reward,
)
from samstar_env.rewards.shape import aspect_ratio, circularity, shape_fidelity, squareness
from samstar_env.rewards.size import size_distribution, size_window
from samstar_env.rewards.suite import RewardSuite

__all__ = [
    "PRESETS",
    "REWARDS_VERSION",
    "CoverageTerms",
    "MaskGeometry",
    "RewardContext",
    "RewardError",
    "RewardSuite",
    "aggregate_coverage",
    "aspect_ratio",
    "boundary_contrast",
    "circularity",
    "configure_suite",
    "count_plausibility",
    "coverage",
    "coverage_terms",
    "duplicate_free",
    "expected_count",
    "get_reward",
    "image_features",
    "latency",
    "list_rewards",
    "mask_geometry",
    "overlap_fidelity",
    "predicted_cost",
    "preset",
    "redundant_masks",
    "register_reward",
    "reward_options",
    "shape_fidelity",
    "size_distribution",
    "size_window",
    "small_particle_detection",
    "squareness",
]
