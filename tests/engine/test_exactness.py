"""MaskEngine.generate(...).to_amg_records() == SamAutomaticMaskGenerator(...).generate(...)."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.engine import MaskEngine
from samstar_env.params import AmgParams, ParamSpace

N_SAMPLES = 12


def _samples() -> list[AmgParams]:
    """ParamSpace samples, shrunk so AMG is fast: few points, and thresholds low enough to keep masks."""
    rng = np.random.default_rng(1234)
    space = ParamSpace.default(points_per_batch=32)
    out = []
    while len(out) < N_SAMPLES:
        p = space.sample(rng)
        layers = int(rng.choice([0, 0, 1, 1, 2]))
        factor = int(rng.choice([1, 2])) if layers < 2 else 2
        # Crop layers multiply the decoding work (4 and 16 more crops): fewer points there.
        pps = int(rng.choice([[4, 6, 8], [4, 6], [4]][layers]))
        out.append(
            p.replace(
                points_per_side=pps,
                crop_n_layers=layers,
                crop_n_points_downscale_factor=factor,
                pred_iou_thresh=float(rng.choice([0.0, rng.uniform(0.0, 0.6)])),
                stability_score_thresh=float(rng.choice([0.0, rng.uniform(0.3, 0.9)])),
                min_mask_region_area=int(rng.choice([0, 0, 5, 25, 100])),
            )
        )
    return out


SAMPLES = _samples()


@pytest.fixture(scope="module")
def engine(structured_sam):
    # One engine for all samples: later samples replay entries earlier ones decoded.
    return MaskEngine(structured_sam)


@pytest.fixture(scope="module")
def nonempty_counter():
    counts: list[int] = []
    yield counts
    # Checked here so that the comparison is known to be non-trivial over the whole sample.
    assert sum(n > 0 for n in counts) >= 0.7 * len(counts), f"too many empty comparisons: {counts}"


@pytest.mark.parametrize("params", SAMPLES, ids=[f"s{i}" for i in range(len(SAMPLES))])
def test_matches_amg_on_param_space_samples(engine, structured_sam, blob_image, params, nonempty_counter, amg_ref, same_records):
    ref = amg_ref(structured_sam, blob_image, params)
    same_records(engine.generate(blob_image, params).to_amg_records(), ref)
    nonempty_counter.append(len(ref))


def test_samples_cover_crops_small_regions_and_offsets():
    assert {p.crop_n_layers for p in SAMPLES} == {0, 1, 2}
    assert any(p.min_mask_region_area > 0 for p in SAMPLES)
    assert len({p.stability_score_offset for p in SAMPLES}) >= 3


def test_off_grid_offset_and_edge_values(engine, structured_sam, blob_image, amg_ref, same_records):
    # 0.75 is not in the cached grid: the engine decodes again for it and must stay exact.
    for p in (
        AmgParams(points_per_side=8, points_per_batch=32, pred_iou_thresh=0.1, stability_score_thresh=0.5, stability_score_offset=0.75),
        AmgParams(points_per_side=8, points_per_batch=32, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0),
        AmgParams(points_per_side=8, points_per_batch=32, pred_iou_thresh=1.0, stability_score_thresh=1.0),
    ):
        same_records(engine.generate(blob_image, p).to_amg_records(), amg_ref(structured_sam, blob_image, p))


def test_other_batch_sizes_and_explicit_grids(structured_sam, blob_image, amg_ref, same_records):
    engine = MaskEngine(structured_sam)
    grid = tuple((x, y) for x in (0.1, 0.35, 0.6, 0.9) for y in (0.2, 0.5, 0.8))
    for p in (
        AmgParams(points_per_side=6, points_per_batch=7, pred_iou_thresh=0.2, stability_score_thresh=0.6, crop_n_layers=1),
        AmgParams(points_per_side=None, point_grids=(grid,), points_per_batch=64, pred_iou_thresh=0.0, stability_score_thresh=0.4),
    ):
        same_records(engine.generate(blob_image, p).to_amg_records(), amg_ref(structured_sam, blob_image, p))


def test_plain_random_sam_square_image(random_sam, amg_ref, same_records):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    engine = MaskEngine(random_sam)
    for p in (AmgParams(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=50),):
        ref = amg_ref(random_sam, image, p)
        assert len(ref) > 0
        same_records(engine.generate(image, p).to_amg_records(), ref)
