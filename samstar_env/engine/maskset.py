"""MaskSet: the masks one AMG configuration produced, in SamAutomaticMaskGenerator's order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class MaskSet:
    """Masks with their AMG annotations, in the order ``SamAutomaticMaskGenerator.generate`` returns.

    Parameters
    ----------
    masks : ndarray of bool, shape (N, H, W)
        Binary segmentations at the original image size.
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
    """

    masks: np.ndarray
    boxes_xywh: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    point_coords: np.ndarray
    crop_boxes_xywh: np.ndarray
    image_shape: tuple[int, int]

    def __post_init__(self) -> None:
        n = int(self.masks.shape[0])
        if self.masks.ndim != 3 or tuple(self.masks.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"MaskSet.masks must have shape (N, {self.image_shape[0]}, {self.image_shape[1]}), got {self.masks.shape}")
        for name in ("boxes_xywh", "predicted_iou", "stability_score", "point_coords", "crop_boxes_xywh"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"MaskSet.{name} has {len(getattr(self, name))} rows; expected {n} (one per mask)")
        for name in ("masks", "boxes_xywh", "predicted_iou", "stability_score", "point_coords", "crop_boxes_xywh"):
            arr = getattr(self, name)
            if arr.flags.writeable:
                arr = arr.view()
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    @classmethod
    def empty(cls, image_shape: tuple[int, int]) -> MaskSet:
        """A set with no masks."""
        h, w = image_shape
        return cls(
            masks=np.zeros((0, h, w), bool),
            boxes_xywh=np.zeros((0, 4)),
            predicted_iou=np.zeros(0, np.float32),
            stability_score=np.zeros(0, np.float32),
            point_coords=np.zeros((0, 2)),
            crop_boxes_xywh=np.zeros((0, 4)),
            image_shape=(int(h), int(w)),
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
        boxes = np.zeros((n, 4))
        points = np.zeros((n, 2))
        for i, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            if len(xs):
                boxes[i] = (xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())
                points[i] = (xs.mean(), ys.mean())
        iou = np.ones(n, np.float32) if predicted_iou is None else np.asarray(predicted_iou, np.float32)
        return cls(
            masks=masks,
            boxes_xywh=boxes,
            predicted_iou=iou,
            stability_score=np.ones(n, np.float32),
            point_coords=points,
            crop_boxes_xywh=np.tile(np.array([0.0, 0.0, w, h]), (n, 1)),
            image_shape=(h, w),
        )

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> MaskSet:
        """One mask per nonzero label of an instance label image."""
        labels = np.asarray(labels)
        ids = np.unique(labels)
        ids = ids[ids != 0]
        return cls.from_masks(labels[None] == ids[:, None, None] if len(ids) else np.zeros((0, *labels.shape), bool))

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def areas(self) -> np.ndarray:
        """Pixel count of each mask (int64)."""
        return self.masks.sum(axis=(1, 2), dtype=np.int64)

    def to_amg_records(self) -> list[dict[str, Any]]:
        """The list of dicts ``SamAutomaticMaskGenerator.generate`` returns in ``binary_mask`` mode."""
        areas = self.areas
        return [
            {
                "segmentation": self.masks[i].copy(),
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
        if len(self) == 0:
            return out
        order = np.argsort(-self.areas, kind="stable")
        for i in order:
            out[self.masks[i]] = i + 1
        return out

    def select(self, index: np.ndarray | list[int]) -> MaskSet:
        """A subset (boolean or integer index), order preserved."""
        idx = np.asarray(index)
        return MaskSet(
            masks=self.masks[idx],
            boxes_xywh=self.boxes_xywh[idx],
            predicted_iou=self.predicted_iou[idx],
            stability_score=self.stability_score[idx],
            point_coords=self.point_coords[idx],
            crop_boxes_xywh=self.crop_boxes_xywh[idx],
            image_shape=self.image_shape,
        )
