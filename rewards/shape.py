"""Shape rewards: circularity (spheres), squareness (cubes), aspect-ratio window, and a dispatcher."""

from __future__ import annotations

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import mask_geometry, per_mask_mean
from samstar_env.rewards.registry import register_reward

_DISK_RECT_FILL = np.pi / 4.0  # area of a disk over its bounding square
# Fill at which a mask counts as a full square. Real nanocubes have slightly truncated corners and
# digitization rounds them further: ground-truth cube masks of the synthetic perovskite task have a
# median fill of 0.88-0.90 (measured, seeds 0-1), rotated digitized squares (side >= 20 px)
# 0.89-0.96, digitized disks of radius 10-20 px 0.82-0.85.
_SQUARE_RECT_FILL = 0.90


@register_reward("circularity")
def circularity(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, count_floor: float = 0.5) -> float:
    """Mean circularity ``4 pi A / P**2`` of the masks, with the Crofton perimeter.

    Physics: spherical particles project to disks (circularity 1); a square ideally scores
    pi/4 = 0.785 (measured with the 4-direction Crofton estimate: 0.7-0.93 depending on its
    rotation, highest when axis-aligned), two merged touching disks about 0.5, ragged fragments less. The Crofton perimeter
    (``skimage.measure.perimeter_crofton``) is used because pixel-count perimeters overestimate
    the length of digitized curves by up to ~8% and so bias small particles low.

    Per mask ``c_i = min(1, 4 pi A_i / P_i**2)``; the reward is the mean over masks not cut by the
    image border, taken over at least ``count_floor`` times the expected number of such particles:
    ``sum_i c_i / max(N, count_floor * N_log)``; empty and background masks score 0; no mask gives 0.

    Parameters
    ----------
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
    >>> m = np.zeros((1, 64, 64), bool); m[(0, *disk((32, 32), 12))] = True
    >>> round(circularity(MaskSet.from_masks(m), img, prior), 1)
    1.0
    >>> sq = np.zeros((1, 64, 64), bool); sq[0, 20:44, 20:44] = True
    >>> round(circularity(MaskSet.from_masks(sq), img, prior), 2)
    0.9
    """
    if len(masks) == 0:
        return 0.0
    g = mask_geometry(masks)
    return per_mask_mean(g.circularity, g, image, prior, skip_border=True, count_floor=count_floor)


def squareness_scores(masks: MaskSet, prior: PhysicsPrior) -> np.ndarray:
    """Per-mask squareness in [0, 1] (see :func:`squareness`)."""
    g = mask_geometry(masks)
    fill = np.clip((g.rect_fill - _DISK_RECT_FILL) / (_SQUARE_RECT_FILL - _DISK_RECT_FILL), 0.0, 1.0)
    sides = np.minimum(1.0, prior.aspect_ratio_max / np.maximum(g.rect_aspect, 1.0))
    return fill * sides


@register_reward("squareness")
def squareness(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, count_floor: float = 0.5) -> float:
    """Mean squareness of the masks: fill of the minimum-area rectangle, and its side ratio.

    Physics: cubic nanocrystals (perovskite CsPbBr3, cubic oxides) project to squares with sharp
    corners in any in-plane rotation. The fill ``A / A_rect`` of the minimum-area rotated
    rectangle (OpenCV ``minAreaRect``) is 1 for a square, pi/4 for a disk (rounded corners) and low
    for ragged or L-shaped merges; rescaling ``(fill - pi/4) / (0.90 - pi/4)`` maps disk -> 0,
    square -> 1 (0.90, not 1: real nanocubes have slightly truncated corners, and ground-truth cube
    masks of the synthetic perovskite task have a median fill of 0.88-0.90; digitized disks reach
    0.82-0.85 at radius 10-20 px, so small disks are only partly told apart), so round and cubic
    particles are told apart (a failure of plain SAM named in the
    SAM* paper). Two cubes merged side by side fill their rectangle too, so the rectangle's side
    ratio must also stay within the prior's ``aspect_ratio_max``:

    ``q_i = clip((fill_i - pi/4) / (0.90 - pi/4), 0, 1) * min(1, aspect_ratio_max / rect_aspect_i)``

    Mean over masks not cut by the border, over at least ``count_floor`` times the expected number
    of such particles (``sum_i q_i / max(N, count_floor * N_log)``); empty and background masks
    score 0; no mask gives 0.

    Parameters
    ----------
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
    >>> img, prior = Micrograph(np.zeros((64, 64), np.float32)), PhysicsPrior((5.0, 40.0), shape="cube")
    >>> sq = np.zeros((1, 64, 64), bool); sq[0, 20:40, 20:40] = True
    >>> squareness(MaskSet.from_masks(sq), img, prior)
    1.0
    >>> d = np.zeros((1, 64, 64), bool); d[(0, *disk((32, 32), 12))] = True
    >>> squareness(MaskSet.from_masks(d), img, prior) < 0.5
    True
    """
    if len(masks) == 0:
        return 0.0
    return per_mask_mean(squareness_scores(masks, prior), mask_geometry(masks), image, prior, skip_border=True, count_floor=count_floor)


@register_reward("aspect_ratio")
def aspect_ratio(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, count_floor: float = 0.5) -> float:
    """Fraction of masks whose inertia-ellipse aspect ratio is at most ``prior.aspect_ratio_max``.

    Physics: single particles of the sample are compact (the prior bounds their elongation);
    elongated masks are chains of merged particles, slivers between particles or edge artefacts.

    ``aspect_ratio = #{i : major_i / minor_i <= aspect_ratio_max} / max(N, count_floor * N_log)``

    over the N masks not cut by the border (N_log: expected particles inside the frame). Empty and
    background masks count as failures; no mask gives 0.

    Parameters
    ----------
    count_floor : float
        Average over at least this many times the expected particle count, so that missed
        particles count as failures (see :func:`~samstar_env.rewards.geometry.per_mask_mean`; 0: plain mean).

    Returns
    -------
    float in [0, 1], higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> img, prior = Micrograph(np.zeros((64, 64), np.float32)), PhysicsPrior((5.0, 40.0), aspect_ratio_max=1.6)
    >>> m = np.zeros((2, 64, 64), bool); m[0, 10:20, 10:20] = True; m[1, 30:34, 10:40] = True
    >>> aspect_ratio(MaskSet.from_masks(m), img, prior)
    0.5
    """
    if len(masks) == 0:
        return 0.0
    g = mask_geometry(masks)
    return per_mask_mean((g.aspect_ratio <= prior.aspect_ratio_max).astype(float), g, image, prior, skip_border=True, count_floor=count_floor)


@register_reward("shape_fidelity")
def shape_fidelity(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, count_floor: float = 0.5) -> float:
    """The shape reward that fits the prior's shape class.

    ``sphere`` -> :func:`circularity`; ``cube`` -> :func:`squareness`; ``irregular`` ->
    :func:`aspect_ratio` (aggregates have no canonical outline, only bounded elongation).
    Letting the prior choose keeps task presets independent of the particle geometry.

    Examples
    --------
    >>> import numpy as np
    >>> img = Micrograph(np.zeros((64, 64), np.float32))
    >>> sq = np.zeros((1, 64, 64), bool); sq[0, 20:40, 20:40] = True
    >>> ms = MaskSet.from_masks(sq)
    >>> shape_fidelity(ms, img, PhysicsPrior((5.0, 40.0), shape="cube"))
    1.0
    >>> round(shape_fidelity(ms, img, PhysicsPrior((5.0, 40.0), shape="sphere")), 2)
    0.9
    """
    fn = {"sphere": circularity, "cube": squareness, "irregular": aspect_ratio}[prior.shape]
    return fn(masks, image, prior, count_floor=count_floor)
