"""The two expensive AMG stages, computed once and kept: crop embeddings and decoded proposals.

:func:`embed_crop` runs SAM's image encoder on one crop (through ``SamPredictor.set_image``, as
SamAutomaticMaskGenerator does). :func:`decode_crop` runs the prompt encoder and mask decoder on one
point grid, in exactly AMG's point batches (matrix products can round differently with another
batch size), and reduces each proposal to what every later AMG stage needs:

- the mask thresholded at ``model.mask_threshold``, cropped to its box and bit-packed (full-size float
  logits of thousands of proposals would take gigabytes);
- its box (``batched_mask_to_box``, crop frame), the crop-edge flag (``is_box_near_crop_edge``),
  the predicted IoU and the prompt point;
- its stability score (``calculate_stability_score``) for each offset of a known grid. Stability
  needs the logits, which are not kept, so a new offset is served by decoding again
  (:func:`decode_stability`) and adding it to the entry.

Every value is produced by segment_anything's own helpers on the same tensors AMG builds, and all of
them are per-proposal, so filtering first (AMG) or last (the engine) gives identical numbers.
Proposals stay in AMG's order (batch, point, mask index): torchvision's NMS breaks ties by order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam
from segment_anything.utils.amg import (
    batch_iterator,
    batched_mask_to_box,
    calculate_stability_score,
    is_box_near_crop_edge,
)

CropBox = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class CropEmbedding:
    """The image encoder's output for one crop, with the sizes ``SamPredictor`` tracks.

    Parameters
    ----------
    features : torch.Tensor, shape (1, C, h, w)
        Image embedding.
    original_size : (int, int)
        (H, W) of the crop.
    input_size : (int, int)
        (H, W) of the crop after ``ResizeLongestSide`` (before padding).
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        """Memory held."""
        return int(self.features.numel() * self.features.element_size())

    def predictor(self, model: Sam) -> SamPredictor:
        """A fresh ``SamPredictor`` with this embedding set (one per call: predictors hold state)."""
        pred = SamPredictor(model)
        pred.features = self.features
        pred.original_size = self.original_size
        pred.input_size = self.input_size
        pred.is_image_set = True
        return pred


@torch.no_grad()
def embed_crop(model: Sam, image: np.ndarray, crop_box: Sequence[int]) -> CropEmbedding:
    """Embed ``image[y0:y1, x0:x1]`` exactly as ``SamAutomaticMaskGenerator._process_crop`` does."""
    x0, y0, x1, y1 = crop_box
    pred = SamPredictor(model)
    pred.set_image(image[y0:y1, x0:x1, :])
    return CropEmbedding(
        features=pred.features,
        original_size=tuple(int(v) for v in pred.original_size),
        input_size=tuple(int(v) for v in pred.input_size),
    )


@dataclass(frozen=True)
class RegionResult:
    """``remove_small_regions`` (holes then islands) applied to one proposal's full-size mask.

    Parameters
    ----------
    changed : bool
        Whether either pass changed the mask (AMG's NMS prefers unchanged masks).
    box : ndarray of int64, shape (4,)
        ``batched_mask_to_box`` of the new mask (image frame, xyxy).
    bits : ndarray of uint8
        The new mask cropped to ``box`` and bit-packed (empty when unchanged).
    """

    changed: bool
    box: np.ndarray
    bits: np.ndarray


@dataclass(eq=False)
class CropProposals:
    """All decoded proposals of one crop and point grid, in AMG's order.

    Parameters
    ----------
    crop_box : (x0, y0, x1, y1)
        The crop in the image.
    points : ndarray of float64, shape (M, 2)
        Prompt point of each proposal, crop frame (AMG's ``points`` before ``uncrop_points``).
    iou_preds : ndarray of float32, shape (M,)
        Predicted IoU.
    boxes : ndarray of int64, shape (M, 4)
        Box of the thresholded mask, crop frame, xyxy.
    near_crop_edge : ndarray of bool, shape (M,)
        ``is_box_near_crop_edge`` (AMG drops these).
    mask_bits : ndarray of uint8
        Concatenated bit-packed masks, each cropped to its box.
    mask_offsets : ndarray of int64, shape (M + 1,)
        Start of each mask in ``mask_bits``.
    stability : dict of float -> ndarray of float32, shape (M,)
        Stability score per offset.
    regions : dict
        Memo of small-region post-processing: ``{min_area: {index: RegionResult}}`` (not persisted).
    """

    crop_box: CropBox
    points: np.ndarray
    iou_preds: np.ndarray
    boxes: np.ndarray
    near_crop_edge: np.ndarray
    mask_bits: np.ndarray
    mask_offsets: np.ndarray
    stability: dict[float, np.ndarray]
    regions: dict[int, dict[int, RegionResult]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return int(self.iou_preds.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held (arrays and the region memo)."""
        n = sum(a.nbytes for a in (self.points, self.iou_preds, self.boxes, self.near_crop_edge, self.mask_bits, self.mask_offsets))
        n += sum(s.nbytes for s in self.stability.values())
        n += sum(r.box.nbytes + r.bits.nbytes + 64 for memo in self.regions.values() for r in memo.values())
        return int(n)

    def mask_crop(self, i: int) -> np.ndarray:
        """Mask ``i`` cropped to its box (bool, shape (y1 - y0 + 1, x1 - x0 + 1))."""
        return unpack_mask(self.mask_bits[self.mask_offsets[i] : self.mask_offsets[i + 1]], self.boxes[i])

    def full_mask(self, i: int, image_shape: tuple[int, int]) -> np.ndarray:
        """Mask ``i`` in the image frame (what AMG's ``uncrop_masks`` + RLE round trip yields)."""
        out = np.zeros(image_shape, bool)
        paste(out, self.mask_crop(i), self.boxes[i], offset=self.crop_box[:2])
        return out

    def add_stability(self, values: dict[float, np.ndarray]) -> None:
        """Add stability scores for more offsets."""
        with self.lock:
            self.stability = {**self.stability, **values}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the disk cache."""
        offs = sorted(self.stability)
        return {
            "crop_box": np.asarray(self.crop_box, np.int64),
            "points": self.points,
            "iou_preds": self.iou_preds,
            "boxes": self.boxes,
            "near_crop_edge": self.near_crop_edge,
            "mask_bits": self.mask_bits,
            "mask_offsets": self.mask_offsets,
            "stability_offsets": np.asarray(offs, np.float64),
            "stability": np.stack([self.stability[o] for o in offs]) if offs else np.zeros((0, len(self)), np.float32),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> CropProposals:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            crop_box=tuple(int(v) for v in a["crop_box"]),
            points=a["points"],
            iou_preds=a["iou_preds"],
            boxes=a["boxes"],
            near_crop_edge=a["near_crop_edge"],
            mask_bits=a["mask_bits"],
            mask_offsets=a["mask_offsets"],
            stability={float(o): a["stability"][k] for k, o in enumerate(a["stability_offsets"])},
        )


def unpack_mask(bits: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Inverse of the box-cropped bit packing."""
    h, w = int(box[3] - box[1] + 1), int(box[2] - box[0] + 1)
    return np.unpackbits(bits, count=h * w).reshape(h, w).view(bool)


def pack_mask(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Crop a full mask to ``box`` (xyxy, inclusive; ``[0, 0, 0, 0]`` for an empty mask) and bit-pack it."""
    return np.packbits(mask[int(box[1]) : int(box[3]) + 1, int(box[0]) : int(box[2]) + 1])


def paste(out: np.ndarray, crop: np.ndarray, box: np.ndarray, *, offset: Sequence[int] = (0, 0)) -> None:
    """Write a box-cropped mask into a full-size boolean array."""
    x = int(box[0]) + int(offset[0])
    y = int(box[1]) + int(offset[1])
    out[y : y + crop.shape[0], x : x + crop.shape[1]] |= crop


def _batches(
    predictor: SamPredictor, grid: np.ndarray, crop_box: Sequence[int], points_per_batch: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield (points, flat logits, flat IoU) per AMG batch, computed as ``_process_batch`` does."""
    x0, y0, x1, y1 = crop_box
    cropped_im_size = (y1 - y0, x1 - x0)
    points_scale = np.array(cropped_im_size)[None, ::-1]
    points_for_image = grid * points_scale
    for (points,) in batch_iterator(points_per_batch, points_for_image):
        transformed = predictor.transform.apply_coords(points, cropped_im_size)
        in_points = torch.as_tensor(transformed, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        masks, iou_preds, _ = predictor.predict_torch(
            in_points[:, None, :], in_labels[:, None], multimask_output=True, return_logits=True
        )
        yield points.repeat(masks.shape[1], axis=0), masks.flatten(0, 1), iou_preds.flatten(0, 1)


def _stabilities(logits: torch.Tensor, threshold: float, offsets: Iterable[float]) -> dict[float, torch.Tensor]:
    return {float(o): calculate_stability_score(logits, threshold, float(o)) for o in offsets}


@torch.no_grad()
def decode_crop(
    predictor: SamPredictor,
    *,
    crop_box: Sequence[int],
    orig_size: tuple[int, int],
    grid: np.ndarray,
    points_per_batch: int,
    offsets: Iterable[float],
) -> CropProposals:
    """Decode every point of ``grid`` on the crop whose embedding ``predictor`` holds.

    Parameters
    ----------
    predictor : SamPredictor
        With the crop's embedding set (:meth:`CropEmbedding.predictor`).
    crop_box : (x0, y0, x1, y1)
        The crop.
    orig_size : (int, int)
        (H, W) of the whole image (for the crop-edge flag).
    grid : ndarray, shape (P, 2)
        Normalized point grid of the crop's layer.
    points_per_batch : int
        AMG's batch size (part of the result's identity, see the module docstring).
    offsets : iterable of float
        Stability offsets to compute.

    Returns
    -------
    CropProposals
    """
    offsets = sorted({float(o) for o in offsets})
    thr = predictor.model.mask_threshold
    orig_h, orig_w = orig_size
    crop_box = [int(v) for v in crop_box]
    pts, ious, boxes, edges, bits, stab = [], [], [], [], [], {o: [] for o in offsets}
    for points, logits, iou in _batches(predictor, grid, crop_box, points_per_batch):
        for o, s in _stabilities(logits, thr, offsets).items():
            stab[o].append(s.cpu().numpy())
        binary = logits > thr
        del logits
        b = batched_mask_to_box(binary)
        edges.append(is_box_near_crop_edge(b, crop_box, [0, 0, orig_w, orig_h]).cpu().numpy())
        b_np = b.cpu().numpy().astype(np.int64, copy=False)
        binary_np = binary.cpu().numpy()
        bits.extend(pack_mask(m, bx) for m, bx in zip(binary_np, b_np, strict=True))
        pts.append(np.asarray(points, np.float64))
        ious.append(iou.cpu().numpy())
        boxes.append(b_np)
    sizes = np.array([len(b) for b in bits], np.int64)
    return CropProposals(
        crop_box=tuple(crop_box),
        points=np.concatenate(pts) if pts else np.zeros((0, 2)),
        iou_preds=np.concatenate(ious) if ious else np.zeros(0, np.float32),
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64),
        near_crop_edge=np.concatenate(edges) if edges else np.zeros(0, bool),
        mask_bits=np.concatenate(bits) if bits else np.zeros(0, np.uint8),
        mask_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        stability={o: (np.concatenate(v) if v else np.zeros(0, np.float32)) for o, v in stab.items()},
    )


@torch.no_grad()
def decode_stability(
    predictor: SamPredictor,
    *,
    crop_box: Sequence[int],
    grid: np.ndarray,
    points_per_batch: int,
    offsets: Iterable[float],
) -> dict[float, np.ndarray]:
    """Stability scores for new offsets, decoding again (the logits are not cached)."""
    offsets = sorted({float(o) for o in offsets})
    thr = predictor.model.mask_threshold
    stab: dict[float, list[np.ndarray]] = {o: [] for o in offsets}
    for _, logits, _ in _batches(predictor, grid, [int(v) for v in crop_box], points_per_batch):
        for o, s in _stabilities(logits, thr, offsets).items():
            stab[o].append(s.cpu().numpy())
    return {o: (np.concatenate(v) if v else np.zeros(0, np.float32)) for o, v in stab.items()}
