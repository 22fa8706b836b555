"""Concurrent MaskEngine.generate calls give the sequential results and compute shared entries once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from samstar_env.engine import MaskEngine
from samstar_env.params import AmgParams


def test_concurrent_generate_equals_sequential(structured_sam, blob_image):
    base = AmgParams(points_per_side=6, points_per_batch=64, pred_iou_thresh=0.2, stability_score_thresh=0.6)
    params = [
        base,
        base.replace(pred_iou_thresh=0.4),
        base.replace(stability_score_offset=0.5, min_mask_region_area=25),
        base.replace(points_per_side=4),
        base.replace(box_nms_thresh=0.5),
        base.replace(points_per_side=4, stability_score_thresh=0.8),
    ] * 2
    reference = MaskEngine(structured_sam)
    sequential = [reference.generate(blob_image, p) for p in params]
    engine = MaskEngine(structured_sam)
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda p: engine.generate(blob_image, p), params))
    for a, b in zip(sequential, concurrent, strict=True):
        assert len(a) == len(b)
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.boxes_xywh, b.boxes_xywh)
        assert np.array_equal(a.predicted_iou, b.predicted_iou)
        assert np.array_equal(a.stability_score, b.stability_score, equal_nan=True)
    st = engine.stats
    # Two point grids on one image: one embedding and two decodes, however the threads interleave.
    assert (st.embedding_misses, st.proposal_misses) == (1, 2)
