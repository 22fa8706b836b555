"""The two value types every stage shares: a :class:`Micrograph` and a :class:`PhysicsPrior`.

A micrograph is the image plus what is known about how it was taken (pixel size, modality) and,
for synthetic or annotated data, its ground truth. A physics prior is what a microscopist knows
about the sample *before* segmenting it; rewards use the prior, never the ground truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from samstar_env.data.instances import SparseInstances

Modality = Literal["haadf", "bf-tem", "sem", "fluorescence", "unknown"]
ShapeClass = Literal["sphere", "cube", "irregular"]

MODALITIES: tuple[str, ...] = ("haadf", "bf-tem", "sem", "fluorescence", "unknown")
SHAPE_CLASSES: tuple[str, ...] = ("sphere", "cube", "irregular")

# Which way particles differ from the background, by modality: HAADF (Z-contrast), SEM
# (secondary electrons from edges and tops) and fluorescence show particles bright; bright-field TEM
# shows them dark because they scatter electrons out of the objective aperture.
POLARITY_BY_MODALITY: dict[str, str] = {
    "haadf": "bright",
    "sem": "bright",
    "fluorescence": "bright",
    "bf-tem": "dark",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class ParticleTruth:
    """Ground truth for one synthetic particle.

    Parameters
    ----------
    label : int
        Its id in ``Micrograph.labels`` and its index + 1 in ``Micrograph.instances``.
    diameter_nm : float
        True equivalent diameter (cube: edge length; aggregate: equivalent circular diameter of
        its projection).
    shape : str
        ``"sphere"``, ``"cube"`` or ``"irregular"``.
    centroid_px : tuple of float
        (row, column) of the amodal mask's centroid.
    occluded_fraction : float
        Fraction of the amodal area hidden by particles lying on top of it.
    kind : str
        Population it was drawn from (e.g. ``"small"`` or ``"aggregate"`` for AuCo).
    """

    label: int
    diameter_nm: float
    shape: str
    centroid_px: tuple[float, float]
    occluded_fraction: float
    kind: str = "particle"


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"Micrograph {name!r}: image must be a 2-D (H, W) grey array, got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape) < 1:
        raise ValueError(f"Micrograph {name!r}: image is empty (shape {arr.shape})")
    if arr.dtype != np.float32:
        raise TypeError(f"Micrograph {name!r}: image must be float32 in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"Micrograph {name!r}: image contains NaN or Inf pixels")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"Micrograph {name!r}: image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return arr


@dataclass(frozen=True, eq=False)
class Micrograph:
    """An image with its acquisition facts and optional ground truth.

    Parameters
    ----------
    image : ndarray of float32, shape (H, W)
        Grey image normalized to [0, 1] (see :func:`samstar_env.data.normalize_image`).
    name : str
        Identifier used in logs, file names and cache keys.
    pixel_size_nm : float or None
        Physical size of one pixel; ``None`` when unknown (sizes are then reported in pixels).
    modality : str
        One of ``haadf``, ``bf-tem``, ``sem``, ``fluorescence``, ``unknown``.
    labels : ndarray of int32, shape (H, W), optional
        Visible instance labels (0 = background), e.g. from a generator or an EMPS segmap.
    instances : SparseInstances, optional
        Amodal per-particle masks (the whole particle, including parts hidden under others), each a
        crop at its box (:class:`~samstar_env.data.instances.SparseInstances`); mask ``i`` belongs
        to label ``i + 1``. A dense (N, H, W) bool array is accepted and cropped.
    particles : tuple of ParticleTruth
        Per-particle ground-truth table (synthetic data only).
    original : ndarray, optional
        The array as read from disk, before normalization.
    metadata : mapping
        Anything else (source file, generator knobs, task, split, seed).

    Examples
    --------
    >>> import numpy as np
    >>> m = Micrograph(image=np.zeros((8, 8), np.float32), name="blank", pixel_size_nm=0.5)
    >>> m.shape, m.polarity
    ((8, 8), 'unknown')
    """

    image: np.ndarray
    name: str = "micrograph"
    pixel_size_nm: float | None = None
    modality: str = "unknown"
    labels: np.ndarray | None = None
    instances: SparseInstances | None = None
    particles: tuple[ParticleTruth, ...] = ()
    original: np.ndarray | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = _check_image(self.image, self.name)
        if self.pixel_size_nm is not None:
            px = float(self.pixel_size_nm)
            if not np.isfinite(px) or px <= 0:
                raise ValueError(f"Micrograph {self.name!r}: pixel_size_nm must be a positive number, got {self.pixel_size_nm!r}")
            object.__setattr__(self, "pixel_size_nm", px)
        if self.modality not in MODALITIES:
            raise ValueError(f"Micrograph {self.name!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.shape != img.shape:
                raise ValueError(
                    f"Micrograph {self.name!r}: label image shape {lab.shape} does not match image shape {img.shape}"
                )
            if not np.issubdtype(lab.dtype, np.integer):
                raise TypeError(f"Micrograph {self.name!r}: labels must be an integer array, got dtype {lab.dtype}")
            object.__setattr__(self, "labels", lab.astype(np.int32, copy=False))
        if self.instances is not None:
            inst = self.instances
            if not isinstance(inst, SparseInstances):
                inst = np.asarray(inst)
                if inst.ndim != 3 or inst.shape[1:] != img.shape:
                    raise ValueError(
                        f"Micrograph {self.name!r}: instances must have shape (N, {img.shape[0]}, {img.shape[1]}), got {inst.shape}"
                    )
                inst = SparseInstances.from_dense(inst)
            elif inst.image_shape != img.shape:
                raise ValueError(f"Micrograph {self.name!r}: instances are of a {inst.image_shape} image, not {img.shape}")
            object.__setattr__(self, "instances", inst)
        # Freeze the arrays too: a Micrograph is a value and its hash keys the engine's caches.
        for attr in ("image", "labels", "original"):
            arr = getattr(self, attr)
            if isinstance(arr, np.ndarray) and arr.flags.writeable:
                arr = arr.view()
                arr.flags.writeable = False
                object.__setattr__(self, attr, arr)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def polarity(self) -> str:
        """``"bright"``, ``"dark"`` or ``"unknown"``: how particles look against the background."""
        return POLARITY_BY_MODALITY[self.modality]

    @property
    def has_ground_truth(self) -> bool:
        """True when a visible label image is attached."""
        return self.labels is not None

    def fingerprint(self) -> str:
        """A stable sha256 of the image content (cache key; independent of name and metadata)."""
        h = hashlib.sha256()
        h.update(str(self.image.shape).encode())
        h.update(np.ascontiguousarray(self.image).tobytes())
        return h.hexdigest()

    def to_rgb_uint8(self) -> np.ndarray:
        """The image as SAM expects it: (H, W, 3) uint8, grey replicated on the three channels."""
        g = np.clip(np.rint(self.image * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)


@dataclass(frozen=True)
class SizeComponent:
    """One lognormal component of a particle-size distribution.

    Parameters
    ----------
    weight : float
        Fraction of particles (by number) in this component.
    median_nm : float
        Median equivalent diameter.
    sigma : float
        Standard deviation of ``log(diameter)``.
    """

    weight: float
    median_nm: float
    sigma: float


@dataclass(frozen=True)
class PhysicsPrior:
    """What a microscopist knows about the sample before segmenting it.

    Never derived from ground truth: it encodes synthesis knowledge (expected size and shape),
    the imaging modality and the calibration.

    Parameters
    ----------
    diameter_range_nm : (float, float)
        Plausible equivalent-diameter range of one particle.
    shape : str
        ``"sphere"``, ``"cube"`` or ``"irregular"``.
    size_components : tuple of SizeComponent
        Number-weighted lognormal mixture of diameters (one component for a unimodal sample).
    modality : str
        Imaging modality (sets the expected polarity).
    pixel_size_nm : float or None
        Calibration used when an image does not carry its own.
    aspect_ratio_max : float
        Largest plausible aspect ratio of a single particle's projection.
    small_max_nm : float or None
        For bimodal samples: particles below this diameter form the "small" population; above it
        the "aggregate" population (AuCo's antagonistic pair).

    Examples
    --------
    >>> p = PhysicsPrior(diameter_range_nm=(8.0, 15.0), shape="cube",
    ...                  size_components=(SizeComponent(1.0, 11.0, 0.15),), modality="haadf")
    >>> round(p.mean_diameter_nm, 2)
    11.12
    """

    diameter_range_nm: tuple[float, float]
    shape: str = "sphere"
    size_components: tuple[SizeComponent, ...] = ()
    modality: str = "unknown"
    pixel_size_nm: float | None = None
    aspect_ratio_max: float = 1.6
    small_max_nm: float | None = None

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.diameter_range_nm)
        if not (0 < lo < hi):
            raise ValueError(f"PhysicsPrior.diameter_range_nm must satisfy 0 < low < high, got {self.diameter_range_nm}")
        object.__setattr__(self, "diameter_range_nm", (lo, hi))
        if self.shape not in SHAPE_CLASSES:
            raise ValueError(f"PhysicsPrior.shape must be one of {SHAPE_CLASSES}, got {self.shape!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"PhysicsPrior.modality must be one of {MODALITIES}, got {self.modality!r}")
        if not self.size_components:
            # Default: a lognormal spanning the range at about +-2 sigma.
            median = float(np.sqrt(lo * hi))
            sigma = float(np.log(hi / lo) / 4.0)
            object.__setattr__(self, "size_components", (SizeComponent(1.0, median, sigma),))
        total = sum(c.weight for c in self.size_components)
        if total <= 0 or any(c.weight < 0 or c.median_nm <= 0 or c.sigma < 0 for c in self.size_components):
            raise ValueError(f"PhysicsPrior.size_components must have positive weights, medians and sigmas, got {self.size_components}")
        if self.pixel_size_nm is not None and not self.pixel_size_nm > 0:
            raise ValueError(f"PhysicsPrior.pixel_size_nm must be positive or None, got {self.pixel_size_nm!r}")
        if not self.aspect_ratio_max >= 1.0:
            raise ValueError(f"PhysicsPrior.aspect_ratio_max must be >= 1, got {self.aspect_ratio_max!r}")

    @property
    def polarity(self) -> str:
        """Expected particle polarity from the modality."""
        return POLARITY_BY_MODALITY[self.modality]

    @property
    def mean_diameter_nm(self) -> float:
        """Number-weighted mean diameter of the lognormal mixture."""
        w = np.array([c.weight for c in self.size_components], float)
        m = np.array([c.median_nm * np.exp(c.sigma**2 / 2) for c in self.size_components])
        return float((w * m).sum() / w.sum())

    def sample_diameters_nm(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` diameters from the prior's mixture (used for reference distributions)."""
        w = np.array([c.weight for c in self.size_components], float)
        comp = rng.choice(len(w), size=n, p=w / w.sum())
        med = np.array([c.median_nm for c in self.size_components])[comp]
        sig = np.array([c.sigma for c in self.size_components])[comp]
        return med * np.exp(sig * rng.standard_normal(n))

    def pixel_size_for(self, image: Micrograph) -> float | None:
        """The calibration to use for ``image``: its own, else the prior's, else ``None`` (pixels)."""
        return image.pixel_size_nm if image.pixel_size_nm is not None else self.pixel_size_nm
