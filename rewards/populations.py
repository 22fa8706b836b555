"""Small-particle detection vs. large-aggregate coverage: the antagonistic AuCo pair of SAM*.

SAM* finds for AuCo that no single AMG setting both detects the many small particles (which needs
dense prompts and lenient thresholds) and keeps aggregates whole (which dense prompts split into
pieces). Two rewards measure the two sides separately so a multi-objective tuner can map the
Pareto front between them. Both split particles at ``small_max_nm`` (the prior's, else the
geometric middle of its diameter range).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import (
    diameter_range_px,
    image_cache,
    image_features,
    log_blobs,
    mask_geometry,
    pixel_size_nm,
)
from samstar_env.rewards.registry import register_reward

#: A detected small mask may be this much larger than ``small_max`` (outlines vary by a pixel or two).
SMALL_TOLERANCE = 1.5


def small_max_px(image: Micrograph, prior: PhysicsPrior) -> float:
    """The small/aggregate split in pixels."""
    lo, hi = prior.diameter_range_nm
    s = prior.small_max_nm if prior.small_max_nm is not None else float(np.sqrt(lo * hi))
    px = pixel_size_nm(image, prior)
    return s / px if px is not None else s


def _large_components(image: Micrograph, prior: PhysicsPrior, threshold: str) -> tuple[np.ndarray, np.ndarray]:
    """(label image, ids) of foreground components with equivalent diameter above small_max."""
    lab, n = image_features(image, prior, threshold=threshold).foreground_components
    if n == 0:
        return lab, np.zeros(0, np.int64)
    area = np.bincount(lab.ravel(), minlength=n + 1).astype(float)
    d = np.sqrt(4.0 * area / np.pi)
    ids = np.flatnonzero(d > small_max_px(image, prior))
    return lab, ids[ids > 0]


def _component_matrix(image: Micrograph, prior: PhysicsPrior, threshold: str) -> sp.csr_array:
    """Sparse (K, H*W) incidence of the large components, cached per image, prior and threshold."""
    cache = image_cache(image)
    key = ("large_components", prior, threshold)
    if key not in cache:
        lab, large = _large_components(image, prior, threshold)
        flat = lab.ravel()
        pix = np.flatnonzero(np.isin(flat, large))
        comp_index = np.searchsorted(large, flat[pix])
        cache[key] = sp.csr_array((np.ones(pix.size, np.float32), (comp_index, pix)), shape=(len(large), flat.size))
    return cache[key]


def small_reference_blobs(image: Micrograph, prior: PhysicsPrior, *, log_threshold: float = 0.02,
                          threshold: str = "li") -> np.ndarray:
    """(K, 2) integer (row, col) of LoG blobs at the small scale that do not lie on an aggregate."""
    lo_px = diameter_range_px(image, prior)[0]
    s_px = small_max_px(image, prior)
    blobs = log_blobs(image, prior, d_min_px=min(lo_px, s_px), d_max_px=s_px, threshold=log_threshold)
    if len(blobs) == 0:
        return np.zeros((0, 2), np.int64)
    rc = np.rint(blobs[:, :2]).astype(np.int64)
    h, w = image.shape
    rc[:, 0] = np.clip(rc[:, 0], 0, h - 1)
    rc[:, 1] = np.clip(rc[:, 1], 0, w - 1)
    # No foreground test: dim small particles are often below a global threshold (AuCo), and
    # the LoG response at the small scale is itself the evidence.
    lab, large = _large_components(image, prior, threshold)
    keep = ~np.isin(lab[rc[:, 0], rc[:, 1]], large)
    return rc[keep]


@register_reward("small_particle_detection")
def small_particle_detection(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, log_threshold: float = 0.02,
                             threshold: str = "li") -> float:
    """Recall of small particles: fraction of small LoG blobs covered by a small mask.

    Physics: small particles (below ``small_max_nm``) are the ones plain SAM misses (too few
    prompts land on them, and their low predicted IoU is filtered away). Label-free reference:
    Laplacian-of-Gaussian blobs (``skimage.feature.blob_log``) at the small scale (sigma =
    r / sqrt 2 for diameters from the prior's lower bound to ``small_max``) that do not lie on a
    large foreground component (an aggregate's texture is not a particle).

    ``small = #{blobs whose centre lies in a valid mask with d <= 1.5 small_max} / #blobs``

    1.0 when no small blob is found (nothing to detect); no mask gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> img = np.full((96, 96), 0.1, np.float32)
    >>> m = np.zeros((4, 96, 96), bool)
    >>> for k, (r, c) in enumerate([(20, 20), (20, 70), (70, 20), (70, 70)]):
    ...     img[disk((r, c), 4)] = 0.9; m[(k, *disk((r, c), 4))] = True
    >>> mg = Micrograph(img, modality="haadf")
    >>> prior = PhysicsPrior((5.0, 60.0), small_max_nm=12.0)
    >>> small_particle_detection(MaskSet.from_masks(m), mg, prior)
    1.0
    >>> small_particle_detection(MaskSet.from_masks(m[:1]), mg, prior)
    0.25
    """
    if len(masks) == 0:
        return 0.0
    ref = small_reference_blobs(image, prior, log_threshold=log_threshold, threshold=threshold)
    if len(ref) == 0:
        return 1.0
    g = mask_geometry(masks)
    small = g.valid & (g.equivalent_diameter_px <= SMALL_TOLERANCE * small_max_px(image, prior))
    if not small.any():
        return 0.0
    h, w = image.shape
    cover = np.zeros(h * w, bool)
    cover[g.flat_pixels[small].indices] = True
    return float(cover[ref[:, 0] * w + ref[:, 1]].mean())


@register_reward("aggregate_coverage")
def aggregate_coverage(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, threshold: str = "li") -> float:
    """How well each large aggregate is covered by ONE mask: area-weighted best IoU.

    Physics: an aggregate (sintered or coalesced particles, larger than ``small_max_nm``) is one
    object for size statistics; dense prompting splits it into many partial masks, which leaves
    every single mask with a small IoU against it. Label-free reference: connected components of
    the label-free foreground (``threshold`` method, polarity from the modality) whose equivalent
    diameter exceeds ``small_max``. For each such component C_k:

    ``IoU_k = max_j |m_j & C_k| / |m_j | C_k|`` over valid masks j,
    ``aggregate = sum_k |C_k| IoU_k / sum_k |C_k|``

    1.0 when the image has no large component (nothing to cover); no mask gives 0; a single
    full-frame (background) mask is not valid and so does not count as covering anything.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((96, 96), 0.1, np.float32); img[20:60, 20:60] = 0.9
    >>> mg, prior = Micrograph(img, modality="haadf"), PhysicsPrior((5.0, 60.0), small_max_nm=12.0)
    >>> whole = np.zeros((1, 96, 96), bool); whole[0, 20:60, 20:60] = True
    >>> quarters = np.zeros((4, 96, 96), bool)
    >>> for k, (r, c) in enumerate([(20, 20), (20, 40), (40, 20), (40, 40)]):
    ...     quarters[k, r:r + 20, c:c + 20] = True
    >>> aggregate_coverage(MaskSet.from_masks(whole), mg, prior) > 0.9
    True
    >>> aggregate_coverage(MaskSet.from_masks(quarters), mg, prior) < 0.3
    True
    """
    if len(masks) == 0:
        return 0.0
    cmat = _component_matrix(image, prior, threshold)
    if cmat.shape[0] == 0:
        return 1.0
    g = mask_geometry(masks)
    if not g.valid.any():
        return 0.0
    mv = g.flat_pixels[g.valid].astype(np.float32)
    inter = (mv @ cmat.T).toarray()  # (n_valid, K)
    a_comp = np.asarray(cmat.sum(axis=1)).ravel()
    a_mask = g.area_px[g.valid][:, None]
    iou = inter / (a_mask + a_comp[None, :] - inter)
    best = iou.max(axis=0)
    return float(np.clip((best * a_comp).sum() / a_comp.sum(), 0.0, 1.0))
