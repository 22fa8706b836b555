"""Duplicate-free reward: nested masks, near-identical masks and background masks are redundant."""

from __future__ import annotations

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import mask_geometry, per_mask_mean
from samstar_env.rewards.registry import register_reward


def redundant_masks(masks: MaskSet, *, containment: float = 0.8) -> np.ndarray:
    """Boolean (N,): masks that are mostly inside another mask, or not particles at all.

    Mask j is redundant when some other mask i holds at least ``containment`` of j's pixels and
    i is larger (ties: the later mask in AMG order, i.e. the lower-ranked, is the redundant one).
    Empty and background masks are redundant too.
    """
    g = mask_geometry(masks)
    red = ~g.valid
    if g.n < 2:
        return red
    inter = g.intersections_px.tocoo()
    i, j, v = inter.row, inter.col, inter.data.astype(float)
    keep = (i != j) & g.valid[i] & g.valid[j]
    i, j, v = i[keep], j[keep], v[keep]
    a = g.area_px
    # j is contained in i and i is the bigger one (or equal and earlier).
    hit = (v >= containment * a[j]) & ((a[i] > a[j]) | ((a[i] == a[j]) & (i < j)))
    red = red.copy()
    red[j[hit]] = True
    return red


@register_reward("duplicate_free")
def duplicate_free(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, containment: float = 0.8,
                   count_floor: float = 0.5) -> float:
    """Fraction of masks that are not redundant: nested in, or nearly equal to, another mask.

    Physics: each particle is one object; SAM's multimask output and its grid of prompts often
    return the same particle several times (whole particle plus its halves; the same mask from two
    neighbouring prompts that box NMS failed to suppress) - the over-segmentation of ITO in the
    SAM* paper. Overlap is measured on pixels (SAM's masks may overlap, only boxes pass NMS):

    ``duplicate_free = (N - #{j : exists i, |m_i & m_j| >= c |m_j|, |m_i| >= |m_j|}) / max(N, count_floor * N_log)``

    with ``c = containment`` (0.8), counting empty and background masks (one mask over most of the
    frame is not a particle) as redundant, so a single full-frame mask scores 0; no mask gives 0.
    N_log is the label-free expected particle count: without that floor, keeping a single mask
    (nothing to duplicate) would be the optimum.

    Parameters
    ----------
    containment : float
        Share of a mask's pixels inside a larger mask that makes it redundant.
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
    >>> img, prior = Micrograph(np.zeros((64, 64), np.float32)), PhysicsPrior((5.0, 40.0))
    >>> m = np.zeros((3, 64, 64), bool)
    >>> m[(0, *disk((20, 20), 8))] = True
    >>> m[(1, *disk((45, 45), 8))] = True
    >>> m[(2, *disk((20, 20), 4))] = True          # nested in mask 0
    >>> round(duplicate_free(MaskSet.from_masks(m), img, prior), 3)
    0.667
    >>> duplicate_free(MaskSet.from_masks(m[:2]), img, prior)
    1.0
    """
    if len(masks) == 0:
        return 0.0
    # Empty and background masks are redundant, and per_mask_mean scores them 0 as well.
    unique = (~redundant_masks(masks, containment=containment)).astype(float)
    return per_mask_mean(unique, mask_geometry(masks), image, prior, skip_border=False, count_floor=count_floor)
