"""Count plausibility against a label-free Laplacian-of-Gaussian blob count at the prior's scale."""

from __future__ import annotations

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import expected_particle_count, mask_geometry
from samstar_env.rewards.registry import register_reward


def expected_count(image: Micrograph, prior: PhysicsPrior, *, log_threshold: float = 0.02) -> int:
    """Number of LoG blobs (``skimage.feature.blob_log``) with diameters in the prior's range."""
    return expected_particle_count(image, prior, log_threshold=log_threshold)


@register_reward("count_plausibility")
def count_plausibility(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, log_threshold: float = 0.02) -> float:
    """One minus the relative count error against a Laplacian-of-Gaussian estimate of the particle count.

    Physics: the SAM* group's LoG* work scores detections by ``|N - N_expected| / N_expected`` with
    N_expected from physics. Here N_expected comes from the image itself: a LoG blob detector tuned
    to the prior's particle scale (sigma = r / sqrt 2 for diameters in the prior's range, in px via
    the pixel size) counts blob-like particles independently of SAM. Merges lower the mask count,
    fragments and duplicates raise it.

    ``count_plausibility = max(0, 1 - |N - N_log| / max(N_log, 1))``, N = number of valid
    (non-empty, non-background) masks.

    No mask gives 0 (also when no blob is found: "found nothing" and "nothing to find" cannot be
    told apart label-free, and an empty output is treated as poor throughout).

    Parameters
    ----------
    log_threshold : float
        ``blob_log``'s ``threshold`` on the [0, 1]-rescaled, polarity-corrected image. At 0.02 the
        LoG count is within 10% of the true count on the synthetic tune images of all three
        tasks (measured, seeds 0-1: perovskite 0.94-1.04, ito 0.93, auco 1.1); at 0.05 it misses
        a third of AuCo's small particles.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> img = np.full((96, 96), 0.1, np.float32)
    >>> m = np.zeros((4, 96, 96), bool)
    >>> for k, (r, c) in enumerate([(24, 24), (24, 72), (72, 24), (72, 72)]):
    ...     img[disk((r, c), 8)] = 0.9; m[(k, *disk((r, c), 8))] = True
    >>> mg, prior = Micrograph(img, modality="haadf"), PhysicsPrior((10.0, 24.0))
    >>> expected_count(mg, prior)
    4
    >>> count_plausibility(MaskSet.from_masks(m), mg, prior), count_plausibility(MaskSet.from_masks(m[:2]), mg, prior)
    (1.0, 0.5)
    """
    if len(masks) == 0:
        return 0.0
    n = int(mask_geometry(masks).valid.sum())
    n_ref = expected_count(image, prior, log_threshold=log_threshold)
    return float(max(0.0, 1.0 - abs(n - n_ref) / max(n_ref, 1)))


__all__ = ["count_plausibility", "expected_count"]
