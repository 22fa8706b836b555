"""MaskSet stores each mask on its window: the dense array only when read, and equal to it when read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from samstar_env.engine import MaskCrops, MaskEngine, MaskSet
from samstar_env.engine.rle import encode_mask
from samstar_env.params import AmgParams


def _random_masks(seed: int = 0, n: int = 12, shape: tuple[int, int] = (37, 53)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, *shape), bool)
    for i in range(n - 1):  # the last mask stays empty
        r0, c0 = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
        r1, c1 = rng.integers(r0 + 1, shape[0] + 1), rng.integers(c0 + 1, shape[1] + 1)
        out[i, r0:r1, c0:c1] = rng.random((r1 - r0, c1 - c0)) < 0.7
    return out


def test_windows_equal_dense_slices_for_any_window():
    dense = _random_masks()
    ms = MaskSet.from_masks(dense)
    lazy = MaskSet(crops=MaskCrops.from_dense(dense), boxes_xywh=ms.boxes_xywh, predicted_iou=ms.predicted_iou,
                   stability_score=ms.stability_score, point_coords=ms.point_coords,
                   crop_boxes_xywh=ms.crop_boxes_xywh, image_shape=ms.image_shape)
    assert "masks" not in lazy.__dict__
    rng = np.random.default_rng(1)
    h, w = dense.shape[1:]
    for _ in range(300):
        i = int(rng.integers(len(dense)))
        r0, r1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        c0, c1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        assert np.array_equal(lazy.window(i, r0, c0, r1, c1), dense[i, r0:r1, c0:c1])
    assert np.array_equal(lazy.areas, dense.sum(axis=(1, 2)))
    assert np.array_equal(lazy.to_label_image(), ms.to_label_image())
    assert np.array_equal(lazy.masks, dense) and not lazy.masks.flags.writeable
    # The mask's own window is its stored crop, not a copy.
    crop, (r, c) = lazy.crop(0)
    assert lazy.window(0, r, c, r + crop.shape[0], c + crop.shape[1]) is crop


def test_encoded_sources_decode_once_and_select_keeps_them():
    dense = _random_masks(seed=3)
    base = MaskCrops.from_dense(dense)
    sources = tuple(encode_mask(base.crop(i)) if base.crop(i).size else base.crop(i) for i in range(len(base)))
    crops = MaskCrops(base.origins_rc, base.shapes_hw, sources)
    ms = MaskSet.from_masks(dense)
    lazy = MaskSet(crops=crops, boxes_xywh=ms.boxes_xywh, predicted_iou=ms.predicted_iou,
                   stability_score=ms.stability_score, point_coords=ms.point_coords,
                   crop_boxes_xywh=ms.crop_boxes_xywh, image_shape=ms.image_shape)
    first = lazy.crops.crop(2)
    assert lazy.crops.crop(2) is first  # decoded at most once
    sub = lazy.select([5, 2])
    assert sub.crops.crop(1) is first
    assert np.array_equal(sub.masks, dense[[5, 2]])
    assert len(lazy.select(np.zeros(len(dense), bool))) == 0 and len(lazy.select([])) == 0
    again = pickle.loads(pickle.dumps(lazy))
    assert np.array_equal(again.masks, dense)


def test_bad_windows_and_row_counts_are_refused():
    dense = _random_masks(n=3)
    crops = MaskCrops.from_dense(dense)
    ms = MaskSet.from_masks(dense)
    fields = dict(boxes_xywh=ms.boxes_xywh, predicted_iou=ms.predicted_iou, stability_score=ms.stability_score,
                  point_coords=ms.point_coords, crop_boxes_xywh=ms.crop_boxes_xywh)
    with pytest.raises(ValueError, match="outside the 10 x 10 image"):
        MaskSet(crops=crops, image_shape=(10, 10), **fields)
    with pytest.raises(ValueError, match="predicted_iou has 2 rows; expected 3"):
        MaskSet(crops=crops, image_shape=dense.shape[1:], **{**fields, "predicted_iou": fields["predicted_iou"][:2]})
    with pytest.raises(ValueError, match=r"shapes_hw has 2 rows; expected 3"):
        MaskCrops(crops.origins_rc, crops.shapes_hw[:2], crops.sources)
    with pytest.raises(ValueError, match=r"must have shape \(N, 5, 5\)"):
        MaskSet.from_dense(dense, image_shape=(5, 5), **fields)


def test_engine_replay_builds_no_full_frame(structured_sam, blob_image, amg_ref, same_records):
    # A threshold replay hands out the cached crops: the (N, H, W) array exists only once read,
    # and then equals AMG's masks.
    engine = MaskEngine(structured_sam)
    p = AmgParams(points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.6, min_mask_region_area=20)
    ms = engine.generate(blob_image, p)
    assert len(ms) > 0
    assert "masks" not in ms.__dict__
    ref_records = amg_ref(structured_sam, blob_image, p)
    same_records(ms.to_amg_records(), ref_records)
    assert "masks" not in ms.__dict__
    ref = np.stack([r["segmentation"] for r in ref_records])
    assert np.array_equal(ms.masks, ref)
