"""Particles as sprites, and the ground truth they stack into.

Every generator builds a list of :class:`Sprite` objects in *stacking order* (first = lowest on the
support, last = on top), then calls :func:`drop_hidden` and :func:`ground_truth`. Keeping one
composition routine for all tasks is what makes the label invariant hold by construction:
``labels[p] == i + 1`` exactly where sprite ``i`` covers ``p`` and no later sprite does.

A sprite holds its particle only inside its own bounding box (which may stick out of the image), so
rendering costs O(particle area), not O(image area), per particle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np

from samstar_env.data.instances import SparseInstances
from samstar_env.data.micrograph import ParticleTruth

# A particle keeps its place in the ground truth only if at least this many of its pixels are visible
# in the image, and at least this fraction of its in-image area: a sliver under a neighbour or at the
# frame edge is not something a microscopist (or SAM) could delineate, and GT that lists it would
# punish every segmenter equally. Such particles are removed from the *scene* before the image is
# rendered, so the image never shows an object the GT does not list. Removing a particle can only
# uncover the ones below it, so one pass suffices.
MIN_VISIBLE_PX: int = 8
MIN_VISIBLE_FRACTION: float = 0.25


@dataclass(frozen=True, eq=False)
class Sprite:
    """One particle rendered inside its bounding box.

    Parameters
    ----------
    top_left_px : (int, int)
        Image (row, column) of ``mask[0, 0]``; may be negative or beyond the frame.
    mask : ndarray of bool, shape (h, w)
        Amodal projection: pixel centres inside the particle's outline.
    depth : ndarray of float32, shape (h, w)
        The particle's contribution to the task's contrast quantity (HAADF: scattering optical
        depth, sigma * thickness; BF-TEM: absorption exponent). Soft at the edge.
    diameter_nm : float
        True size (cube: edge length; otherwise the equivalent circular diameter of the outline).
    shape : str
        ``"sphere"``, ``"cube"`` or ``"irregular"``.
    kind : str
        Population it was drawn from.
    texture : ndarray of float32, shape (h, w), optional
        Additive intensity modulation inside the particle (lattice fringes), or ``None``.
    """

    top_left_px: tuple[int, int]
    mask: np.ndarray
    depth: np.ndarray
    diameter_nm: float
    shape: str
    kind: str = "particle"
    texture: np.ndarray | None = None

    def slices(self, image_shape: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
        """(image slices, sprite slices) of the part inside the image; ``None`` if none is."""
        r0, c0 = self.top_left_px
        h, w = self.mask.shape
        H, W = image_shape
        ir0, ic0, ir1, ic1 = max(r0, 0), max(c0, 0), min(r0 + h, H), min(c0 + w, W)
        if ir0 >= ir1 or ic0 >= ic1:
            return None
        return (slice(ir0, ir1), slice(ic0, ic1)), (slice(ir0 - r0, ir1 - r0), slice(ic0 - c0, ic1 - c0))


def stack_labels(sprites: Sequence[Sprite], image_shape: tuple[int, int]) -> np.ndarray:
    """Visible label image: sprite ``i`` gets ``i + 1``; later sprites cover earlier ones."""
    labels = np.zeros(image_shape, np.int32)
    for i, sp in enumerate(sprites):
        sl = sp.slices(image_shape)
        if sl is None:
            continue
        (isl, ssl) = sl
        labels[isl][sp.mask[ssl]] = i + 1
    return labels


def _in_image_area(sp: Sprite, image_shape: tuple[int, int]) -> int:
    sl = sp.slices(image_shape)
    return 0 if sl is None else int(np.count_nonzero(sp.mask[sl[1]]))


def drop_hidden(
    sprites: Sequence[Sprite],
    image_shape: tuple[int, int],
    *,
    min_visible_px: int = MIN_VISIBLE_PX,
    min_visible_fraction: float = MIN_VISIBLE_FRACTION,
) -> list[Sprite]:
    """Remove particles too hidden (or too far outside the frame) to be ground truth.

    Keeps the stacking order. See :data:`MIN_VISIBLE_PX` for why the scene, not just the GT, loses them.
    """
    labels = stack_labels(sprites, image_shape)
    visible = np.bincount(labels.ravel(), minlength=len(sprites) + 1)[1:]
    kept = []
    for i, sp in enumerate(sprites):
        area = _in_image_area(sp, image_shape)
        if area > 0 and visible[i] >= min_visible_px and visible[i] >= min_visible_fraction * area:
            kept.append(sp)
    return kept


def ground_truth(
    sprites: Sequence[Sprite], image_shape: tuple[int, int]
) -> tuple[np.ndarray, SparseInstances, tuple[ParticleTruth, ...]]:
    """Visible labels, amodal instance masks and the particle table, in stacking order.

    The amodal masks are crops at their tight boxes (:class:`~samstar_env.data.instances.SparseInstances`),
    never an (N, H, W) stack: besides the label image, memory and time are O(particle pixels).
    """
    labels = stack_labels(sprites, image_shape)
    visible = np.bincount(labels.ravel(), minlength=len(sprites) + 1)[1:]
    origins = np.zeros((len(sprites), 2), np.int64)
    crops: list[np.ndarray] = []
    table = []
    for i, sp in enumerate(sprites):
        sl = sp.slices(image_shape)
        area, centroid = 0, (float("nan"), float("nan"))
        crops.append(np.zeros((0, 0), bool))
        if sl is not None:
            inside = sp.mask[sl[1]]
            rows, cols = np.nonzero(inside)  # within the box only: O(particle), not O(image)
            area = rows.size
            if area:
                r0, c0 = sl[0][0].start, sl[0][1].start
                centroid = (float(rows.mean()) + r0, float(cols.mean()) + c0)
                # The amodal mask on its tight box, copied: the value owns its pixels, not the sprite's.
                rmin, rmax, cmin, cmax = int(rows[0]), int(rows[-1]), int(cols.min()), int(cols.max())
                origins[i] = (r0 + rmin, c0 + cmin)
                crops[i] = inside[rmin : rmax + 1, cmin : cmax + 1].copy()
        table.append(
            ParticleTruth(
                label=i + 1,
                diameter_nm=float(sp.diameter_nm),
                shape=sp.shape,
                centroid_px=centroid,
                occluded_fraction=float(1.0 - visible[i] / area) if area else 1.0,
                kind=sp.kind,
            )
        )
    return labels, SparseInstances(origins, tuple(crops), image_shape), tuple(table)


def paint(sprites: Sequence[Sprite], image_shape: tuple[int, int], *, attr: str = "depth") -> np.ndarray:
    """Sum a per-sprite float field (``"depth"`` or ``"texture"``) into an image.

    Summing, not overwriting, is the transmission physics: where particles overlap in projection the
    beam crosses both, so HAADF signal and BF absorption add up.
    """
    out = np.zeros(image_shape, np.float32)
    for sp in sprites:
        arr = getattr(sp, attr)
        sl = sp.slices(image_shape)
        if arr is None or sl is None:
            continue
        out[sl[0]] += arr[sl[1]]
    return out


# --------------------------------------------------------------------------------------------- knobs

K = TypeVar("K")


def make_knobs(cls: type[K], task: str, knobs: Mapping[str, Any]) -> K:
    """Build a task's frozen knob dataclass, naming any unknown knob and listing the valid ones."""
    valid = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(knobs) - set(valid))
    if unknown:
        raise ValueError(f"unknown knob(s) {unknown} for task {task!r}; valid knobs: {valid}")
    return cls(**knobs)


def check_range(owner: object, name: str, lo: float, hi: float, *, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``owner.name`` is a finite number (an integer if asked) in [lo, hi]."""
    v = getattr(owner, name)
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(v, kinds) and not isinstance(v, bool) and bool(np.isfinite(v)) and lo <= v <= hi
    if not ok:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{type(owner).__name__}.{name} must be {what} in [{lo}, {hi}], got {v!r}")


def knobs_dict(knobs: object) -> dict[str, Any]:
    """A knob dataclass as a plain dict (for Micrograph metadata)."""
    return {f.name: getattr(knobs, f.name) for f in fields(knobs)}  # type: ignore[arg-type]



def lognormal_range_nm(median_nm: float, sigma: float) -> tuple[float, float]:
    """Plausible diameter range of a lognormal population: median * exp(+-2.5 sigma) (~99 % of particles),
    widened to at least +-1 % of the median so a sigma of 0 still gives a valid range."""
    lo = median_nm * float(np.exp(-2.5 * sigma))
    hi = median_nm * float(np.exp(2.5 * sigma))
    return min(lo, 0.99 * median_nm), max(hi, 1.01 * median_nm)
