"""The two expensive AMG stages, computed once and kept: crop embeddings and decoded proposals.

:func:`embed_crop` runs SAM's image encoder on one crop (through ``SamPredictor.set_image``, as
SamAutomaticMaskGenerator does). :func:`decode_crop` runs the prompt encoder and mask decoder on one
point grid, in exactly AMG's point batches (matrix products can round differently with another
batch size), and reduces each proposal to what every later AMG stage needs:

- the mask thresholded at ``model.mask_threshold``, cropped to its box and stored as run lengths or
  packed bits, whichever is smaller (full-size float logits of thousands of proposals would take
  gigabytes);
- its box (``batched_mask_to_box``, crop frame), the crop-edge flag (``is_box_near_crop_edge``),
  the predicted IoU and the prompt point;
- its stability score (``calculate_stability_score``'s numbers) for each offset of a known grid,
  all from one pass over the logits (:mod:`samstar_env.engine.scan`). Stability needs the logits,
  which are not kept, so a new offset is served by decoding again (:func:`decode_stability`) and
  adding it to the entry.

The decoder runs on AMG's point batches; the upsampling to full resolution runs on sub-batches of
points bounded in bytes (:data:`DEFAULT_SUBBATCH_BYTES`), each scanned and dropped before the next, so
the memory of a decode does not grow with the grid and grows with the image only by one point's
logits.

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
from segment_anything.utils.amg import batch_iterator, is_box_near_crop_edge

from samstar_env.engine.rle import decode_mask, encode_mask
from samstar_env.engine.scan import float32_thresholds, scan_logits, stability_from_counts

__all__ = ["CropEmbedding", "CropProposals", "RegionResult", "decode_crop", "decode_mask", "decode_stability",
           "embed_crop", "encode_mask", "paste", "subbatch_points"]

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
    data : ndarray of uint8
        The new mask cropped to ``box``, stored by :func:`~samstar_env.engine.rle.encode_mask`
        (empty when unchanged).
    is_runs : bool
        Whether ``data`` holds run lengths (else packed bits).
    """

    changed: bool
    box: np.ndarray
    data: np.ndarray
    is_runs: bool = False


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
    mask_data : ndarray of uint8
        The masks, each cropped to its box and stored as run lengths or packed bits, whichever is
        smaller (:mod:`samstar_env.engine.rle`), concatenated.
    mask_offsets : ndarray of int64, shape (M + 1,)
        Start of each mask in ``mask_data`` (multiples of 4).
    mask_is_runs : ndarray of bool, shape (M,)
        Whether each mask is stored as run lengths.
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
    mask_data: np.ndarray
    mask_offsets: np.ndarray
    mask_is_runs: np.ndarray
    stability: dict[float, np.ndarray]
    regions: dict[int, dict[int, RegionResult]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return int(self.iou_preds.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held (arrays and the region memo)."""
        n = sum(a.nbytes for a in (self.points, self.iou_preds, self.boxes, self.near_crop_edge, self.mask_data, self.mask_offsets,
                                     self.mask_is_runs))
        n += sum(s.nbytes for s in self.stability.values())
        n += sum(r.box.nbytes + r.data.nbytes + 64 for memo in self.regions.values() for r in memo.values())
        return int(n)

    def mask_crop(self, i: int) -> np.ndarray:
        """Mask ``i`` cropped to its box (bool, shape (y1 - y0 + 1, x1 - x0 + 1))."""
        return decode_mask(self.mask_data[self.mask_offsets[i] : self.mask_offsets[i + 1]], self.boxes[i], bool(self.mask_is_runs[i]))

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
            "mask_data": self.mask_data,
            "mask_offsets": self.mask_offsets,
            "mask_is_runs": self.mask_is_runs,
            "stability_offsets": np.asarray(offs, np.float64),
            "stability": np.stack([self.stability[o] for o in offs]) if offs else np.zeros((0, len(self)), np.float32),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> CropProposals:
        """Inverse of :meth:`to_arrays`.

        The per-proposal scalars are copied (torch wants writable arrays); the mask bytes, nearly
        all of it, stay views of what the disk cache read.
        """
        return cls(
            crop_box=tuple(int(v) for v in a["crop_box"]),
            points=np.array(a["points"]),
            iou_preds=np.array(a["iou_preds"]),
            boxes=np.array(a["boxes"]),
            near_crop_edge=np.array(a["near_crop_edge"]),
            mask_data=a["mask_data"],
            mask_offsets=np.array(a["mask_offsets"]),
            mask_is_runs=np.array(a["mask_is_runs"]),
            stability={float(o): np.array(a["stability"][k]) for k, o in enumerate(a["stability_offsets"])},
        )


def paste(out: np.ndarray, crop: np.ndarray, box: np.ndarray, *, offset: Sequence[int] = (0, 0)) -> None:
    """Write a box-cropped mask into a full-size boolean array."""
    x = int(box[0]) + int(offset[0])
    y = int(box[1]) + int(offset[1])
    out[y : y + crop.shape[0], x : x + crop.shape[1]] |= crop


# Upsampled logits of one sub-batch are at most this many bytes (with the upsampling's intermediate
# copy), or one point's worth when a point alone is larger: AMG holds a whole point batch of them
# (64 x 3 x H x W x 4 bytes, 3.2 GB at 2048²) and peaks at about twice that; the engine's peak is
# bounded by this instead, whatever the grid. Small sub-batches are also faster, because the upsampled
# logits are scanned while still in the CPU cache (measured at 512², samstar-tiny, points_per_side 32:
# 6.4 s cold with 256 MB sub-batches, 5.1 s with 32 MB or 8 MB).
DEFAULT_SUBBATCH_BYTES = 32 << 20


def subbatch_points(model: Sam, crop_size: tuple[int, int], max_bytes: int) -> int:
    """Points whose upsampled logits (3 masks each, float32, plus the ``img_size`` intermediate) fit in ``max_bytes``."""
    side = int(model.image_encoder.img_size)
    per_point = 3 * 4 * (int(crop_size[0]) * int(crop_size[1]) + side * side)
    return max(1, int(max_bytes) // per_point)


def _batches(
    predictor: SamPredictor, grid: np.ndarray, crop_box: Sequence[int], points_per_batch: int, max_bytes: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, Iterator[torch.Tensor]]]:
    """Per AMG point batch: (points repeated per mask, flat predicted IoU, the flat full-size logits in sub-batches).

    The prompt encoder and mask decoder run on AMG's whole batch, as ``SamPredictor.predict_torch``
    runs them (matrix products round differently with another batch size); only the upsampling
    (``Sam.postprocess_masks``, per-mask arithmetic) runs on sub-batches of points, each dropped
    before the next is made.
    """
    x0, y0, x1, y1 = crop_box
    cropped_im_size = (y1 - y0, x1 - x0)
    points_scale = np.array(cropped_im_size)[None, ::-1]
    points_for_image = grid * points_scale
    model = predictor.model
    step = subbatch_points(model, cropped_im_size, max_bytes)
    for (points,) in batch_iterator(points_per_batch, points_for_image):
        transformed = predictor.transform.apply_coords(points, cropped_im_size)
        in_points = torch.as_tensor(transformed, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        sparse, dense = model.prompt_encoder(points=(in_points[:, None, :], in_labels[:, None]), boxes=None, masks=None)
        low_res, iou_preds = model.mask_decoder(
            image_embeddings=predictor.features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )

        def chunks(low_res: torch.Tensor = low_res) -> Iterator[torch.Tensor]:
            for s in range(0, low_res.shape[0], step):
                yield model.postprocess_masks(low_res[s : s + step], predictor.input_size, predictor.original_size).flatten(0, 1)

        yield points.repeat(low_res.shape[1], axis=0), iou_preds.flatten(0, 1), chunks()


@torch.no_grad()
def decode_crop(
    predictor: SamPredictor,
    *,
    crop_box: Sequence[int],
    orig_size: tuple[int, int],
    grid: np.ndarray,
    points_per_batch: int,
    offsets: Iterable[float],
    max_bytes: int = DEFAULT_SUBBATCH_BYTES,
    backend: str | None = None,
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
        Stability offsets to compute (all from the same single pass over the logits).
    max_bytes : int
        Bound on the full-resolution logits held at once (see :func:`subbatch_points`).
    backend : {"numba", "torch"}, optional
        Implementation of the logit scan (:func:`samstar_env.engine.scan.scan_logits`).

    Returns
    -------
    CropProposals
    """
    offsets = sorted({float(o) for o in offsets})
    thr = float(predictor.model.mask_threshold)
    thresholds, pairs = float32_thresholds(thr, offsets)
    orig_h, orig_w = orig_size
    crop_box = [int(v) for v in crop_box]
    pts, ious, boxes, data, sizes, is_runs, counts = [], [], [], [], [], [], []
    for points, iou, logit_chunks in _batches(predictor, grid, crop_box, points_per_batch, max_bytes):
        for logits in logit_chunks:
            res = scan_logits(logits, thresholds=thresholds, mask_threshold=thr, backend=backend)
            del logits
            counts.append(res.counts)
            boxes.append(res.boxes)
            data.append(res.data)
            sizes.append(res.sizes)
            is_runs.append(res.is_runs)
        pts.append(np.asarray(points, np.float64))
        ious.append(iou.cpu().numpy())
    box_arr = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64)
    count_arr = np.concatenate(counts) if counts else np.zeros((0, len(thresholds)), np.int64)
    near_edge = is_box_near_crop_edge(torch.from_numpy(box_arr), crop_box, [0, 0, orig_w, orig_h]).numpy()
    size_arr = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    return CropProposals(
        crop_box=tuple(crop_box),
        points=np.concatenate(pts) if pts else np.zeros((0, 2)),
        iou_preds=np.concatenate(ious) if ious else np.zeros(0, np.float32),
        boxes=box_arr,
        near_crop_edge=near_edge,
        mask_data=np.concatenate(data) if data else np.zeros(0, np.uint8),
        mask_offsets=np.concatenate([[0], np.cumsum(size_arr)]).astype(np.int64),
        mask_is_runs=np.concatenate(is_runs) if is_runs else np.zeros(0, bool),
        stability=stability_from_counts(count_arr, pairs),
    )


@torch.no_grad()
def decode_stability(
    predictor: SamPredictor,
    *,
    crop_box: Sequence[int],
    grid: np.ndarray,
    points_per_batch: int,
    offsets: Iterable[float],
    max_bytes: int = DEFAULT_SUBBATCH_BYTES,
    backend: str | None = None,
) -> dict[float, np.ndarray]:
    """Stability scores for new offsets, decoding again (the logits are not cached)."""
    offsets = sorted({float(o) for o in offsets})
    thr = float(predictor.model.mask_threshold)
    thresholds, pairs = float32_thresholds(thr, offsets)
    counts = []
    for _, _, logit_chunks in _batches(predictor, grid, [int(v) for v in crop_box], points_per_batch, max_bytes):
        for logits in logit_chunks:
            counts.append(scan_logits(logits, thresholds=thresholds, mask_threshold=thr, backend=backend).counts)
            del logits
    return stability_from_counts(np.concatenate(counts) if counts else np.zeros((0, len(thresholds)), np.int64), pairs)
