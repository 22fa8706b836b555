"""Tiles: segment a large image piece by piece at native resolution, and stitch the masks back.

SAM resizes whatever it is given to its input size (1024 px for ViT-H, 256 px for samstar-tiny v3),
so a 10-px particle of a 4096² frame shrinks to 2.5 px, or under 1 px. Like micro-sam
(``--tile_shape``, ``--halo``), samstar cuts the image into tiles, runs each tile with ``halo`` pixels
of context on every side through the same cached engine (keyed per tile), and stitches the masks.

The grid. Rows and columns are each cut into ``ceil(side / tile_shape)`` equal parts (the parts differ
by at most one pixel, so no thin last tile): these are the tiles' *inner* regions, which cover the
image without overlap. A tile's *padded* region adds ``halo`` pixels on each side, clipped to the image;
that is what AMG sees. Tiles are numbered row by row.

The stitching rule (:func:`stitch`), in image coordinates:

1. **Ownership.** A mask is *owned* by its tile when its centroid lies in the tile's inner region (an
   empty mask: its prompt point). A particle seen whole by two tiles is owned by one of them.
2. **Cut masks.** A mask that touches its padded region's edge where that edge is inside the image
   was cut by the tile: the particle goes on beyond what the tile saw.
3. **Same particle across tiles.** Two masks of different tiles are one particle when, on the
   pixels both tiles saw (the intersection of their padded regions), their IoU is at least
   ``same_iou`` (0.5). These pairs are joined into groups, transitively; a mask alone is a group.
4. **Keep, merge or suppress.** A group that no tile owns is dropped (its particle belongs to
   another tile's masks). A group holding an uncut mask keeps the uncut one with the highest
   predicted IoU (owned ones first) and drops the others. A group of cut masks only (a particle
   larger than the halo, seen in parts) becomes the union of its parts, with the annotations of its
   largest part.

The stitched set lists tiles in order, each tile's masks in AMG's order; a group stands at the place
of its first member. One tile covering the image is the untiled result exactly (the engine then does
not tile at all). Memory follows the tile, not the image: each tile is decoded on its own and every
stitched mask stays a crop at its box (:class:`~samstar_env.engine.maskset.MaskCrops`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from samstar_env.engine.maskset import MaskCrops, MaskSet
from samstar_env.errors import InputError
from samstar_env.params import AmgParams

SAME_PARTICLE_IOU = 0.5

# Box = (r0, c0, r1, c1), half-open, in image pixels.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Tile:
    """One tile of a grid.

    Parameters
    ----------
    index : int
        Its number, row by row.
    inner : (r0, c0, r1, c1)
        The region it owns (half-open rows and columns); the inner regions cover the image once.
    padded : (r0, c0, r1, c1)
        ``inner`` grown by the halo and clipped to the image: the pixels AMG sees.
    """

    index: int
    inner: Box
    padded: Box

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the padded region."""
        r0, c0, r1, c1 = self.padded
        return (r1 - r0, c1 - c0)

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """The padded region as AMG writes boxes: (x0, y0, x1, y1)."""
        r0, c0, r1, c1 = self.padded
        return (c0, r0, c1, r1)


def check_tiling(tile_shape: int, halo: int, *, source: str = "tiling") -> None:
    """Raise :class:`~samstar_env.errors.InputError` naming the option when ``tile_shape``/``halo`` are unusable.

    Examples
    --------
    >>> check_tiling(512, 64)
    >>> check_tiling(32, 64, source="--tile-shape")
    Traceback (most recent call last):
    ...
    samstar_env.errors.InputError: --tile-shape 32 is smaller than the halo 64; expected a tile of at least the halo (e.g. 512 with a 64-px halo)
    """
    if isinstance(tile_shape, bool) or not isinstance(tile_shape, (int, np.integer)) or tile_shape < 0:
        raise InputError(f"{source}: tile_shape={tile_shape!r}; expected 0 (no tiles) or a positive number of pixels")
    if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
        raise InputError(f"{source}: halo={halo!r}; expected a non-negative number of pixels")
    if tile_shape and tile_shape < halo:
        raise InputError(f"{source} {tile_shape} is smaller than the halo {halo}; expected a tile of at least the "
                         "halo (e.g. 512 with a 64-px halo)")


def _cuts(n: int, parts: int) -> list[int]:
    # Boundaries of `parts` near-equal parts of range(n).
    return [(i * n) // parts for i in range(parts + 1)]


def tile_grid(image_shape: tuple[int, int], *, tile_shape: int, halo: int) -> tuple[Tile, ...]:
    """The tiles of an image (one tile covering it when ``tile_shape`` is 0 or at least the image).

    Examples
    --------
    >>> tiles = tile_grid((100, 50), tile_shape=50, halo=8)
    >>> [(t.inner, t.padded) for t in tiles]
    [((0, 0, 50, 50), (0, 0, 58, 50)), ((50, 0, 100, 50), (42, 0, 100, 50))]
    """
    check_tiling(tile_shape, halo)
    h, w = (int(v) for v in image_shape[:2])
    if h < 1 or w < 1:
        raise InputError(f"tile_grid: image_shape={tuple(image_shape)}; expected a non-empty image")
    if not tile_shape:
        return (Tile(0, (0, 0, h, w), (0, 0, h, w)),)
    rows, cols = _cuts(h, math.ceil(h / tile_shape)), _cuts(w, math.ceil(w / tile_shape))
    tiles = []
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            inner = (rows[i], cols[j], rows[i + 1], cols[j + 1])
            padded = (max(inner[0] - halo, 0), max(inner[1] - halo, 0), min(inner[2] + halo, h), min(inner[3] + halo, w))
            tiles.append(Tile(len(tiles), inner, padded))
    return tuple(tiles)


def _shifted(ms: MaskSet, tile: Tile, image_shape: tuple[int, int]) -> MaskSet:
    # A tile's MaskSet in image coordinates (no pixel is copied; decoded crops are carried over).
    r0, c0 = tile.padded[:2]
    crops = ms.crops
    sources = tuple(crops._decoded.get(i, crops.sources[i]) for i in range(len(crops)))
    xy = np.array([c0, r0], float)
    return MaskSet(
        crops=MaskCrops(crops.origins_rc + np.array([r0, c0]), crops.shapes_hw, sources),
        boxes_xywh=ms.boxes_xywh + np.r_[xy, 0.0, 0.0],
        predicted_iou=ms.predicted_iou,
        stability_score=ms.stability_score,
        point_coords=ms.point_coords + xy,
        crop_boxes_xywh=ms.crop_boxes_xywh + np.r_[xy, 0.0, 0.0],
        image_shape=image_shape,
    )


def _centroids(ms: MaskSet) -> np.ndarray:
    """(row, column) centroid per mask in image coordinates; an empty mask's prompt point."""
    out = np.zeros((len(ms), 2))
    for i in range(len(ms)):
        crop, (r, c) = ms.crop(i)
        area = int(np.count_nonzero(crop))
        if area == 0:
            out[i] = ms.point_coords[i, ::-1]
            continue
        out[i, 0] = r + float(np.dot(crop.sum(axis=1), np.arange(crop.shape[0]))) / area
        out[i, 1] = c + float(np.dot(crop.sum(axis=0), np.arange(crop.shape[1]))) / area
    return out


def _cut_flags(ms: MaskSet, tile: Tile, image_shape: tuple[int, int]) -> np.ndarray:
    """Whether each mask (image coordinates) touches an edge of the tile's padded region inside the image."""
    h, w = image_shape
    r0, c0, r1, c1 = tile.padded
    o, s = ms.crops.origins_rc, ms.crops.shapes_hw
    nonempty = (s > 0).all(axis=1)
    cut = ((o[:, 0] == r0) & (r0 > 0)) | ((o[:, 1] == c0) & (c0 > 0))
    cut |= ((o[:, 0] + s[:, 0] == r1) & (r1 < h)) | ((o[:, 1] + s[:, 1] == c1) & (c1 < w))
    return cut & nonempty


def _clipped_boxes(ms: MaskSet, region: Box) -> np.ndarray:
    """(N, 4) boxes (r0, c0, r1, c1) of the masks clipped to ``region`` (empty where they miss it)."""
    o, s = ms.crops.origins_rc, ms.crops.shapes_hw
    boxes = np.concatenate([o, o + s], axis=1)
    lo, hi = np.array(region[:2]), np.array(region[2:])
    return np.concatenate([np.maximum(boxes[:, :2], lo), np.minimum(boxes[:, 2:], hi)], axis=1)


def _intersect(a: Box, b: Box) -> Box | None:
    r0, c0, r1, c1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (r0, c0, r1, c1) if r0 < r1 and c0 < c1 else None


class _Groups:
    """Union-find over mask numbers (the smallest number is a group's root, so groups keep order)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.root(i), self.root(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def stitch(parts: Sequence[tuple[Tile, MaskSet]], image_shape: tuple[int, int], *,
           same_iou: float = SAME_PARTICLE_IOU) -> MaskSet:
    """One MaskSet in image coordinates from each tile's masks (tile coordinates), by the module's rule.

    Parameters
    ----------
    parts : sequence of (Tile, MaskSet)
        Each tile with the masks AMG found on its padded region.
    image_shape : (int, int)
        (H, W) of the image.
    same_iou : float
        IoU, on the pixels two tiles share, at which two of their masks are one particle.

    Returns
    -------
    MaskSet
        Masks as crops at their boxes (nothing of the image's size is allocated).

    Examples
    --------
    A particle on the border of two tiles is found by both; the stitched set holds it once.

    >>> img = np.zeros((40, 80), bool); img[10:20, 36:46] = True
    >>> tiles = tile_grid(img.shape, tile_shape=40, halo=10)
    >>> parts = []
    >>> for t in tiles:
    ...     r0, c0, r1, c1 = t.padded
    ...     parts.append((t, MaskSet.from_masks(img[None, r0:r1, c0:c1])))
    >>> len(stitch(parts, img.shape))
    1
    """
    h, w = (int(v) for v in image_shape)
    sets = [_shifted(ms, tile, (h, w)) for tile, ms in parts]
    owned_of, cut_of = [], []
    for (tile, _), ms in zip(parts, sets, strict=True):
        cy, cx = _centroids(ms).T if len(ms) else (np.zeros(0), np.zeros(0))
        # An empty mask's prompt point may sit on the image's far edge: it belongs to the last tile.
        cy, cx = np.clip(cy, 0, h - 1), np.clip(cx, 0, w - 1)
        r0, c0, r1, c1 = tile.inner
        owned_of.append((cy >= r0) & (cy < r1) & (cx >= c0) & (cx < c1))
        cut_of.append(_cut_flags(ms, tile, (h, w)))
    if not sets:
        return MaskSet.empty((h, w))
    n_per = [len(k) for k in sets]
    first = np.concatenate([[0], np.cumsum(n_per)]).astype(int)
    owned, cut = np.concatenate(owned_of), np.concatenate(cut_of)
    groups = _Groups(int(first[-1]))

    def box_of(ms: MaskSet, i: int) -> Box:
        (r, c), (hh, ww) = ms.crops.origins_rc[i], ms.crops.shapes_hw[i]
        return (int(r), int(c), int(r + hh), int(c + ww))

    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            shared = _intersect(parts[a][0].padded, parts[b][0].padded)
            if shared is None or not n_per[a] or not n_per[b]:
                continue
            ma, mb = sets[a], sets[b]
            # Boxes clipped to the shared pixels; only pairs whose clipped boxes meet are compared.
            ba, bb = _clipped_boxes(ma, shared), _clipped_boxes(mb, shared)
            meet = ((np.maximum(ba[:, None, 0], bb[None, :, 0]) < np.minimum(ba[:, None, 2], bb[None, :, 2]))
                    & (np.maximum(ba[:, None, 1], bb[None, :, 1]) < np.minimum(ba[:, None, 3], bb[None, :, 3])))
            for i, j in zip(*np.nonzero(meet), strict=True):
                bi, bj = ba[i], bb[j]
                r0, c0 = int(min(bi[0], bj[0])), int(min(bi[1], bj[1]))
                r1, c1 = int(max(bi[2], bj[2])), int(max(bi[3], bj[3]))
                wa, wb = ma.window(int(i), r0, c0, r1, c1), mb.window(int(j), r0, c0, r1, c1)
                union = np.count_nonzero(wa | wb)
                if union and np.count_nonzero(wa & wb) / union >= same_iou:
                    groups.join(int(first[a] + i), int(first[b] + j))

    # Resolve each group: drop it when no tile owns it, else keep one uncut member, or merge the cut parts.
    def locate(k: int) -> tuple[MaskSet, int]:
        t = int(np.searchsorted(first, k, side="right") - 1)
        return sets[t], k - int(first[t])

    members: dict[int, list[int]] = {}
    for k in range(int(first[-1])):
        members.setdefault(groups.root(k), []).append(k)
    origins, shapes, sources, rows, boxes_xywh = [], [], [], [], []  # rows: (set, index) whose annotations are used
    for root in sorted(members):
        ks = members[root]
        if not owned[ks].any():
            continue
        if not cut[ks].all():
            pick = max((k for k in ks if not cut[k]),
                       key=lambda k: (bool(owned[k]), float(locate(k)[0].predicted_iou[locate(k)[1]]), -k))
            ms, i = locate(pick)
            crop, (r, c) = ms.crop(i)
            origins.append((r, c)), shapes.append(crop.shape), sources.append(crop), rows.append((ms, i))
            boxes_xywh.append(ms.boxes_xywh[i])
            continue
        boxes = [box_of(*locate(k)) for k in ks]
        r0, c0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        r1, c1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        union = np.zeros((r1 - r0, c1 - c0), bool)
        for k in ks:
            ms, i = locate(k)
            union |= ms.window(i, r0, c0, r1, c1)
        union.flags.writeable = False
        largest = max(ks, key=lambda k: (int(locate(k)[0].areas[locate(k)[1]]), -k))
        origins.append((r0, c0)), shapes.append(union.shape), sources.append(union), rows.append(locate(largest))
        # As AMG reports boxes: the inclusive far corner, so width and height are one less than the span.
        boxes_xywh.append(np.array([c0, r0, c1 - c0 - 1, r1 - r0 - 1], float))
    return MaskSet(
        crops=MaskCrops(np.asarray(origins, np.int64).reshape(-1, 2), np.asarray(shapes, np.int64).reshape(-1, 2), tuple(sources)),
        boxes_xywh=np.asarray(boxes_xywh, float).reshape(-1, 4),
        predicted_iou=np.array([ms.predicted_iou[i] for ms, i in rows], np.float32),
        stability_score=np.array([ms.stability_score[i] for ms, i in rows], np.float32),
        point_coords=np.array([ms.point_coords[i] for ms, i in rows], float).reshape(-1, 2),
        crop_boxes_xywh=np.array([ms.crop_boxes_xywh[i] for ms, i in rows], float).reshape(-1, 4),
        image_shape=(h, w),
    )


# -- choosing the tiling of a run -------------------------------------------------------------------
def auto_tiling(image_shape: tuple[int, int], *, input_size: int) -> tuple[int, int] | None:
    """The tiles an image gets when the user chose none: ``(tile_shape, halo)``, or None (untiled).

    Images up to twice the model's input side S are left whole (the scale samstar-tiny's tasks and
    operating point are tuned at: 512² images on a 256-px model). Larger ones get micro-sam's
    proportions (512-px tiles with a 128-px halo for its 1024-px models): tiles of S / 2 with a halo
    of S / 8, so each padded tile (0.75 S) is enlarged to the model's input and small particles
    grow rather than shrink. Measured with samstar-tiny v3 on a 768 x 1024 synthetic perovskite
    frame (``benchmarks/scripts/bench_tiles.py``): F1@0.5 0.00 whole, 0.17 with 256-px tiles
    (halo 32), 0.32 with 128-px tiles (halo 16 or 32), at 2.4, 9 and 35 s.

    Examples
    --------
    >>> auto_tiling((512, 512), input_size=256) is None
    True
    >>> auto_tiling((4096, 4096), input_size=256)
    (128, 32)
    """
    if input_size < 1:
        raise InputError(f"auto_tiling: input_size={input_size}; expected the model's positive input side")
    if max(int(v) for v in image_shape[:2]) <= 2 * input_size:
        return None
    return input_size // 2, input_size // 8


def model_input_size(segmenter: object) -> int | None:
    """The input side of the SAM behind a segmenter (``MaskEngine`` or ``Sam``), or None when unknown."""
    model = getattr(segmenter, "model", segmenter)
    # SAM 1 keeps it on its image encoder, SAM 2 on the model.
    size = getattr(getattr(model, "image_encoder", None), "img_size", None) or getattr(model, "image_size", None)
    return int(size) if size else None


def choose_tiling(params: AmgParams, image_shape: tuple[int, int], *, input_size: int | None,
                  tile_shape: int | None = None, halo: int | None = None, source: str = "--tile-shape") -> tuple[AmgParams, str]:
    """The parameters a run uses on an image of ``image_shape``, with the tiling chosen, and a line saying which.

    Order: an explicit ``tile_shape`` (0: no tiles; ``halo`` defaults to a quarter of the tile), then
    the tiling the parameters carry (a tuned ``best_params.json``), then :func:`auto_tiling` for the
    model's ``input_size``. ``halo`` alone changes the halo of whichever tiles are chosen.

    Examples
    --------
    >>> p, line = choose_tiling(AmgParams(), (4096, 4096), input_size=256)
    >>> (p.tile_shape, p.halo), line
    ((128, 32), 'tiles of 128 px with a halo of 32 px, automatic: the image (4096 x 4096) is larger than 512 px, twice the model input (--tile-shape 0 turns tiling off)')
    >>> choose_tiling(AmgParams(), (4096, 4096), input_size=256, tile_shape=0)[1]
    'no tiles (--tile-shape 0)'
    """
    h, w = (int(v) for v in image_shape[:2])
    if tile_shape is not None:
        t = int(tile_shape)
        hl = (t // 4 if halo is None else int(halo)) if t else 0
        check_tiling(t, hl, source=source)
        out = params.replace(tile_shape=t, halo=hl)
        return out, (f"tiles of {t} px with a halo of {hl} px ({source} {t})" if t else f"no tiles ({source} 0)")
    if params.tile_shape:
        out = params if halo is None else params.replace(halo=int(halo))
        return out, f"tiles of {out.tile_shape} px with a halo of {out.halo} px (from the parameters)"
    auto = auto_tiling((h, w), input_size=input_size) if input_size else None
    if auto is None:
        return params, "no tiles"
    t, hl = auto[0], (auto[1] if halo is None else int(halo))
    check_tiling(t, hl, source="--halo")
    return params.replace(tile_shape=t, halo=hl), (
        f"tiles of {t} px with a halo of {hl} px, automatic: the image ({h} x {w}) is larger than {2 * int(input_size)} px, "
        f"twice the model input ({source} 0 turns tiling off)")


def add_tiling_arguments(parser: object) -> None:
    """Add ``--tile-shape`` and ``--halo`` to an argparse parser (segment, tune, stream, bench, cache warm)."""
    parser.add_argument(  # type: ignore[attr-defined]
        "--tile-shape", type=int, default=None, metavar="PX",
        help="cut images into PX x PX tiles segmented at native resolution and stitched (0: never tile; "
             "default: tile images larger than twice the model input, or as the parameters say)")
    parser.add_argument(  # type: ignore[attr-defined]
        "--halo", type=int, default=None, metavar="PX",
        help="context in pixels around each tile (default: a quarter of the tile)")
