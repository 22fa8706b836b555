"""Which side of the histogram the particles are on: Otsu's threshold and the polarity rule.

One implementation, shared by the observation features (:mod:`samstar_env.observation`) and the
label-free rewards (:func:`samstar_env.rewards.geometry.image_features`), so the policy's view of an
image and the rewards judging masks on it can never disagree about which phase is the particles.

The rule: a declared polarity (the image's modality, else the prior's) wins; an ``unknown`` one is
estimated as the minority side of Otsu's threshold (particles are the minority phase in the dispersed
samples this targets), on the image smoothed with a 1-pixel Gaussian so shot noise does not move the
split. A flat image (range below :data:`FLAT_RANGE`) has no threshold and counts as bright.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from skimage import filters

from samstar_env.data.micrograph import Micrograph, PhysicsPrior

Polarity = Literal["bright", "dark"]

SMOOTHING_SIGMA_PX = 1.0
"""Gaussian sigma (pixels) applied before thresholding."""

FLAT_RANGE = 1e-6
"""Below this intensity range an image is flat: Otsu's threshold is undefined on it."""


@dataclass(frozen=True, eq=False)
class ParticleSplit:
    """Otsu's two-class split of one micrograph and the side the particles are on.

    Parameters
    ----------
    polarity : {"bright", "dark"}
        The particles' side: declared by the image or prior, else the minority side of ``threshold``.
    threshold : float or None
        Otsu's threshold of ``smoothed`` (``skimage.filters.threshold_otsu``); ``None`` for a flat image.
    smoothed : ndarray, shape (H, W), float32
        The image after a :data:`SMOOTHING_SIGMA_PX` Gaussian, in its own intensity scale (not inverted).
    """

    polarity: Polarity
    threshold: float | None
    smoothed: np.ndarray

    def particle_fraction(self) -> float:
        """Fraction of pixels on the particle side of the threshold (0 for a flat image)."""
        if self.threshold is None:
            return 0.0
        side = self.smoothed > self.threshold if self.polarity == "bright" else self.smoothed <= self.threshold
        return float(side.mean())


def otsu_threshold(image: np.ndarray) -> float | None:
    """Otsu's threshold of ``image`` (``skimage.filters.threshold_otsu``), ``None`` when it is flat.

    Examples
    --------
    >>> two = np.r_[np.full(500, 0.2), np.full(500, 0.8)]
    >>> bool(0.2 <= otsu_threshold(two) < 0.8)
    True
    >>> otsu_threshold(np.full((4, 4), 0.5)) is None
    True
    """
    arr = np.asarray(image)
    # The range in the image's own dtype (float32 images compare in float32).
    if arr.size == 0 or arr.max() - arr.min() < FLAT_RANGE:
        return None
    # skimage's own scalar (float32 for float32 input), not a Python float: callers compare and
    # invert with it exactly as with threshold_otsu's result.
    return filters.threshold_otsu(arr)


def particle_split(image: Micrograph, prior: PhysicsPrior | None = None) -> ParticleSplit:
    """Smooth ``image``, split it at Otsu's threshold and decide which side the particles are on.

    Parameters
    ----------
    image : Micrograph
    prior : PhysicsPrior, optional
        Its polarity (from its modality) is used when the image's is ``unknown``.

    Returns
    -------
    ParticleSplit

    Examples
    --------
    >>> img = np.zeros((64, 64), np.float32)
    >>> img[20:30, 20:30] = 1.0
    >>> split = particle_split(Micrograph(img))
    >>> split.polarity, 0.0 < split.particle_fraction() < 0.1
    ('bright', True)
    >>> particle_split(Micrograph(1.0 - img)).polarity  # dark particles on a bright background
    'dark'
    """
    smoothed = filters.gaussian(np.asarray(image.image, np.float32), sigma=SMOOTHING_SIGMA_PX, preserve_range=True)
    smoothed = smoothed.astype(np.float32)
    declared = image.polarity if image.polarity != "unknown" else (prior.polarity if prior is not None else "unknown")
    t = otsu_threshold(smoothed)
    if declared in ("bright", "dark"):
        polarity: Polarity = "bright" if declared == "bright" else "dark"
    elif t is None:
        polarity = "bright"
    else:
        polarity = "bright" if float((smoothed > t).mean()) <= 0.5 else "dark"
    return ParticleSplit(polarity=polarity, threshold=t, smoothed=smoothed)
