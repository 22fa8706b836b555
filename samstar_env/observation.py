"""Label-free image descriptors for the environment's observation, computed once per image.

An agent that chooses AMG parameters needs to know what the image looks like: how bright and noisy
it is, how large its particles are (in pixels, which sets the useful point-grid density, and in nm,
which relates the image to the physics prior), how much of it is particle, and which way the contrast
goes. All of these are cheap, deterministic functions of the pixels and the prior; none uses ground
truth.

Feature order is fixed by :data:`IMAGE_FEATURE_NAMES` (see :class:`ImageDescriptors`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields

import numpy as np
from scipy import ndimage

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.data.polarity import particle_split

# Images above this side are block-averaged before the scale-space analysis: the LoG stack costs
# O(pixels x scales) (measured 1.1 s for a 512 px image with scales up to side/4, 0.1 s at 256 px and
# side/8 on 2 CPU cores), and a 2x reduction still resolves ~6 px particles on a 512 px image, about
# the smallest AMG's default point grids reach anyway.
_MAX_ANALYSIS_SIDE_PX = 256
_QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
# A disk of radius r gives its strongest scale-normalized LoG response at sigma = r / sqrt(2).
_DIAMETER_PER_SIGMA = 2.0 * math.sqrt(2.0)


@dataclass(frozen=True)
class ImageDescriptors:
    """Per-image observation features (all finite, each within its documented bounds).

    Parameters
    ----------
    q01, q25, q50, q75, q99 : float in [0, 1]
        Intensity quantiles of the normalized image.
    noise_sigma : float in [0, 1]
        Gaussian noise level, median absolute deviation of the finest Haar diagonal detail / 0.6745
        (Donoho & Johnstone's estimator, the one ``skimage.restoration.estimate_sigma`` uses).
    log2_scale_px : float in [0, 16]
        log2 of the characteristic particle diameter in pixels, from the scale-normalized
        Laplacian-of-Gaussian scale space (diameter = 2 sqrt(2) sigma at the response maxima).
    log2_scale_nm : float in [-16, 16]
        Same diameter in nm (0 when no pixel size is known; see ``has_pixel_size``).
    has_pixel_size : float in {0, 1}
        1 when the image or the prior carries a calibration.
    log2_scale_vs_prior : float in [-8, 8]
        log2(LoG diameter / prior mean diameter), both in nm (0 without a calibration).
    scale_frac : float in [0, 1]
        LoG diameter in pixels over sqrt(H W): particles per image side, inverted.
    foreground_fraction : float in [0, 1]
        Fraction of pixels on the particle side of Otsu's threshold (of the 1-px-smoothed image,
        :func:`samstar_env.data.polarity.particle_split`, the split the rewards use).
    polarity : float in {-1, 1}
        +1 when particles are brighter than the background, -1 when darker; from the modality when
        known, else estimated (the minority side of Otsu's threshold is the particle side).
    """

    q01: float
    q25: float
    q50: float
    q75: float
    q99: float
    noise_sigma: float
    log2_scale_px: float
    log2_scale_nm: float
    has_pixel_size: float
    log2_scale_vs_prior: float
    scale_frac: float
    foreground_fraction: float
    polarity: float

    def to_array(self) -> np.ndarray:
        """The features as float32, in :data:`IMAGE_FEATURE_NAMES` order."""
        return np.asarray(astuple(self), dtype=np.float32)

    def to_dict(self) -> dict[str, float]:
        """Name -> value (Python floats)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


IMAGE_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ImageDescriptors))
IMAGE_FEATURE_LOW = np.array([0, 0, 0, 0, 0, 0, 0, -16, 0, -8, 0, 0, -1], dtype=np.float32)
IMAGE_FEATURE_HIGH = np.array([1, 1, 1, 1, 1, 1, 16, 16, 1, 8, 1, 1, 1], dtype=np.float32)


def noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise level of a 2-D image (MAD of the finest Haar diagonal coefficients / 0.6745).

    Parameters
    ----------
    image : ndarray, shape (H, W)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(noise_sigma(0.5 + 0.1 * rng.standard_normal((256, 256))), 2)
    0.1
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    if h < 2 or w < 2:
        return 0.0
    a = img[0:h:2, 0:w:2]
    b = img[0:h:2, 1:w:2]
    c = img[1:h:2, 0:w:2]
    d = img[1:h:2, 1:w:2]
    # Orthonormal Haar HH band: smooth structure cancels, white noise keeps its sigma.
    hh = (a - b - c + d) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def characteristic_diameter_px(image: np.ndarray, *, bright: bool = True) -> float:
    """Characteristic particle diameter (pixels) from the scale-normalized LoG scale space.

    Scale-space maxima (3x3x3 neighbourhoods, at least half the strongest response) are pooled and
    the response-weighted median of their scales is converted to a disk diameter (``2 sqrt(2)
    sigma``). Scales run geometrically (ratio sqrt(2)) from 1 px to an eighth of the short side (of the
    analysed image: images above 256 px are block-averaged first).

    Parameters
    ----------
    image : ndarray, shape (H, W), values in [0, 1]
    bright : bool
        Particles are brighter than the background (else the image is inverted first).
    """
    img = np.asarray(image, dtype=np.float64)
    factor = max(1, math.ceil(max(img.shape) / _MAX_ANALYSIS_SIDE_PX))
    if factor > 1:
        h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
        img = img[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    if not bright:
        img = 1.0 - img
    # Scales up to an eighth of the short side: a particle wider than ~a third of the image is not
    # "a particle size" the point grid has to resolve.
    max_sigma = max(1.0, min(img.shape) / 8.0)
    n = int(math.floor(math.log(max_sigma) / math.log(math.sqrt(2.0)))) + 1
    sigmas = np.array([math.sqrt(2.0) ** i for i in range(max(n, 1))])
    # -sigma^2 LoG: scale-normalized, positive at bright blobs.
    stack = np.stack([-(s**2) * ndimage.gaussian_laplace(img, s, mode="reflect") for s in sigmas])
    peak = float(stack.max())
    if not np.isfinite(peak) or peak <= 0:
        return float(_DIAMETER_PER_SIGMA * sigmas[0] * factor)
    local = (stack == ndimage.maximum_filter(stack, size=3, mode="nearest")) & (stack >= 0.5 * peak)
    idx = np.nonzero(local)
    if len(idx[0]) == 0:
        s = float(sigmas[int(np.argmax(stack.reshape(len(sigmas), -1).max(axis=1)))])
    else:
        scales, weights = sigmas[idx[0]], stack[idx]
        order = np.argsort(scales, kind="stable")
        cum = np.cumsum(weights[order])
        s = float(scales[order][int(np.searchsorted(cum, cum[-1] / 2.0))])
    return float(_DIAMETER_PER_SIGMA * s * factor)


def describe_image(image: Micrograph, prior: PhysicsPrior | None = None) -> ImageDescriptors:
    """Compute the observation descriptors of one micrograph (deterministic; no ground truth).

    Parameters
    ----------
    image : Micrograph
    prior : PhysicsPrior, optional
        Supplies the calibration when the image has none, the expected diameter and, when the
        image's modality is unknown, the expected polarity.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = np.zeros((128, 128), np.float32)
    >>> for cy, cx in [(32, 32), (32, 96), (96, 32), (96, 96)]:
    ...     img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2] = 1.0
    >>> d = describe_image(Micrograph(img, pixel_size_nm=0.5))
    >>> 10 < 2 ** d.log2_scale_px < 24, d.polarity
    (True, 1.0)
    """
    img = np.asarray(image.image, dtype=np.float64)
    q = np.quantile(img, _QUANTILES)
    # The rewards' own threshold and polarity rule, so the policy and the rewards agree on the phase.
    split = particle_split(image, prior)
    bright = split.polarity == "bright"
    fg = split.particle_fraction()
    d_px = characteristic_diameter_px(img, bright=bright)
    px_nm = prior.pixel_size_for(image) if prior is not None else image.pixel_size_nm
    if px_nm is not None:
        d_nm = d_px * float(px_nm)
        log2_nm = math.log2(d_nm)
        vs_prior = math.log2(d_nm / prior.mean_diameter_nm) if prior is not None else 0.0
    else:
        log2_nm, vs_prior = 0.0, 0.0
    raw = ImageDescriptors(
        q01=float(q[0]),
        q25=float(q[1]),
        q50=float(q[2]),
        q75=float(q[3]),
        q99=float(q[4]),
        noise_sigma=noise_sigma(img),
        log2_scale_px=math.log2(max(d_px, 1.0)),
        log2_scale_nm=log2_nm,
        has_pixel_size=1.0 if px_nm is not None else 0.0,
        log2_scale_vs_prior=vs_prior,
        scale_frac=d_px / math.sqrt(img.shape[0] * img.shape[1]),
        foreground_fraction=fg,
        polarity=1.0 if bright else -1.0,
    )
    clipped = np.clip(raw.to_array(), IMAGE_FEATURE_LOW, IMAGE_FEATURE_HIGH)
    return ImageDescriptors(*(float(v) for v in clipped))


def mean_descriptors(descriptors: Sequence[ImageDescriptors]) -> np.ndarray:
    """Feature-wise mean over a batch of images (float32, in :data:`IMAGE_FEATURE_NAMES` order)."""
    return np.mean([d.to_array() for d in descriptors], axis=0).astype(np.float32)


def assemble_observation(
    image_features: np.ndarray,
    *,
    prev_action: np.ndarray,
    prev_reward: np.ndarray,
    best_reward: np.ndarray,
    budget_left: float,
    thumb: np.ndarray | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """The environment's observation from its parts: the one place that fixes its layout.

    ``SamStarEnv`` observes through it at every step, and a trained policy
    (:mod:`samstar_env.policy.policy_file`) builds its reset observation of a new image through it.

    Parameters
    ----------
    image_features : ndarray, shape (13,)
        Image descriptors (:data:`IMAGE_FEATURE_NAMES` order).
    prev_action, prev_reward, best_reward : ndarray
        Previous action (normalized), previous and best reward vectors (zeros at reset).
    budget_left : float
        Remaining fraction of the episode's evaluations (1 at reset).
    thumb : ndarray, shape (s, s, 1), uint8, optional
        With a thumbnail: a dict ``{"features", "thumbnail"}``; without: the flat features.

    Examples
    --------
    >>> obs = assemble_observation(np.zeros(13), prev_action=np.zeros(2), prev_reward=np.zeros(3),
    ...                            best_reward=np.zeros(3), budget_left=1.0)
    >>> obs.shape, obs.dtype, float(obs[-1])
    ((22,), dtype('float32'), 1.0)
    """
    flat = np.concatenate(
        [image_features, prev_action, prev_reward, best_reward, np.array([budget_left])]
    ).astype(np.float32)
    if thumb is None:
        return flat
    return {"features": flat, "thumbnail": np.array(thumb, dtype=np.uint8, copy=True)}


def thumbnail(image: Micrograph, size: int) -> np.ndarray:
    """A ``(size, size, 1)`` uint8 thumbnail for CNN policies (area-averaged; aspect not kept).

    Parameters
    ----------
    image : Micrograph
    size : int
        Side in pixels (stable-baselines3's NatureCNN needs at least 36).
    """
    img = np.asarray(image.image, dtype=np.float64)
    h, w = img.shape
    # Area averaging via cumulative sums: exact for any integer/non-integer ratio and dependency-free.
    ys = np.linspace(0, h, size + 1)
    xs = np.linspace(0, w, size + 1)
    if h >= size and w >= size:
        cs = np.pad(img, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        y0, y1 = np.floor(ys[:-1]).astype(int), np.maximum(np.floor(ys[1:]).astype(int), np.floor(ys[:-1]).astype(int) + 1)
        x0, x1 = np.floor(xs[:-1]).astype(int), np.maximum(np.floor(xs[1:]).astype(int), np.floor(xs[:-1]).astype(int) + 1)
        s = cs[y1][:, x1] - cs[y0][:, x1] - cs[y1][:, x0] + cs[y0][:, x0]
        small = s / ((y1 - y0)[:, None] * (x1 - x0)[None, :])
    else:
        # Upsampling a tiny image: nearest neighbour keeps the pixels honest.
        yi = np.minimum((ys[:-1] + ys[1:]) / 2, h - 1).astype(int)
        xi = np.minimum((xs[:-1] + xs[1:]) / 2, w - 1).astype(int)
        small = img[yi][:, xi]
    return np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)[:, :, None]
