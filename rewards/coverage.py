"""Coverage: masks cover the label-free particle foreground without leaking onto the background."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import image_features, mask_geometry
from samstar_env.rewards.registry import register_reward


@dataclass(frozen=True)
class CoverageTerms:
    """Parts of the coverage reward.

    Parameters
    ----------
    recall : float
        Fraction of the estimated foreground covered by masks.
    leakage : float
        Fraction of the masks' union lying on estimated background.
    dice : float
        ``2 |U & F| / (|U| + |F|)``, the reward.
    """

    recall: float
    leakage: float
    dice: float


def coverage_terms(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, threshold: str = "li") -> CoverageTerms:
    """Recall, leakage and Dice of the masks' union against the label-free foreground."""
    fg = image_features(image, prior, threshold=threshold).foreground.ravel()
    g = mask_geometry(masks)
    u = g.union if g.valid.any() else np.zeros_like(fg)
    nf, nu = int(fg.sum()), int(u.sum())
    inter = int(np.count_nonzero(fg & u))
    recall = inter / nf if nf else 0.0
    leakage = 1.0 - inter / nu if nu else 0.0
    dice = 2.0 * inter / (nf + nu) if nf + nu else 0.0
    return CoverageTerms(recall=float(recall), leakage=float(leakage), dice=float(dice))


@register_reward("coverage")
def coverage(masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, threshold: str = "li") -> float:
    """Dice overlap between the union of the masks and a label-free estimate of the particle foreground.

    Physics: particles differ from the support in intensity with a sign set by the modality
    (bright in HAADF/SEM by Z-contrast, dark in bright-field TEM by scattering out of the
    aperture), so a global threshold on the lightly smoothed image (Li's minimum cross-entropy,
    ``skimage.filters.threshold_li``, by default; Otsu, triangle or a local threshold on request,
    see :func:`~samstar_env.rewards.geometry.image_features` for measured accuracies) estimates
    where particles are without any label. Missed particles lower the
    recall, masks on background raise the leakage; Dice penalizes both:

    ``coverage = 2 |U & F| / (|U| + |F|)``, U = union of all masks, F = foreground estimate.

    A background mask (over half the frame) stays in U, where its leakage costs what it should
    (it would put the support into every particle statistic); but a set with no valid mask at all
    (a single full-frame mask, or no mask) scores 0. With ``unknown`` modality the Otsu class covering less of the frame is
    taken as the particles.

    Parameters
    ----------
    threshold : {"li", "otsu", "triangle", "local"}
        Foreground estimate (see :func:`samstar_env.rewards.geometry.image_features`).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> img = np.full((64, 64), 0.1, np.float32); img[disk((32, 32), 10)] = 0.9
    >>> mg, prior = Micrograph(img, modality="haadf"), PhysicsPrior((5.0, 40.0))
    >>> m = np.zeros((1, 64, 64), bool); m[(0, *disk((32, 32), 10))] = True
    >>> coverage(MaskSet.from_masks(m), mg, prior) > 0.85
    True
    >>> coverage(MaskSet.from_masks(np.ones((1, 64, 64), bool)), mg, prior)
    0.0
    """
    if len(masks) == 0:
        return 0.0
    return coverage_terms(masks, image, prior, threshold=threshold).dice
