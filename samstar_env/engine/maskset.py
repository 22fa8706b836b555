"""MaskSet: the masks one AMG configuration produced, in SamAutomaticMaskGenerator's order.

A mask is stored on its own window of the image (its box), not as a full frame: N masks of an
H x W image would take N * H * W bytes as dense booleans (1,000 masks of a 4096² frame: 16 GB),
and building that array cost more than the engine's whole threshold replay. The dense (N, H, W)
array is still there as :attr:`MaskSet.masks`, built on first read; code that looks at one mask at
a time reads :meth:`MaskSet.window` or :meth:`MaskSet.crop` instead and never builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from samstar_env.engine.rle import decode_mask

# A stored mask: its decoded crop, or (bytes, is_runs) as :func:`~samstar_env.engine.rle.encode_mask`
# wrote them (decoded on first read).
CropSource = np.ndarray | tuple[np.ndarray, bool]


def _read_only(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class MaskCrops:
    """N binary masks, each stored on a window of the image (decoded lazily, at most once).

    Parameters
    ----------
    origins_rc : ndarray of int64, shape (N, 2)
        (row, column) of each window's top-left pixel in the image.
    shapes_hw : ndarray of int64, shape (N, 2)
        (height, width) of each window (0 x 0 for an empty mask).
    sources : tuple
        Per mask, its bool crop of shape ``shapes_hw[i]``, or ``(data, is_runs)`` in the engine's
        stored form (:mod:`samstar_env.engine.rle`), decoded on first read.

    Examples
    --------
    >>> m = np.zeros((2, 8, 8), bool); m[0, 1:3, 2:5] = True
    >>> c = MaskCrops.from_dense(m)
    >>> c.origins_rc.tolist(), c.shapes_hw.tolist(), int(c.crop(0).sum())
    ([[1, 2], [0, 0]], [[2, 3], [0, 0]], 6)
    """

    origins_rc: np.ndarray
    shapes_hw: np.ndarray
    sources: tuple[CropSource, ...]
    _decoded: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.sources)
        for name in ("origins_rc", "shapes_hw"):
            arr = np.asarray(getattr(self, name), np.int64).reshape(-1, 2)
            if len(arr) != n:
                raise ValueError(f"MaskCrops.{name} has {len(arr)} rows; expected {n} (one per mask)")
            object.__setattr__(self, name, _read_only(arr))

    def __len__(self) -> int:
        return len(self.sources)

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> MaskCrops:
        """Each mask of a (N, H, W) bool array cropped to its tight box."""
        masks = np.asarray(masks, bool)
        n = masks.shape[0]
        origins = np.zeros((n, 2), np.int64)
        shapes = np.zeros((n, 2), np.int64)
        crops: list[np.ndarray] = []
        rows_any, cols_any = masks.any(axis=2), masks.any(axis=1)
        for i in range(n):
            rows, cols = np.flatnonzero(rows_any[i]), np.flatnonzero(cols_any[i])
            if len(rows) == 0:
                crops.append(np.zeros((0, 0), bool))
                continue
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            origins[i] = (r0, c0)
            shapes[i] = (r1 - r0, c1 - c0)
            crops.append(_read_only(masks[i, r0:r1, c0:c1]))
        return cls(origins, shapes, tuple(crops))

    def crop(self, i: int) -> np.ndarray:
        """Mask ``i`` on its window (read-only bool, shape ``shapes_hw[i]``)."""
        i = int(i)
        got = self._decoded.get(i)
        if got is not None:
            return got
        src = self.sources[i]
        if isinstance(src, np.ndarray):
            return src
        h, w = (int(v) for v in self.shapes_hw[i])
        data, is_runs = src
        # A dict store is atomic: two threads decoding the same mask write equal arrays.
        out = _read_only(decode_mask(data, np.array([0, 0, w - 1, h - 1]), bool(is_runs)))
        self._decoded[i] = out
        return out

    def window(self, i: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """Mask ``i`` on rows ``r0:r1`` and columns ``c0:c1`` of the image (bool, (r1 - r0, c1 - c0)).

        Equal to ``dense[i, r0:r1, c0:c1]`` for a window inside the image, without a dense array;
        the stored crop itself (read-only, no copy) when the window is its own.
        """
        crop = self.crop(i)
        R, C = (int(v) for v in self.origins_rc[int(i)])
        h, w = crop.shape
        if (r0, c0, r1, c1) == (R, C, R + h, C + w):
            return crop
        out = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), bool)
        y0, y1, x0, x1 = max(r0, R), min(r1, R + h), max(c0, C), min(c1, C + w)
        if y0 < y1 and x0 < x1:
            out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = crop[y0 - R : y1 - R, x0 - C : x1 - C]
        return out

    def select(self, index: np.ndarray | Sequence[int]) -> MaskCrops:
        """A subset (boolean or integer index), order kept; decoded crops are carried over."""
        index = np.asarray(index)
        idx = np.arange(len(self))[index if index.size else index.astype(np.int64)]
        sources = tuple(self._decoded.get(int(i), self.sources[int(i)]) for i in idx)
        return MaskCrops(self.origins_rc[idx], self.shapes_hw[idx], sources)


@dataclass(frozen=True, eq=False)
class MaskSet:
    """Masks with their AMG annotations, in the order ``SamAutomaticMaskGenerator.generate`` returns.

    Parameters
    ----------
    crops : MaskCrops
        The binary segmentations, each on its window of the image (see :attr:`masks` for the
        dense array).
    boxes_xywh : ndarray of float64, shape (N, 4)
        Bounding boxes (x, y, w, h) as AMG reports them.
    predicted_iou : ndarray of float32, shape (N,)
        The decoder's IoU prediction.
    stability_score : ndarray of float32, shape (N,)
        IoU of the mask at threshold +- ``stability_score_offset``.
    point_coords : ndarray of float64, shape (N, 2)
        The prompt point (x, y) in image pixels.
    crop_boxes_xywh : ndarray of float64, shape (N, 4)
        The crop each mask was found in.
    image_shape : (int, int)
        (H, W) of the image.

    Examples
    --------
    >>> ms = MaskSet.empty((4, 4))
    >>> len(ms), int(ms.to_label_image().max())
    (0, 0)
    >>> m = np.zeros((1, 6, 6), bool); m[0, 2:4, 1:5] = True
    >>> ms = MaskSet.from_masks(m)
    >>> ms.window(0, 1, 0, 3, 3).astype(int).tolist()
    [[0, 0, 0], [0, 1, 1]]
    """

    crops: MaskCrops
    boxes_xywh: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    point_coords: np.ndarray
    crop_boxes_xywh: np.ndarray
    image_shape: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.crops)
        h, w = (int(v) for v in self.image_shape)
        object.__setattr__(self, "image_shape", (h, w))
        for name in ("boxes_xywh", "predicted_iou", "stability_score", "point_coords", "crop_boxes_xywh"):
            arr = getattr(self, name)
            if len(arr) != n:
                raise ValueError(f"MaskSet.{name} has {len(arr)} rows; expected {n} (one per mask)")
            object.__setattr__(self, name, _read_only(np.asarray(arr)))
        if n:
            o, s = self.crops.origins_rc, self.crops.shapes_hw
            if (o < 0).any() or (s < 0).any() or (o[:, 0] + s[:, 0] > h).any() or (o[:, 1] + s[:, 1] > w).any():
                raise ValueError(f"MaskSet.crops: a mask's window lies outside the {h} x {w} image")

    @classmethod
    def from_dense(cls, masks: np.ndarray, **annotations: Any) -> MaskSet:
        """A set from (N, H, W) bool masks and the other fields by keyword (the array is kept as :attr:`masks`)."""
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3:
            raise ValueError(f"MaskSet.from_dense: expected (N, H, W) masks, got shape {masks.shape}")
        shape = tuple(annotations.pop("image_shape", masks.shape[1:]))
        if tuple(masks.shape[1:]) != shape:
            raise ValueError(f"MaskSet.masks must have shape (N, {shape[0]}, {shape[1]}), got {masks.shape}")
        masks = _read_only(masks)
        out = cls(crops=MaskCrops.from_dense(masks), image_shape=shape, **annotations)  # type: ignore[arg-type]
        out.__dict__["masks"] = masks  # cached_property's slot: the dense form is already there
        return out

    @classmethod
    def empty(cls, image_shape: tuple[int, int]) -> MaskSet:
        """A set with no masks."""
        h, w = image_shape
        return cls.from_dense(
            np.zeros((0, h, w), bool),
            boxes_xywh=np.zeros((0, 4)),
            predicted_iou=np.zeros(0, np.float32),
            stability_score=np.zeros(0, np.float32),
            point_coords=np.zeros((0, 2)),
            crop_boxes_xywh=np.zeros((0, 4)),
        )

    @classmethod
    def from_masks(cls, masks: np.ndarray, *, predicted_iou: np.ndarray | None = None) -> MaskSet:
        """Build a set from plain binary masks (boxes from the masks, scores 1 unless given).

        Useful for scoring ground truth or another segmenter's output with the same rewards.
        """
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3:
            raise ValueError(f"MaskSet.from_masks: expected (N, H, W) masks, got shape {masks.shape}")
        n, h, w = masks.shape
        crops = MaskCrops.from_dense(masks)
        points = np.zeros((n, 2))
        for i in range(n):
            ys, xs = np.nonzero(crops.crop(i))
            if len(xs):
                points[i] = ((xs + crops.origins_rc[i, 1]).mean(), (ys + crops.origins_rc[i, 0]).mean())
        (r0, c0), (hh, ww) = crops.origins_rc.T, crops.shapes_hw.T
        boxes = np.stack([c0, r0, np.maximum(ww - 1, 0), np.maximum(hh - 1, 0)], axis=1).astype(float)
        iou = np.ones(n, np.float32) if predicted_iou is None else np.asarray(predicted_iou, np.float32)
        out = cls(
            crops=crops,
            boxes_xywh=boxes,
            predicted_iou=iou,
            stability_score=np.ones(n, np.float32),
            point_coords=points,
            crop_boxes_xywh=np.tile(np.array([0.0, 0.0, w, h]), (n, 1)),
            image_shape=(h, w),
        )
        out.__dict__["masks"] = _read_only(masks)
        return out

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> MaskSet:
        """One mask per nonzero label of an instance label image."""
        labels = np.asarray(labels)
        ids = np.unique(labels)
        ids = ids[ids != 0]
        return cls.from_masks(labels[None] == ids[:, None, None] if len(ids) else np.zeros((0, *labels.shape), bool))

    def __len__(self) -> int:
        return len(self.crops)

    @cached_property
    def masks(self) -> np.ndarray:
        """(N, H, W) read-only bool: every mask at the image size (built on first read: N * H * W bytes)."""
        out = np.zeros((len(self), *self.image_shape), bool)
        for i in range(len(self)):
            r, c = self.crops.origins_rc[i]
            h, w = self.crops.shapes_hw[i]
            out[i, r : r + h, c : c + w] = self.crops.crop(i)
        return _read_only(out)

    def crop(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Mask ``i`` on its stored window and the window's (row, column) origin (no copy)."""
        r, c = self.crops.origins_rc[int(i)]
        return self.crops.crop(i), (int(r), int(c))

    def window(self, i: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """Mask ``i`` on rows ``r0:r1`` and columns ``c0:c1`` of the image (see :meth:`MaskCrops.window`)."""
        return self.crops.window(i, r0, c0, r1, c1)

    def tight_box(self, i: int) -> tuple[int, int, int, int] | None:
        """Mask ``i``'s tight box (r0, c0, r1, c1), half-open in image pixels; None when it is empty.

        Its stored window may be larger (a user's crops); this reads the crop, never the frame.
        """
        crop, (r, c) = self.crop(i)
        rows = np.flatnonzero(crop.any(axis=1))
        if len(rows) == 0:
            return None
        cols = np.flatnonzero(crop.any(axis=0))
        return (r + int(rows[0]), c + int(cols[0]), r + int(rows[-1]) + 1, c + int(cols[-1]) + 1)

    def full(self, i: int) -> np.ndarray:
        """Mask ``i`` as a new (H, W) bool array."""
        crop, (r, c) = self.crop(i)
        out = np.zeros(self.image_shape, bool)
        out[r : r + crop.shape[0], c : c + crop.shape[1]] = crop
        return out

    @cached_property
    def areas(self) -> np.ndarray:
        """Pixel count of each mask (int64)."""
        return _read_only(np.array([np.count_nonzero(self.crops.crop(i)) for i in range(len(self))], np.int64))

    def to_amg_records(self) -> list[dict[str, Any]]:
        """The list of dicts ``SamAutomaticMaskGenerator.generate`` returns in ``binary_mask`` mode."""
        areas = self.areas
        return [
            {
                "segmentation": self.full(i),
                "area": int(areas[i]),
                "bbox": [float(v) for v in self.boxes_xywh[i]],
                "predicted_iou": float(self.predicted_iou[i]),
                "point_coords": [[float(v) for v in self.point_coords[i]]],
                "stability_score": float(self.stability_score[i]),
                "crop_box": [float(v) for v in self.crop_boxes_xywh[i]],
            }
            for i in range(len(self))
        ]

    def to_label_image(self) -> np.ndarray:
        """An int32 instance label image (0 = background, mask i -> label i + 1).

        Overlaps are resolved by painting larger masks first, so a smaller mask lying on a larger
        one stays visible (the rule micro-sam and SAM's demo use: a particle on an aggregate keeps
        its own label). Equal areas keep AMG order (the later one on top).
        """
        h, w = self.image_shape
        out = np.zeros((h, w), np.int32)
        for i in np.argsort(-self.areas, kind="stable"):
            crop, (r, c) = self.crop(i)
            out[r : r + crop.shape[0], c : c + crop.shape[1]][crop] = i + 1
        return out

    def select(self, index: np.ndarray | list[int]) -> MaskSet:
        """A subset (boolean or integer index), order preserved."""
        idx = np.asarray(index)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        out = MaskSet(
            crops=self.crops.select(idx),
            boxes_xywh=self.boxes_xywh[idx],
            predicted_iou=self.predicted_iou[idx],
            stability_score=self.stability_score[idx],
            point_coords=self.point_coords[idx],
            crop_boxes_xywh=self.crop_boxes_xywh[idx],
            image_shape=self.image_shape,
        )
        if "masks" in self.__dict__:
            out.__dict__["masks"] = _read_only(self.masks[idx])
        return out
