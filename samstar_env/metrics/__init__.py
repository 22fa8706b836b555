"""Judging with ground truth or across objectives (layer 2, beside the label-free rewards).

- :mod:`~samstar_env.metrics.ground_truth`: F1, mean segmentation accuracy, splits, merges, size
  distance and occluded recall of a :class:`~samstar_env.engine.maskset.MaskSet` against labels;
- :mod:`~samstar_env.metrics.multiobjective`: Pareto dominance, non-dominated sorting, hypervolume,
  IGD+ and anytime curves over reward vectors.

They sit below the problem so that ``problem``, ``agents``, ``tune`` and ``benchmarks`` all judge with
the same code and none of them reaches up into another.
"""

from samstar_env.metrics.ground_truth import (
    IOU_THRESHOLDS,
    Matching,
    Overlaps,
    count_error,
    gt_metrics,
    match,
    mean_segmentation_accuracy,
    merge_rate,
    occluded_fractions,
    occluded_recall,
    over_segmentation_rate,
    overlaps,
    size_wasserstein,
)
from samstar_env.metrics.multiobjective import (
    anytime_hypervolume,
    dominates,
    evaluations_to_reach,
    hypervolume,
    igd_plus,
    non_dominated,
    to_losses,
)

__all__ = [
    "IOU_THRESHOLDS",
    "Matching",
    "Overlaps",
    "anytime_hypervolume",
    "count_error",
    "dominates",
    "evaluations_to_reach",
    "gt_metrics",
    "hypervolume",
    "igd_plus",
    "match",
    "mean_segmentation_accuracy",
    "merge_rate",
    "non_dominated",
    "occluded_fractions",
    "occluded_recall",
    "over_segmentation_rate",
    "overlaps",
    "size_wasserstein",
    "to_losses",
]
