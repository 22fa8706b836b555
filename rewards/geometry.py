"""Per-mask measurements and per-image estimates shared by all rewards, computed once and cached.

Every reward needs some of the same facts about each mask (area, equivalent diameter, Crofton
perimeter, solidity, ...) and about the image (a label-free foreground estimate, gradient magnitude,
a Laplacian-of-Gaussian blob count). Computing them per reward would repeat the expensive part ~10
times per evaluation, so :func:`mask_geometry` measures every mask at most ONCE per :class:`MaskSet`
(on its bounding-box crop, never the full frame) and :func:`image_features` / :func:`log_blobs`
compute the image facts once per (:class:`Micrograph`, :class:`PhysicsPrior`). Both caches are
weak-keyed on the (immutable) MaskSet / Micrograph objects, so they vanish with them and never leak
across images.

The per-MaskSet measurement is the bulk of a suite evaluation, and no preset needs all of it, so
:class:`MaskGeometry` measures the cheap facts (pixels, area, border and background flags) when it is
built and each shape feature (:data:`SHAPE_FEATURES`) only when a reward first reads it; see
``benchmarks/scripts/bench_rewards.py`` for what each costs and what each preset pays.

Conventions shared by all rewards (the guardrails of REWARDS-BACKGROUND.md):

- a *background* mask covers more than ``BACKGROUND_AREA_FRACTION`` of the frame; SAM returns such
  masks for the support film, and no single nanoparticle fills half a micrograph. It scores 0 in
  every per-mask reward and never counts as a particle;
- an *empty* mask (0 pixels, possible after AMG's small-region removal) also scores 0;
- a mask touching the image border is a truncated particle: its shape is not its own, so shape
  rewards skip it (neither good nor bad), while count, size and coverage rewards keep it;
- sizes are in nm when a pixel size is known (image first, then prior), otherwise in pixels and the
  prior's ``diameter_range_nm`` is then read as pixels;
- a per-mask mean (shape, overlap, size window, duplicates, boundary) is taken over at least
  ``count_floor`` (default 0.5) times the label-free LoG estimate of the particle count
  (:func:`expected_particle_count`): particles not returned count as failures, so one clean mask
  is not as good as all particles cleanly segmented. ``count_floor=0`` gives the plain mean.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import cv2
import numpy as np
import scipy.sparse as sp
from skimage import filters, measure
from skimage.feature import blob_log

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.data.polarity import particle_split
from samstar_env.engine.maskset import MaskCrops, MaskSet

#: A mask covering more than this fraction of the image is a background (support film) mask.
BACKGROUND_AREA_FRACTION = 0.5

#: Aspect ratio reported for degenerate (one-pixel-wide) masks instead of infinity.
MAX_ASPECT_RATIO = 1e3

#: Per-mask shape features of :class:`MaskGeometry` that are measured on first read only.
SHAPE_FEATURES = ("perimeter_px", "circularity", "solidity", "inscribed_ratio", "aspect_ratio", "rect_fill", "rect_aspect")

_CORNERS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int32)


@dataclass(frozen=True, eq=False)
class MaskGeometry:
    """Per-mask measurements of one :class:`MaskSet` (arrays of length N, in mask order).

    The cheap facts every suite reads (area, sizes, flags, pixel incidence) are measured when the
    object is built; the shape features (:data:`SHAPE_FEATURES`) on first read, each for all masks
    at once, and then cached. Each costs a few ms to ~25 ms (the Crofton perimeter) per 300 masks
    on 512x512, and each preset reads only some of them (AuCo's none), so a suite pays only for what
    its rewards use. Shape features are measured for valid masks only (non-empty, not background)
    and are 0 for the others: every reward scores those masks 0 whatever their shape, and a
    background mask's crop is most of the frame.

    Parameters
    ----------
    image_shape : (int, int)
        (H, W) of the frame.
    bbox_rc : ndarray of int64, shape (N, 4)
        Crop used for each mask: (row0, col0, row1, col1), end exclusive.
    area_px : ndarray of float64
        Pixel count.
    equivalent_diameter_px : ndarray of float64
        Diameter of the disk with the same area, ``sqrt(4 A / pi)``.
    touches_border : ndarray of bool
        The mask reaches the first or last row or column.
    is_background : ndarray of bool
        Area above ``BACKGROUND_AREA_FRACTION`` of the frame.
    flat_pixels : scipy.sparse.csr_array of bool, shape (N, H * W)
        Pixel incidence: row i holds the flat indices (row-major, ascending) of mask i's pixels.
    crops : MaskCrops
        The masks themselves, each on its window (the MaskSet's, not a copy; not the MaskSet,
        which keys the geometry cache weakly), read on each box by the shape features.

    Attributes
    ----------
    centroid_rc : ndarray of float64, shape (N, 2)
        (row, column) centroid in frame coordinates (0 for empty masks); no built-in reward reads
        it, so it is computed on first read too.
    perimeter_px : ndarray of float64
        Crofton perimeter (skimage ``perimeter_crofton``, 4 directions): unbiased on digitized
        curves, unlike a pixel-count perimeter, which matters for the 3-10 px particles of AuCo.
    circularity : ndarray of float64
        ``4 pi A / P**2`` clipped to [0, 1] (1 for a disk, pi/4 for a square).
    solidity : ndarray of float64
        Area over the area of the convex hull of the pixel centres grown by half a pixel
        (``A_hull + P_hull / 2 + pi / 4``): about 1 for any digitized convex shape at any rotation,
        about 0.87 for a merged pair of touching disks.
    inscribed_ratio : ndarray of float64
        Largest inscribed radius (peak of the exact Euclidean distance transform) over the
        equivalent radius: about 1 for a disk, 0.89 for a square, about 0.71 for two merged equal
        disks.
    aspect_ratio : ndarray of float64
        Major over minor axis of the inertia ellipse (OpenCV image moments; capped at
        ``MAX_ASPECT_RATIO``).
    rect_fill : ndarray of float64
        Area over the area of the minimum-area (rotated) rectangle around the pixel squares
        (OpenCV ``minAreaRect`` on the corners of the hull pixels): 1 for an axis-aligned square,
        0.90-0.96 for rotated digitized squares of side >= 20 px, 0.78-0.80 for digitized disks.
    rect_aspect : ndarray of float64
        Long over short side of that rectangle, >= 1.
    """

    image_shape: tuple[int, int]
    bbox_rc: np.ndarray
    area_px: np.ndarray
    equivalent_diameter_px: np.ndarray
    touches_border: np.ndarray
    is_background: np.ndarray
    flat_pixels: sp.csr_array
    crops: MaskCrops = field(repr=False)

    @property
    def n(self) -> int:
        """Number of masks."""
        return int(self.area_px.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Masks that may be particles: non-empty and not background."""
        return (self.area_px > 0) & ~self.is_background

    @property
    def shape_scorable(self) -> np.ndarray:
        """Valid masks whose outline is their own (not cut by the image border)."""
        return self.valid & ~self.touches_border

    @cached_property
    def intersections_px(self) -> sp.csr_array:
        """Sparse (N, N) matrix of pairwise pixel intersections of the valid masks (diagonal = areas).

        Computed as ``M @ M.T`` on the sparse pixel-incidence matrix of the valid masks, so the cost
        follows the number of overlapping pixels, not N**2 full frames. Rows and columns of
        invalid masks (empty or background) are empty: every reward treats those masks alike
        whatever they overlap, and a background mask's pixels, most of the frame, would dominate
        the product (measured: 0.45 s of a 1.4 s suite at 2,192 masks of samstar-tiny).
        """
        idx = np.flatnonzero(self.valid)
        m = self.flat_pixels[idx].astype(np.float32)
        sub = (m @ m.T).tocoo()
        return sp.csr_array((sub.data, (idx[sub.row], idx[sub.col])), shape=(self.n, self.n))

    @cached_property
    def union(self) -> np.ndarray:
        """(H*W,) bool: pixels covered by at least one mask (background masks included)."""
        h, w = self.image_shape
        out = np.zeros(h * w, bool)
        if self.n:
            out[self.flat_pixels.indices] = True  # a scatter: 20x faster than np.unique here
        return out

    @cached_property
    def _pixel_rc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner mask, row, column) of every entry of ``flat_pixels``, in its order."""
        counts = np.diff(self.flat_pixels.indptr)
        row, col = np.divmod(self.flat_pixels.indices, self.image_shape[1])
        return np.repeat(np.arange(self.n), counts), row, col

    @cached_property
    def centroid_rc(self) -> np.ndarray:
        """(row, column) centroid of each mask in frame coordinates (0 for empty masks)."""
        out = np.zeros((self.n, 2))
        full = self.area_px > 0
        if full.any():
            owner, row, col = self._pixel_rc
            out[full, 0] = np.bincount(owner, weights=row, minlength=self.n)[full] / self.area_px[full]
            out[full, 1] = np.bincount(owner, weights=col, minlength=self.n)[full] / self.area_px[full]
        return out

    # --- shape features, measured on first read ----------------------------------------------
    def _crop(self, i: int | np.integer) -> np.ndarray:
        """Mask i on its box crop as contiguous uint8 0/1 (what OpenCV and skimage take)."""
        r0, c0, r1, c1 = self.bbox_rc[i]
        return np.ascontiguousarray(self.crops.window(i, r0, c0, r1, c1)).view(np.uint8)

    @cached_property
    def perimeter_px(self) -> np.ndarray:
        """Crofton perimeter of each valid mask (see the class docstring)."""
        out = np.zeros(self.n)
        for i in np.flatnonzero(self.valid):
            # perimeter_crofton pads by one pixel itself, so a mask cut by its crop edge still
            # gets a closed outline.
            out[i] = float(measure.perimeter_crofton(self._crop(i), directions=4))
        return out

    @cached_property
    def circularity(self) -> np.ndarray:
        """``4 pi A / P**2`` clipped to [0, 1]; 0 where the perimeter is 0."""
        p = self.perimeter_px
        out = np.zeros(self.n)
        pos = p > 0
        out[pos] = np.minimum(1.0, 4.0 * np.pi * self.area_px[pos] / p[pos] ** 2)
        return out

    @cached_property
    def _hulls(self) -> list[np.ndarray | None]:
        """Convex hull (OpenCV, crop coordinates x, y) of each valid mask's pixel centres; None for others.

        The hull of a mask is the hull of the first and last pixel of each of its rows (every other
        pixel lies between those two), so only those are passed to ``cv2.convexHull``: ~2 x height
        points instead of the area, the same hull, several times faster on particle-sized masks.
        """
        out: list[np.ndarray | None] = [None] * self.n
        valid = self.valid
        if not valid.any():
            return out
        indptr = self.flat_pixels.indptr
        owner, row, col = self._pixel_rc
        # Pixels are row-major within a mask, so a run ends where the row or the mask changes.
        first = np.ones(row.size, bool)
        first[1:] = (row[1:] != row[:-1]) | (owner[1:] != owner[:-1])
        last = np.ones(row.size, bool)
        last[:-1] = first[1:]
        pos = np.flatnonzero(first | last)
        who = owner[pos]
        pts = np.stack([col[pos] - self.bbox_rc[who, 1], row[pos] - self.bbox_rc[who, 0]], axis=1).astype(np.int32)
        bounds = np.searchsorted(pos, indptr)
        for i in np.flatnonzero(valid):
            out[i] = cv2.convexHull(pts[bounds[i]:bounds[i + 1]])
        return out

    @cached_property
    def solidity(self) -> np.ndarray:
        """Area over the area of the half-pixel-grown convex hull of the pixel centres."""
        out = np.zeros(self.n)
        for i, hull in enumerate(self._hulls):
            if hull is None:
                continue
            # Convex hull of the pixel centres, grown by half a pixel (Steiner formula for the
            # Minkowski sum with a disk of radius 1/2: A + P/2 + pi/4): it matches the pixel-count
            # area of a digitized convex shape at any rotation (a rotated square keeps ~0.97, where
            # a hull of pixel corners would add the staircase and drop it to ~0.91), and it stays
            # positive for one-pixel-wide masks, whose centre hull has no area.
            hull_area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + np.pi / 4.0
            out[i] = min(1.0, self.area_px[i] / hull_area)
        return out

    @cached_property
    def _min_area_rect(self) -> tuple[np.ndarray, np.ndarray]:
        """(rect_fill, rect_aspect) of the minimum-area rectangle around the hull pixels' squares."""
        fill, aspect = np.zeros(self.n), np.zeros(self.n)
        for i, hull in enumerate(self._hulls):
            if hull is None:
                continue
            # Rectangle around the pixel SQUARES (all corners of the hull pixels), not their
            # centres: exact for an axis-aligned square (fill 1) and correct at any rotation, where
            # adding one pixel to a centre-based rectangle is not.
            corners = (hull.reshape(-1, 1, 2) + _CORNERS[None]).reshape(-1, 2)
            (_, (rw, rh), _) = cv2.minAreaRect(corners)
            fill[i] = min(1.0, self.area_px[i] / max(rw * rh, 1.0))
            aspect[i] = max(rw, rh) / max(min(rw, rh), 1.0)
        return fill, aspect

    @cached_property
    def rect_fill(self) -> np.ndarray:
        """Area over the area of the minimum-area rectangle around the pixel squares."""
        return self._min_area_rect[0]

    @cached_property
    def rect_aspect(self) -> np.ndarray:
        """Long over short side of the minimum-area rectangle, >= 1."""
        return self._min_area_rect[1]

    @cached_property
    def inscribed_ratio(self) -> np.ndarray:
        """Largest inscribed radius over the equivalent radius."""
        out = np.zeros(self.n)
        for i in np.flatnonzero(self.valid):
            # One-pixel pad: the distance transform must see background all around, or a mask
            # cut by its crop edge would look infinitely deep.
            lab = cv2.copyMakeBorder(self._crop(i), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
            peak = float(cv2.distanceTransform(lab, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).max())
            # The precise L2 transform is exact (Felzenszwalb): every value is the square root of an
            # integer squared distance, but it is returned in float32 whose last bit depends on
            # OpenCV's thread partition (measured: +-1 ulp from one call to the next). Snapping to
            # that integer gives the exact radius (scipy's distance_transform_edt, 2.5x slower, gives
            # the same), the same in every run.
            out[i] = np.sqrt(np.rint(peak * peak)) / np.sqrt(self.area_px[i] / np.pi)
        return out

    @cached_property
    def aspect_ratio(self) -> np.ndarray:
        """Major over minor axis of the inertia ellipse, capped at ``MAX_ASPECT_RATIO``."""
        out = np.zeros(self.n)
        todo = np.flatnonzero(self.valid)
        if todo.size == 0:
            return out
        cov = np.empty((todo.size, 2, 2))
        for k, i in enumerate(todo):
            mom = cv2.moments(self._crop(i), binaryImage=True)
            cov[k] = ((mom["mu20"], mom["mu11"]), (mom["mu11"], mom["mu02"]))
        # Eigenvalues of the inertia tensor (central second moments / area), as regionprops defines
        # axis lengths; +1/12 per axis is the pixel's own inertia so a 1-px line keeps a width.
        ev = np.linalg.eigvalsh(cov / self.area_px[todo, None, None] + np.eye(2) / 12.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.minimum(MAX_ASPECT_RATIO, np.sqrt(ev[:, 1] / ev[:, 0]))
        out[todo] = np.where(ev[:, 0] > 0, ratio, MAX_ASPECT_RATIO)
        return out


def _crop_bounds(ms: MaskSet) -> np.ndarray:
    """Crops from AMG's boxes (x, y, w, h with inclusive ends, as ``batched_mask_to_box`` gives)."""
    h, w = ms.image_shape
    b = np.asarray(ms.boxes_xywh, float).reshape(-1, 4)
    c0 = np.clip(np.floor(b[:, 0]), 0, w).astype(np.int64)
    r0 = np.clip(np.floor(b[:, 1]), 0, h).astype(np.int64)
    c1 = np.clip(np.ceil(b[:, 0] + b[:, 2]) + 1, 0, w).astype(np.int64)
    r1 = np.clip(np.ceil(b[:, 1] + b[:, 3]) + 1, 0, h).astype(np.int64)
    return np.stack([r0, c0, r1, c1], axis=1)


@lru_cache(maxsize=4)
def _frame_index(h: int, w: int) -> np.ndarray:
    """(H, W) read-only array of flat (row-major) pixel indices: a crop of it indexed by a crop of a
    mask gives that mask's flat indices in one step (faster than ``nonzero`` plus arithmetic)."""
    out = np.arange(h * w, dtype=np.int64).reshape(h, w)
    out.flags.writeable = False
    return out


def _measure(ms: MaskSet) -> MaskGeometry:
    """The eager part of :class:`MaskGeometry`: each mask's pixels (read on its crop) and their count."""
    h, w = ms.image_shape
    n = len(ms)
    bbox = _crop_bounds(ms)
    frame_index = _frame_index(h, w)
    flat = [frame_index[r0:r1, c0:c1][ms.window(i, r0, c0, r1, c1)] for i, (r0, c0, r1, c1) in enumerate(bbox.tolist())]
    counts = np.array([f.size for f in flat], np.int64)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    idx = np.concatenate(flat) if flat else np.zeros(0, np.int64)
    pixels = sp.csr_array((np.ones(idx.size, np.bool_), idx, indptr), shape=(n, h * w))
    area = counts.astype(float)
    # Only a mask whose crop reaches the frame edge can touch it: look at that edge of the crop.
    border = np.zeros(n, bool)
    for i in np.flatnonzero((bbox[:, 0] == 0) | (bbox[:, 1] == 0) | (bbox[:, 2] == h) | (bbox[:, 3] == w)):
        r0, c0, r1, c1 = bbox[i]
        crop = ms.window(i, r0, c0, r1, c1)
        if crop.size:
            border[i] = bool(
                (r0 == 0 and crop[0].any()) or (c0 == 0 and crop[:, 0].any())
                or (r1 == h and crop[-1].any()) or (c1 == w and crop[:, -1].any())
            )
    return MaskGeometry(
        image_shape=(h, w),
        bbox_rc=bbox,
        area_px=area,
        equivalent_diameter_px=np.sqrt(4.0 * area / np.pi),
        touches_border=border,
        is_background=area > BACKGROUND_AREA_FRACTION * h * w,
        flat_pixels=pixels,
        crops=ms.crops,
    )


_GEOMETRY_CACHE: weakref.WeakKeyDictionary[MaskSet, MaskGeometry] = weakref.WeakKeyDictionary()


def mask_geometry(masks: MaskSet) -> MaskGeometry:
    """The :class:`MaskGeometry` of ``masks``, measured once per MaskSet object and cached.

    Parameters
    ----------
    masks : MaskSet
        Masks with boxes that enclose them (AMG's and ``MaskSet.from_masks``'s boxes do).

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> m = np.zeros((1, 64, 64), bool)
    >>> m[(0, *disk((32, 32), 12))] = True
    >>> ms = MaskSet.from_masks(m)
    >>> g = mask_geometry(ms)
    >>> bool(abs(g.circularity[0] - 1) < 0.05), mask_geometry(ms) is g
    (True, True)
    """
    geom = _GEOMETRY_CACHE.get(masks)
    if geom is None:
        geom = _measure(masks)
        _GEOMETRY_CACHE[masks] = geom
    return geom


def pixel_size_nm(image: Micrograph, prior: PhysicsPrior) -> float | None:
    """The calibration in use (image's, else prior's), ``None`` when sizes stay in pixels."""
    return prior.pixel_size_for(image)


def diameters(masks: MaskSet, image: Micrograph, prior: PhysicsPrior) -> np.ndarray:
    """Equivalent diameters of all masks in nm (in px when no pixel size is known)."""
    px = pixel_size_nm(image, prior)
    d = mask_geometry(masks).equivalent_diameter_px
    return d * px if px is not None else d.copy()


def diameter_range_px(image: Micrograph, prior: PhysicsPrior) -> tuple[float, float]:
    """The prior's diameter range converted to pixels (read as pixels when uncalibrated)."""
    px = pixel_size_nm(image, prior)
    lo, hi = prior.diameter_range_nm
    return (lo / px, hi / px) if px is not None else (lo, hi)


@dataclass(frozen=True, eq=False)
class ImageFeatures:
    """Label-free facts about one image under one prior.

    Parameters
    ----------
    polarity : str
        ``"bright"`` or ``"dark"``: the modality's, or for ``unknown`` modality the Otsu class
        that covers less of the frame (particles rarely cover most of a micrograph); see
        :func:`samstar_env.data.polarity.particle_split`, which the observation features share.
    smoothed : ndarray of float32
        Gaussian-smoothed image (sigma 1 px) with particles made bright (inverted for dark polarity).
    foreground : ndarray of bool
        Threshold of ``smoothed`` (Li by default, see :func:`image_features`).
    gradient : ndarray of float32
        Sobel gradient magnitude of ``smoothed``.
    """

    polarity: str
    smoothed: np.ndarray
    foreground: np.ndarray
    gradient: np.ndarray

    @cached_property
    def median_gradient(self) -> float:
        """Median of ``gradient`` over the frame: the gradient of flat regions (the noise level)."""
        return float(np.median(self.gradient))

    @cached_property
    def foreground_components(self) -> tuple[np.ndarray, int]:
        """8-connected components of the foreground: (label image, count)."""
        lab = measure.label(self.foreground, connectivity=2)
        return lab, int(lab.max())


_IMAGE_CACHE: weakref.WeakKeyDictionary[Micrograph, dict] = weakref.WeakKeyDictionary()


def image_cache(image: Micrograph) -> dict:
    """The per-image memo of the label-free rewards (features, blobs, components), freed with the image.

    Keyed weakly by the :class:`Micrograph` value, so every reward judging the same image shares one
    foreground estimate and one blob search; keys inside are tuples that start with what they hold.
    """
    d = _IMAGE_CACHE.get(image)
    if d is None:
        d = {}
        _IMAGE_CACHE[image] = d
    return d


THRESHOLDS = ("li", "otsu", "triangle", "local")


def image_features(image: Micrograph, prior: PhysicsPrior, *, threshold: str = "li") -> ImageFeatures:
    """Foreground estimate, polarity and gradient of ``image``, cached per image, prior and method.

    Parameters
    ----------
    image : Micrograph
        The micrograph (ground truth, if any, is never read).
    prior : PhysicsPrior
        Supplies the modality (polarity) when the image's is ``unknown``, and the particle scale
        that sets the block size of the local threshold.
    threshold : {"li", "otsu", "triangle", "local"}
        ``skimage.filters.threshold_li`` (default), ``threshold_otsu``, ``threshold_triangle``,
        or ``threshold_local`` with a block of about three particle diameters (uneven
        illumination). Measured Dice of the foreground against the ground-truth foreground on the
        synthetic tune images (seeds 0-2; perovskite / ito / auco): Otsu 0.98 / 0.82 / 0.66,
        Li 0.95 / 0.90 / 0.78, triangle 0.89 / 0.94 / 0.93. Otsu fails when particles cover a
        small fraction of the frame or vary in brightness (AuCo's dim small particles beside bright
        aggregates); Li's minimum cross-entropy is the best all-round choice; the triangle method
        suits sparse samples whose histogram is one dominant support peak with a tail.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> img = np.full((64, 64), 0.1, np.float32)
    >>> img[disk((32, 32), 10)] = 0.9
    >>> f = image_features(Micrograph(img, modality="haadf"), PhysicsPrior((5.0, 30.0)))
    >>> f.polarity, int(f.foreground.sum()) > 250
    ('bright', True)
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f"image_features: threshold must be one of {THRESHOLDS}, got {threshold!r}")
    cache = image_cache(image)
    key = ("features", prior, threshold)
    if key in cache:
        return cache[key]
    # One threshold/polarity rule for rewards and observation features (samstar_env.data.polarity).
    split = particle_split(image, prior)
    img, polarity, t = split.smoothed, split.polarity, split.threshold
    if t is None:
        # A flat frame has no foreground; Otsu is undefined on it.
        fg = np.zeros(img.shape, bool)
    else:
        if polarity == "dark":
            img = (1.0 - img).astype(np.float32)
            t = 1.0 - t
        if threshold == "local":
            d_hi = diameter_range_px(image, prior)[1]
            block = int(max(3, 2 * int(1.5 * d_hi) + 1))
            fg = img > filters.threshold_local(img, block_size=block, offset=0.0)
            fg &= img > t - 0.5 * (t - img.min())  # keep flat background out of the local estimate
        else:
            fg = img > {"otsu": t, "li": filters.threshold_li(img), "triangle": filters.threshold_triangle(img)}[threshold]
    grad = filters.sobel(img).astype(np.float32)
    out = ImageFeatures(polarity=polarity, smoothed=img, foreground=fg, gradient=grad)
    cache[key] = out
    return out


def log_blobs(
    image: Micrograph, prior: PhysicsPrior, *, d_min_px: float, d_max_px: float, num_sigma: int = 5, threshold: float = 0.02
) -> np.ndarray:
    """Laplacian-of-Gaussian blobs (``skimage.feature.blob_log``) for diameters in [d_min_px, d_max_px].

    A blob of radius r responds most at sigma = r / sqrt(2), so the sigma range is
    ``d / (2 sqrt 2)``. Run on the polarity-corrected, smoothed image (particles bright).
    Cached per image, prior and scale.

    Returns
    -------
    ndarray, shape (K, 3)
        (row, column, sigma) of each blob.
    """
    cache = image_cache(image)
    key = ("log", prior, round(d_min_px, 6), round(d_max_px, 6), num_sigma, threshold)
    if key in cache:
        return cache[key]
    feats = image_features(image, prior)
    lo_s = max(0.5, d_min_px / (2.0 * np.sqrt(2.0)))
    hi_s = max(lo_s * 1.01, d_max_px / (2.0 * np.sqrt(2.0)))
    img = feats.smoothed
    span = float(img.max() - img.min())
    if span < 1e-6:
        blobs = np.zeros((0, 3))
    else:
        # exclude_border=False: particles cut by the frame edge are still particles.
        blobs = blob_log((img - img.min()) / span, min_sigma=lo_s, max_sigma=hi_s, num_sigma=num_sigma,
                         threshold=threshold, overlap=0.5, exclude_border=False)
        blobs = np.asarray(blobs, float).reshape(-1, 3)
    cache[key] = blobs
    return blobs


def expected_particle_count(
    image: Micrograph, prior: PhysicsPrior, *, interior: bool = False, log_threshold: float = 0.02
) -> int:
    """Label-free estimate of how many particles the image holds: LoG blobs at the prior's scale.

    The blobs of :func:`log_blobs` with diameters in the prior's range (at ``log_threshold`` 0.02
    the count is within 10% of the true count on the synthetic tune images of all three tasks,
    see :func:`samstar_env.rewards.count_plausibility`). With ``interior``, only blobs whose
    circle (radius sigma sqrt 2) lies inside the frame: the particles a shape reward, which skips
    masks cut by the border, can score.
    """
    lo, hi = diameter_range_px(image, prior)
    blobs = log_blobs(image, prior, d_min_px=lo, d_max_px=hi, threshold=log_threshold)
    if not interior or len(blobs) == 0:
        return int(len(blobs))
    h, w = image.shape
    r = blobs[:, 2] * np.sqrt(2.0)
    inside = (blobs[:, 0] - r > 0) & (blobs[:, 0] + r < h - 1) & (blobs[:, 1] - r > 0) & (blobs[:, 1] + r < w - 1)
    return int(inside.sum())


def _count_floor(image: Micrograph, prior: PhysicsPrior, *, count_floor: float, interior: bool) -> float:
    if not np.isfinite(count_floor) or count_floor < 0:
        raise ValueError(f"count_floor must be a finite number >= 0 (0 disables it), got {count_floor!r}")
    if count_floor == 0:
        return 0.0
    return float(count_floor) * expected_particle_count(image, prior, interior=interior)


def per_mask_mean(
    scores: np.ndarray, geom: MaskGeometry, image: Micrograph, prior: PhysicsPrior, *, skip_border: bool,
    count_floor: float = 0.5,
) -> float:
    """Mean of per-mask scores with the shared conventions, over at least ``count_floor`` times the
    expected particle count.

    Empty and background masks score 0; masks cut by the image border are left out when
    ``skip_border`` (shape rewards), and then only the particles inside the frame are expected.
    Returns 0.0 when no mask is left to score, so that an empty output is always a poor one.

    The sum is divided by ``max(n_scored, count_floor * N_log)`` with N_log from
    :func:`expected_particle_count`: particles the segmentation did not return count as failures,
    so a few clean masks do not score as high as a clean segmentation of every particle (the plain
    mean has that degenerate optimum; ``benchmarks/scripts/reward_fidelity.py`` measured it). 0.5 tolerates
    a LoG estimate up to twice the true count; ``count_floor=0`` gives the plain mean (rewards
    version 1). Raises ``ValueError`` naming ``count_floor`` unless it is a finite number >= 0.
    """
    s = np.where(geom.valid, np.asarray(scores, float), 0.0)
    keep = ~(geom.touches_border & geom.valid) if skip_border else np.ones(geom.n, bool)
    if not keep.any():
        return 0.0
    floor = _count_floor(image, prior, count_floor=count_floor, interior=skip_border)
    return float(np.clip(s[keep].sum() / max(float(keep.sum()), floor), 0.0, 1.0))
