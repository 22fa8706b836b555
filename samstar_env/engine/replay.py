"""The cheap AMG stages, replayed on cached proposals with AMG's own operations and order.

For one crop, ``SamAutomaticMaskGenerator._process_batch`` keeps a proposal when
``iou > pred_iou_thresh`` (only if that threshold is > 0), ``stability >= stability_score_thresh``
(only if > 0) and its box is not near the crop edge; ``_process_crop`` then runs box NMS on the
survivors in proposal order, scored by predicted IoU, and uncrops. ``_generate_masks`` runs box NMS
across crops scored by ``1 / crop area`` and ``generate`` finally runs ``postprocess_small_regions``.
Each step below uses the same torch/torchvision calls on tensors with the same values, dtypes and
order, so the result is bit-identical; only the work is smaller (no decoding, no RLE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.amg import (
    remove_small_regions,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from torchvision.ops.boxes import batched_nms, box_area

from samstar_env.engine.maskset import MaskCrops, MaskSet
from samstar_env.engine.proposals import CropProposals, RegionResult, encode_mask
from samstar_env.params import AmgParams


@dataclass(frozen=True)
class Selected:
    """Masks that survived, in AMG's output order, as references into the cached proposals.

    Parameters
    ----------
    crop : ndarray of int64, shape (N,)
        Index of the crop (into the list of :class:`CropProposals`) of each mask.
    index : ndarray of int64, shape (N,)
        Index of the proposal within its crop.
    boxes : torch.Tensor, shape (N, 4)
        Boxes in the image frame (xyxy).
    points : torch.Tensor of float64, shape (N, 2)
        Prompt points in the image frame.
    """

    crop: np.ndarray
    index: np.ndarray
    boxes: torch.Tensor
    points: torch.Tensor

    def __len__(self) -> int:
        return int(self.crop.shape[0])

    def take(self, keep: torch.Tensor) -> Selected:
        """Subset/reorder like ``MaskData.filter``."""
        k = keep.cpu().numpy()
        return Selected(self.crop[k], self.index[k], self.boxes[keep], self.points[keep])


def select_in_crop(props: CropProposals, params: AmgParams) -> torch.Tensor:
    """Indices of the proposals of one crop that AMG keeps, in the order it keeps them."""
    iou = torch.from_numpy(props.iou_preds)
    keep = torch.ones(len(props), dtype=torch.bool)
    if params.pred_iou_thresh > 0.0:
        keep &= iou > params.pred_iou_thresh
    if params.stability_score_thresh > 0.0:
        keep &= torch.from_numpy(props.stability[params.stability_score_offset]) >= params.stability_score_thresh
    keep &= ~torch.from_numpy(props.near_crop_edge)
    idx = torch.nonzero(keep).flatten()
    boxes = torch.from_numpy(props.boxes)[idx]
    keep_by_nms = batched_nms(boxes.float(), iou[idx], torch.zeros(len(idx)), iou_threshold=params.box_nms_thresh)
    return idx[keep_by_nms]


def select(crops: Sequence[CropProposals], params: AmgParams) -> Selected:
    """Per-crop filtering and NMS, uncropping, then NMS across crops (AMG's ``_generate_masks``)."""
    crop_ids, indices, boxes, points = [], [], [], []
    crop_boxes: torch.Tensor | None = None
    for c, props in enumerate(crops):
        sel = select_in_crop(props, params)
        crop_ids.append(np.full(len(sel), c, np.int64))
        indices.append(sel.numpy().astype(np.int64))
        boxes.append(uncrop_boxes_xyxy(torch.from_numpy(props.boxes)[sel], list(props.crop_box)))
        points.append(uncrop_points(torch.from_numpy(props.points)[sel], list(props.crop_box)))
        # Built exactly like AMG's data["crop_boxes"], including MaskData.cat's dtype promotion when a
        # crop contributes nothing (torch.tensor([]) is float32): the NMS scores come from it.
        cb = torch.tensor([list(props.crop_box) for _ in range(len(sel))])
        crop_boxes = cb if crop_boxes is None else torch.cat([crop_boxes, cb], dim=0)
    out = Selected(np.concatenate(crop_ids), np.concatenate(indices), torch.cat(boxes), torch.cat(points))
    # AMG itself raises IndexError here when no crop kept any mask (box_area of a (0,) tensor); an
    # empty result is the only sensible answer, and the one it gives with a single crop.
    if len(crops) > 1 and len(out) > 0:
        scores = 1 / box_area(crop_boxes)
        keep = batched_nms(out.boxes.float(), scores, torch.zeros(len(out)), iou_threshold=params.crop_nms_thresh)
        out = out.take(keep)
    return out


def region_result(props: CropProposals, i: int, min_area: int, image_shape: tuple[int, int]) -> RegionResult:
    """``postprocess_small_regions``' per-mask work for proposal ``i``, memoized on ``props``.

    Computed on the mask's box with a margin (:func:`small_regions_in_box`) rather than on the whole
    image, so its cost follows the mask, not the micrograph; the full-frame computation remains for
    the rare boxes where a margin cannot stand for the outside exactly.
    """
    memo = props.regions.get(min_area)
    if memo is not None and i in memo:
        return memo[i]
    cx, cy = int(props.crop_box[0]), int(props.crop_box[1])
    b = props.boxes[i]
    box_img = np.array([b[0] + cx, b[1] + cy, b[2] + cx, b[3] + cy], np.int64)
    # The two passes run on the box's canvas, or on the full frame where a canvas cannot stand in.
    local = small_regions_in_box(props.mask_crop(i), box_img, min_area, image_shape)
    if local is not None:
        region, changed = local
        origin = box_img[:2]
    else:
        region, changed = _holes_then_islands(props.full_mask(i, image_shape), min_area)
        origin = np.zeros(2, np.int64)
    if not changed:
        # An unchanged mask keeps its box (batched_mask_to_box gives zeros for an empty one).
        res = RegionResult(changed=False, box=box_img if region.any() else np.zeros(4, np.int64), data=np.zeros(0, np.uint8))
    else:
        sub = _mask_box(region)
        res = RegionResult(True, sub + np.tile(origin, 2), *encode_mask(region[sub[1] : sub[3] + 1, sub[0] : sub[2] + 1]))
    with props.lock:
        props.regions.setdefault(min_area, {})[i] = res
    return res


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """``batched_mask_to_box`` of one 2-D mask (xyxy, inclusive; zeros when empty), in numpy.

    A torch call per mask cost 10-13 ms under a busy CPU (its thread pool synchronizes on each small
    op; measured in an RL training process beside other work), numpy about 20 µs; the tests compare
    both on random masks.

    Examples
    --------
    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> _mask_box(m).tolist(), _mask_box(np.zeros((3, 3), bool)).tolist()
    ([2, 1, 4, 2], [0, 0, 0, 0])
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros(4, np.int64)
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.int64)


def small_regions_in_box(
    crop: np.ndarray, box: np.ndarray, min_area: int, image_shape: tuple[int, int]
) -> tuple[np.ndarray, bool] | None:
    """``remove_small_regions`` (holes, then islands) of a mask given as its box crop, or ``None``.

    The two passes run on the crop with a background margin on each side where the image extends
    beyond the box (never wider than the image does). That canvas gives exactly the full-frame
    result, restricted to the box, because

    - the mask is empty outside its box, so the background outside is what the margins stand for,
      with the same connectivity: margins exist on the same sides as the outside region, and two
      adjacent ones meet at a corner exactly when the image has that corner region;
    - every margin strip has at least ``min_area`` pixels, so each outside background region is
      "large" both in the canvas and (being larger still) in the image, and is never filled as a
      hole; holes inside the box and all islands are the same components in both;
    - the canvas origin sits at even image coordinates, so OpenCV's block-based labelling numbers
      components in the same order as on the full image (AMG's "every island is small: keep the
      largest" takes the first on a tie).

    Where a strip cannot be made wide enough (a box a few pixels from the border of a small image),
    it returns ``None`` and the caller works on the full frame.

    Returns
    -------
    (new crop, changed) or None
    """
    H, W = int(image_shape[0]), int(image_shape[1])
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = y1 - y0 + 1, x1 - x0 + 1
    if crop.shape != (h, w) or not crop.any():
        return None
    need_y = -(-int(min_area) // w) if min_area > 0 else 1
    need_x = -(-int(min_area) // h) if min_area > 0 else 1

    def pad(room: int, need: int, origin: int) -> int:
        p = min(max(need, 1), room)
        if (origin - p) % 2 and p < room:
            p += 1
        return p

    top, bottom = pad(y0, need_y, y0), min(max(need_y, 1), H - 1 - y1)
    left, right = pad(x0, need_x, x0), min(max(need_x, 1), W - 1 - x1)
    if (y0 - top) % 2 or (x0 - left) % 2:
        return None
    cw, ch = left + w + right, top + h + bottom
    if any(0 < p * side < min_area for p, side in ((top, cw), (bottom, cw), (left, ch), (right, ch))):
        return None
    canvas = np.zeros((ch, cw), bool)
    canvas[top : top + h, left : left + w] = crop
    canvas, changed = _holes_then_islands(canvas, min_area)
    return np.ascontiguousarray(canvas[top : top + h, left : left + w]), changed


def _holes_then_islands(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
    # AMG's postprocess_small_regions order: fill small holes, then drop small islands.
    mask, holes = remove_small_regions(mask, min_area, mode="holes")
    mask, islands = remove_small_regions(mask, min_area, mode="islands")
    return mask, bool(holes or islands)


def postprocess(
    crops: Sequence[CropProposals], sel: Selected, params: AmgParams, image_shape: tuple[int, int]
) -> tuple[Selected, list[RegionResult | None]]:
    """AMG's ``postprocess_small_regions``: returns the kept masks and, per kept mask, its new
    version when post-processing changed it (``None`` otherwise)."""
    if len(sel) == 0:
        return sel, []
    # Serial on purpose: a thread pool over the masks measured slower (1.8 s against 1.3 s for
    # 2,274 first-time masks on 2 cores): the per-mask work is short and mostly holds the GIL.
    area = params.min_mask_region_area
    results = [region_result(crops[c], i, area, image_shape) for c, i in zip(sel.crop.tolist(), sel.index.tolist(), strict=True)]
    new_boxes = torch.stack([torch.from_numpy(r.box) for r in results])
    scores = [float(not r.changed) for r in results]
    keep = batched_nms(
        new_boxes.float(),
        torch.as_tensor(scores),
        torch.zeros(len(new_boxes)),
        iou_threshold=max(params.box_nms_thresh, params.crop_nms_thresh),
    )
    # AMG replaces box (and mask) of the kept masks that changed; unchanged ones keep their old box.
    kept = sel.take(keep)
    changed = [results[int(k)] if results[int(k)].changed else None for k in keep]
    boxes = kept.boxes.clone()
    for j, r in enumerate(changed):
        if r is not None:
            boxes[j] = torch.from_numpy(r.box).to(boxes.dtype)
    return Selected(kept.crop, kept.index, boxes, kept.points), changed


def assemble(
    crops: Sequence[CropProposals],
    sel: Selected,
    image_shape: tuple[int, int],
    *,
    offset: float,
    changed: Sequence[RegionResult | None] | None = None,
) -> MaskSet:
    """Build the :class:`MaskSet` of the selected proposals: AMG's annotations, and each mask as the
    cached bytes of its box crop (decoded when first read, never pasted into a full frame here)."""
    n = len(sel)
    if n == 0:
        return MaskSet.empty(image_shape)
    origins = np.empty((n, 2), np.int64)
    shapes = np.empty((n, 2), np.int64)
    sources: list[tuple[np.ndarray, bool]] = []
    iou = np.empty(n, np.float32)
    stab = np.empty(n, np.float32)
    crop_xywh = np.empty((n, 4))
    for j, (c, i) in enumerate(zip(sel.crop.tolist(), sel.index.tolist(), strict=True)):
        props = crops[c]
        r = changed[j] if changed else None
        if r is not None:
            box = r.box
            sources.append((r.data, r.is_runs))
            origins[j] = (box[1], box[0])
        else:
            box = props.boxes[i]
            sources.append((props.mask_data[props.mask_offsets[i] : props.mask_offsets[i + 1]], bool(props.mask_is_runs[i])))
            origins[j] = (box[1] + props.crop_box[1], box[0] + props.crop_box[0])
        shapes[j] = (box[3] - box[1] + 1, box[2] - box[0] + 1)
        iou[j] = props.iou_preds[i]
        stab[j] = props.stability[offset][i]
        x0, y0, x1, y1 = props.crop_box
        crop_xywh[j] = (x0, y0, x1 - x0, y1 - y0)
    b = sel.boxes.double().numpy()
    boxes_xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    return MaskSet(
        crops=MaskCrops(origins, shapes, tuple(sources)),
        boxes_xywh=boxes_xywh,
        predicted_iou=iou,
        stability_score=stab,
        point_coords=sel.points.double().numpy().copy(),
        crop_boxes_xywh=crop_xywh,
        image_shape=(int(image_shape[0]), int(image_shape[1])),
    )
