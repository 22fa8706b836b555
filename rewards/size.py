"""Size rewards: diameters inside the prior's window, and agreement with its size distribution."""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import diameters, mask_geometry, per_mask_mean
from samstar_env.rewards.registry import register_reward


@register_reward("size_window")
def size_window(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, tolerance: float = 0.0,
                count_floor: float = 0.5) -> float:
    """Fraction of masks whose equivalent diameter lies in the prior's diameter range.

    Physics: synthesis fixes the particle size to within a known window (TEM statistics of the
    batch, growth time); a mask far smaller is a fragment or noise, one far larger is a merged
    cluster or the support film. This is the "size selection" failure of plain SAM in the SAM*
    paper. The diameter is ``sqrt(4 A / pi)`` times the pixel size (image's, else prior's); with no
    pixel size at all the prior's ``diameter_range_nm`` is read in pixels.

    ``size_window = #{i : lo (1 - tol) <= d_i <= hi (1 + tol)} / max(N, count_floor * N_log)``

    Every mask counts in N (background and empty masks are outside the window by construction);
    N_log is the label-free expected particle count; no mask gives 0.

    Parameters
    ----------
    tolerance : float
        Relative widening of the window on both sides (0 = the prior's range exactly).
    count_floor : float
        Average over at least this many times the expected particle count, so that missed
        particles count as failures (see :func:`~samstar_env.rewards.geometry.per_mask_mean`; 0: plain mean).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> img = Micrograph(np.zeros((64, 64), np.float32), pixel_size_nm=1.0)
    >>> prior = PhysicsPrior((8.0, 16.0))
    >>> m = np.zeros((2, 64, 64), bool)
    >>> m[(0, *disk((20, 20), 6))] = True   # d = 13 nm: inside
    >>> m[(1, *disk((45, 45), 2))] = True   # d = 4.4 nm: a fragment
    >>> size_window(MaskSet.from_masks(m), img, prior)
    0.5
    """
    if len(masks) == 0:
        return 0.0
    lo, hi = prior.diameter_range_nm
    d = diameters(masks, image, prior)
    g = mask_geometry(masks)
    ok = g.valid & (d >= lo * (1.0 - tolerance)) & (d <= hi * (1.0 + tolerance))
    return per_mask_mean(ok.astype(float), g, image, prior, skip_border=False, count_floor=count_floor)


def prior_diameter_grid(prior: PhysicsPrior, *, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The prior's lognormal mixture as (diameters_nm, weights) on a log-spaced grid.

    A deterministic stand-in for samples: ``wasserstein_distance`` accepts weighted values, so the
    reward needs no random draws and is exactly reproducible.
    """
    comps = prior.size_components
    lo = min(c.median_nm * np.exp(-4.0 * max(c.sigma, 1e-3)) for c in comps)
    hi = max(c.median_nm * np.exp(4.0 * max(c.sigma, 1e-3)) for c in comps)
    grid = np.geomspace(lo, hi, n)
    dlog = np.log(grid[1] / grid[0])
    w = np.zeros(n)
    for c in comps:
        s = max(c.sigma, 1e-3)
        # Lognormal density per unit log(d), times the log-bin width: the mass of each grid cell.
        w += c.weight * np.exp(-0.5 * (np.log(grid / c.median_nm) / s) ** 2) / (s * np.sqrt(2 * np.pi)) * dlog
    return grid, w / w.sum()


@register_reward("size_distribution")
def size_distribution(masks: MaskSet, image: Micrograph, prior: PhysicsPrior) -> float:
    """Agreement of the masks' diameter distribution with the prior's lognormal mixture.

    Physics: particle sizes from one synthesis follow a lognormal law (growth by coalescence and
    Ostwald ripening), and bimodal samples (AuCo: small particles plus aggregates) a mixture of
    two. Fragments shift the distribution down, merges and background masks up. The 1-Wasserstein
    distance (``scipy.stats.wasserstein_distance``) between mask diameters and the prior is in nm,
    so it is normalized by the prior's mean diameter:

    ``size_distribution = max(0, 1 - W1(d_masks, prior) / mean_diameter)``

    Background and empty masks are left out of the distribution but scale the score by the
    fraction of valid masks; no valid mask gives 0. Without a pixel size, diameters and the prior
    are both read in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> from samstar_env.data.micrograph import SizeComponent
    >>> img = Micrograph(np.zeros((96, 96), np.float32), pixel_size_nm=1.0)
    >>> prior = PhysicsPrior((8.0, 16.0), size_components=(SizeComponent(1.0, 12.0, 0.01),))
    >>> right = np.zeros((1, 96, 96), bool); right[(0, *disk((48, 48), 6))] = True
    >>> wrong = np.zeros((1, 96, 96), bool); wrong[(0, *disk((48, 48), 18))] = True
    >>> s_right = size_distribution(MaskSet.from_masks(right), img, prior)
    >>> s_wrong = size_distribution(MaskSet.from_masks(wrong), img, prior)
    >>> s_right > 0.9, s_wrong
    (True, 0.0)
    """
    if len(masks) == 0:
        return 0.0
    g = mask_geometry(masks)
    if not g.valid.any():
        return 0.0
    d = diameters(masks, image, prior)[g.valid]
    grid, w = prior_diameter_grid(prior)
    dist = wasserstein_distance(d, grid, v_weights=w)
    score = max(0.0, 1.0 - dist / prior.mean_diameter_nm)
    return float(score * g.valid.mean())
