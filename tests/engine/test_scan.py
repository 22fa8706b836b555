"""The one-pass logit scan, run-length storage, sub-batched upsampling and box-local small-region removal stay exact.

Each is compared with segment_anything's own helper on the same input: ``calculate_stability_score``
(bit for bit, several offsets at once), ``batched_mask_to_box`` + ``np.packbits``, and
``remove_small_regions`` on the full frame. The memory bound is checked by structure: no upsampled
logits outlive the sub-batch that made them.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score, remove_small_regions

import samstar_env.engine.proposals as proposals_mod
from samstar_env.engine import MaskEngine
from samstar_env.engine.proposals import CropProposals, subbatch_points
from samstar_env.engine.replay import region_result, small_regions_in_box
from samstar_env.engine.rle import decode_mask, encode_mask, mask_runs
from samstar_env.engine.scan import float32_thresholds, numba, scan_logits, stability_from_counts
from samstar_env.params import AmgParams

BACKENDS = ["torch"] + (["numba"] if numba is not None else [])


def _logits(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 1, max(h // 8, 2), max(w // 8, 2), generator=g) * 3
    x = torch.nn.functional.interpolate(low, (h, w), mode="bilinear", align_corners=False)[:, 0].contiguous()
    x[0] = -5.0  # an empty mask: box [0, 0, 0, 0], stability 0 / 0
    x[1, h // 2, w // 2] = 0.3  # equals float32(0.3), a threshold below float64 0.3: compared in float32
    x[2] = 0.5  # every pixel equal to a threshold (strict ">" matters)
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(7, 33, 45), (12, 64, 64), (3, 1, 17)])
@pytest.mark.parametrize("offsets", [(1.0,), (0.5, 1.0, 1.5, 2.0), (0.3, 0.7, 2.5)])
def test_stability_counts_boxes_and_bits_match_segment_anything(backend, shape, offsets):
    x = _logits(*shape, seed=sum(shape))
    thr, pairs = float32_thresholds(0.0, offsets)
    res = scan_logits(x, thresholds=thr, mask_threshold=0.0, backend=backend)
    stab = stability_from_counts(res.counts, pairs)
    for o in offsets:
        ref = calculate_stability_score(x, 0.0, o).numpy()
        assert stab[o].dtype == ref.dtype
        assert np.array_equal(stab[o], ref, equal_nan=True), f"offset {o}"
    binary = x > 0.0
    boxes = batched_mask_to_box(binary).numpy()
    assert np.array_equal(res.boxes, boxes)
    for i, (m, b) in enumerate(zip(binary.numpy(), boxes, strict=True)):
        crop = m[b[1] : b[3] + 1, b[0] : b[2] + 1]
        data, is_runs = encode_mask(crop)
        assert np.array_equal(res.mask_data(i), data) and res.is_runs[i] == is_runs, f"mask {i}"
        assert np.array_equal(decode_mask(res.mask_data(i), b, bool(res.is_runs[i])), crop), f"mask {i}"


def test_backends_agree_and_a_nonzero_mask_threshold_is_honoured():
    x = _logits(9, 40, 52, seed=3) + 0.25
    thr, pairs = float32_thresholds(0.25, (0.5, 1.0))
    results = [scan_logits(x, thresholds=thr, mask_threshold=0.25, backend=b) for b in BACKENDS]
    for r in results[1:]:
        assert np.array_equal(r.counts, results[0].counts) and np.array_equal(r.data, results[0].data)
    for o in (0.5, 1.0):
        ref = calculate_stability_score(x, 0.25, o).numpy()
        assert np.array_equal(stability_from_counts(results[0].counts, pairs)[o], ref, equal_nan=True)


def test_unknown_backend_is_an_error():
    thr, _ = float32_thresholds(0.0, (1.0,))
    with pytest.raises(ValueError, match="backend must be"):
        scan_logits(torch.zeros(1, 2, 2), thresholds=thr, mask_threshold=0.0, backend="cuda-magic")


def _same_proposals(a: CropProposals, b: CropProposals) -> None:
    for name in ("points", "iou_preds", "boxes", "near_crop_edge", "mask_data", "mask_offsets", "mask_is_runs"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert sorted(a.stability) == sorted(b.stability)
    for o in a.stability:
        assert np.array_equal(a.stability[o], b.stability[o], equal_nan=True)


def test_sub_batch_size_never_changes_the_proposals(structured_sam, blob_image):
    p = AmgParams(points_per_side=8, points_per_batch=16, crop_n_layers=1)
    ref = MaskEngine(structured_sam).proposals(blob_image, p)
    # 1 byte: one point per sub-batch; 200 kB: a few points; default: the whole AMG batch here.
    for nbytes in (1, 200_000):
        got = MaskEngine(structured_sam, logit_bytes=nbytes).proposals(blob_image, p)
        assert len(got) == len(ref)
        for a, b in zip(got, ref, strict=True):
            _same_proposals(a, b)


def test_no_upsampled_logits_outlive_their_sub_batch(structured_sam, blob_image, monkeypatch):
    seen: list[tuple[int, weakref.ref]] = []
    leaked: list[int] = []
    real = proposals_mod.scan_logits

    def spy(logits, **kw):
        gc.collect()
        leaked.extend(n for n, ref in seen if ref() is not None)
        seen.append((int(logits.shape[0]), weakref.ref(logits)))
        return real(logits, **kw)

    monkeypatch.setattr(proposals_mod, "scan_logits", spy)
    h, w = blob_image.shape[:2]
    budget = 3 * 4 * (h * w + 64 * 64) * 2  # room for two points' logits
    engine = MaskEngine(structured_sam, logit_bytes=budget)
    engine.generate(blob_image, AmgParams(points_per_side=6, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0))
    assert subbatch_points(structured_sam, (h, w), budget) == 2
    assert len(seen) == 18, "36 points in sub-batches of 2"
    assert max(n for n, _ in seen) == 2 * 3, "each sub-batch holds 2 points x 3 masks"
    assert leaked == [], "logits of an earlier sub-batch were still alive when the next one was scanned"


def test_logit_bytes_must_be_positive(structured_sam):
    with pytest.raises(ValueError, match="logit_bytes"):
        MaskEngine(structured_sam, logit_bytes=0)


def _random_masks(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> list[np.ndarray]:
    h, w = shape
    out = []
    for _ in range(n):
        m = np.zeros(shape, bool)
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(3, 14)
        yy, xx = np.ogrid[:h, :w]
        m[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = True
        # Holes and islands of many sizes, including ties between islands.
        m ^= rng.random(shape) < rng.choice([0.0, 0.02, 0.1])
        m[max(cy - 30, 0) : cy - 20, cx : cx + 2] = True
        out.append(m)
    out.append(np.ones(shape, bool))  # covers the image: full-frame fallback
    out.append(np.zeros(shape, bool))
    tie = np.zeros(shape, bool)
    tie[10:12, 10:12] = tie[20:22, 30:32] = True
    out.append(tie)
    return out


@pytest.mark.parametrize("min_area", [1, 5, 25, 100, 3000])
def test_box_local_small_regions_equal_the_full_frame(min_area):
    rng = np.random.default_rng(min_area)
    shape = (61, 74)
    local_count = 0
    masks = _random_masks(rng, 40, shape)
    for m in masks:
        ref, ref_changed = remove_small_regions(m, min_area, mode="holes")
        ref, c2 = remove_small_regions(ref, min_area, mode="islands")
        ref_changed = ref_changed or c2
        box = batched_mask_to_box(torch.as_tensor(m)[None])[0].numpy()
        crop = m[box[1] : box[3] + 1, box[0] : box[2] + 1]
        local = small_regions_in_box(crop, box, min_area, shape)
        if local is None:
            continue
        local_count += 1
        new, changed = local
        full = np.zeros(shape, bool)
        full[box[1] : box[3] + 1, box[0] : box[2] + 1] = new
        assert changed == ref_changed
        assert np.array_equal(full, ref)
    # Masks on the border and the one covering the image take the box path too; only a large
    # min_area against the thin margins of this small image falls back.
    if min_area <= 25:
        assert local_count >= len(masks) - 2, local_count


def test_region_result_memo_matches_the_full_frame_on_engine_proposals(structured_sam, blob_image):
    engine = MaskEngine(structured_sam)
    props = engine.proposals(blob_image, AmgParams(points_per_side=8, crop_n_layers=1))
    shape = blob_image.shape[:2]
    checked = 0
    for crop in props:
        for i in range(len(crop)):
            for area in (10, 100):
                res = region_result(crop, i, area, shape)
                full = crop.full_mask(i, shape)
                ref, a = remove_small_regions(full, area, mode="holes")
                ref, b = remove_small_regions(ref, area, mode="islands")
                assert res.changed == (a or b)
                if res.changed:
                    got = np.zeros(shape, bool)
                    box = res.box
                    got[box[1] : box[3] + 1, box[0] : box[2] + 1] = decode_mask(res.data, box, res.is_runs)
                    assert np.array_equal(got, ref)
                    assert np.array_equal(box, batched_mask_to_box(torch.as_tensor(ref)[None])[0].numpy())
                checked += 1
            assert crop.regions[10][i] is region_result(crop, i, 10, shape)  # memoized
    assert checked > 100


@pytest.mark.parametrize("seed", range(5))
def test_run_length_round_trip(seed):
    rng = np.random.default_rng(seed)
    for shape in [(1, 1), (1, 9), (7, 1), (13, 17)]:
        for p in (0.0, 0.1, 0.5, 1.0):
            crop = rng.random(shape) < p
            box = np.array([3, 5, 3 + shape[1] - 1, 5 + shape[0] - 1])
            runs = mask_runs(crop)
            assert runs.dtype == np.uint32 and int(runs.sum()) == crop.size
            data, is_runs = encode_mask(crop)
            assert len(data) % 4 == 0 and len(data) <= max(4 * len(runs), (crop.size + 7) // 8 + 3)
            assert np.array_equal(decode_mask(data, box, is_runs), crop)
    # Smooth masks take run lengths, speckle takes bits.
    smooth = np.zeros((100, 100), bool)
    smooth[20:80, 10:90] = True
    assert encode_mask(smooth)[1] and not encode_mask(rng.random((100, 100)) < 0.5)[1]


def test_micrograph_memo_never_serves_another_image(structured_sam):
    from samstar_env.data.micrograph import Micrograph

    rng = np.random.default_rng(3)
    engine = MaskEngine(structured_sam)
    p = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    for _ in range(5):
        # A new object may reuse a freed one's id: the memo must notice (weak reference).
        im = Micrograph(image=rng.random((48, 56)).astype(np.float32))
        got = engine.generate(im, p)
        ref = MaskEngine(structured_sam).generate(im.to_rgb_uint8(), p)
        assert len(got) == len(ref) and np.array_equal(got.masks, ref.masks)
        del im
        gc.collect()


@pytest.mark.parametrize("seed", range(4))
def test_numpy_mask_box_equals_segment_anythings(seed):
    from segment_anything.utils.amg import batched_mask_to_box

    from samstar_env.engine.replay import _mask_box

    rng = np.random.default_rng(seed)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        mask = rng.random((h, w)) < rng.choice([0.0, 0.01, 0.2, 0.9])
        ref = batched_mask_to_box(torch.as_tensor(mask).unsqueeze(0))[0].numpy()
        assert _mask_box(mask).tolist() == ref.tolist()
