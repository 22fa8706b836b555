"""Overlap fidelity: touching and occluded particles recovered as separate, convex masks."""

from __future__ import annotations

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import mask_geometry, per_mask_mean
from samstar_env.rewards.registry import register_reward

# Inscribed-radius ratio of the ideal single particle of each shape class: a disk's largest
# inscribed circle IS its equivalent circle (1.0); a square's is sqrt(pi)/2 = 0.886 of it. For
# irregular particles we take the square's value, the more lenient of the two.
IDEAL_INSCRIBED_RATIO = {"sphere": 1.0, "cube": float(np.sqrt(np.pi) / 2.0), "irregular": float(np.sqrt(np.pi) / 2.0)}


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def overlap_scores(masks: MaskSet, prior: PhysicsPrior, *, solidity_range: tuple[float, float] = (0.82, 0.92),
                   inscribed_range: tuple[float, float] = (0.75, 0.90)) -> np.ndarray:
    """Per-mask single-particle score in [0, 1] (see :func:`overlap_fidelity`)."""
    g = mask_geometry(masks)
    ideal = IDEAL_INSCRIBED_RATIO[prior.shape]
    s_solid = _ramp(g.solidity, *solidity_range)
    s_inscr = _ramp(g.inscribed_ratio / ideal, *inscribed_range)
    # Merged pairs are elongated (1.5-2.3 for two equal disks, measured); single particles stay
    # within the prior's aspect_ratio_max. Zero at 1.25x that bound.
    ar_max = prior.aspect_ratio_max
    s_aspect = _ramp(-g.aspect_ratio, -1.25 * ar_max, -ar_max)
    return np.minimum(np.minimum(s_solid, s_inscr), s_aspect)


@register_reward("overlap_fidelity")
def overlap_fidelity(
    masks: MaskSet,
    image: Micrograph,
    prior: PhysicsPrior,
    *,
    solidity_range: tuple[float, float] = (0.82, 0.92),
    inscribed_range: tuple[float, float] = (0.75, 0.90),
    count_floor: float = 0.5,
) -> float:
    """Mean single-particle score of the masks: are touching or occluded particles kept apart?

    Physics: a nanoparticle's projection is convex (spheres, cubes). When SAM merges two touching
    or partly hidden particles (the dense-cluster failure the SAM* paper names first, and the
    perovskite finding: occluded particles must be recovered separately), the mask becomes either
    non-convex (a waist between the particles: solidity falls to about 0.87 for two touching disks)
    or too shallow for its area (two overlapping disks have a largest inscribed circle much smaller
    than their equivalent circle: ratio 0.72-0.75 for a touching pair, 0.80-0.83 when their
    centres are one radius apart, against >= 1.0 for a digitized disk), or elongated. Each mask scores

    ``s = min(ramp(solidity; 0.82, 0.92), ramp(inscribed_ratio / ideal; 0.75, 0.90),
    ramp(-aspect; -1.25 ar_max, -ar_max))``

    where ``ramp(x; a, b) = clip((x - a) / (b - a), 0, 1)`` and ``ideal`` is the ratio of a single
    particle of the prior's shape (1.0 sphere, 0.886 cube/irregular). The reward is the mean over
    masks, over at least ``count_floor`` times the expected particle count
    (``sum_i s_i / max(N, count_floor * N_log)``): a particle not returned at all is not one kept
    apart from its neighbours. Masks cut by the image border are skipped (their outline is not
    theirs), empty and background masks score 0, and no mask at all gives 0.

    Parameters
    ----------
    masks, image, prior
        The masks to judge, the micrograph (for the expected particle count) and the prior (its
        ``shape`` and size range).
    solidity_range, inscribed_range : (float, float)
        Ramps from 0 to 1; the upper ends sit below what digitized disks (radius >= 2 px) and
        rotated squares (side >= 20 px) reach (measured), so single particles are not penalized.
    count_floor : float
        Average over at least this many times the expected particle count, so that missed
        particles count as failures (see :func:`~samstar_env.rewards.geometry.per_mask_mean`; 0: plain mean).

    Returns
    -------
    float in [0, 1], higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> from samstar_env.data.micrograph import Micrograph, PhysicsPrior
    >>> img = Micrograph(np.zeros((64, 64), np.float32))
    >>> prior = PhysicsPrior((5.0, 40.0))
    >>> one = np.zeros((1, 64, 64), bool); one[(0, *disk((32, 32), 10))] = True
    >>> pair = one.copy(); pair[0] = False
    >>> pair[(0, *disk((32, 20), 10))] = True; pair[(0, *disk((32, 40), 10))] = True
    >>> overlap_fidelity(MaskSet.from_masks(one), img, prior)
    1.0
    >>> overlap_fidelity(MaskSet.from_masks(pair), img, prior) < 0.3
    True
    """
    if len(masks) == 0:
        return 0.0
    s = overlap_scores(masks, prior, solidity_range=solidity_range, inscribed_range=inscribed_range)
    return per_mask_mean(s, mask_geometry(masks), image, prior, skip_border=True, count_floor=count_floor)
