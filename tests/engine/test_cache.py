"""Caches: LRU by bytes, the disk store (round trip, corruption, staleness), and the engine's reuse."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.engine import MaskEngine
from samstar_env.engine import cache as cache_mod
from samstar_env.engine.cache import DiskCache, LruCache
from samstar_env.params import AmgParams

P = AmgParams(points_per_side=6, points_per_batch=64, pred_iou_thresh=0.2, stability_score_thresh=0.6)


def test_lru_evicts_least_recently_used_by_bytes():
    c = LruCache(max_bytes=100)
    c.put("a", 1, nbytes=40)
    c.put("b", 2, nbytes=40)
    assert c.get("a") == 1  # "a" is now the most recent
    c.put("c", 3, nbytes=40)  # 120 > 100: evicts "b"
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3
    assert c.nbytes == 80 and c.info().evictions == 1
    c.put("huge", 4, nbytes=101)  # larger than the bound: not kept, nothing else evicted
    assert "huge" not in c and len(c) == 2
    c.put("a", 1, nbytes=70)  # re-accounting a grown entry evicts others
    assert c.nbytes <= 100 and "a" in c


def test_disk_cache_round_trip(tmp_path):
    d = DiskCache(tmp_path)
    arrays = {"x": np.arange(10, dtype=np.float32), "y": np.ones((2, 3), bool)}
    d.save("k1", arrays)
    got = d.load("k1")
    assert got is not None and all(np.array_equal(got[k], v) and got[k].dtype == v.dtype for k, v in arrays.items())
    assert d.load("other") is None


def test_disk_cache_detects_corruption_and_truncation(tmp_path):
    d = DiskCache(tmp_path)
    d.save("k", {"x": np.arange(1000)})
    path = d.path_for("k")
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert d.load("k") is None
    assert not path.exists() and d.rejected == 1
    d.save("k", {"x": np.arange(1000)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.warns(RuntimeWarning):
        assert d.load("k") is None


def test_disk_cache_detects_stale_files(tmp_path, monkeypatch):
    d = DiskCache(tmp_path)
    d.save("k", {"x": np.arange(3)})
    monkeypatch.setattr(cache_mod, "DISK_FORMAT_VERSION", cache_mod.DISK_FORMAT_VERSION + 1)
    with pytest.warns(RuntimeWarning, match="format version"):
        assert d.load("k") is None
    # A file whose header names another key (e.g. a hash-prefix collision) is stale too.
    d.save("k", {"x": np.arange(3)})
    d.path_for("k2").write_bytes(d.path_for("k").read_bytes())
    with pytest.warns(RuntimeWarning, match="key mismatch"):
        assert d.load("k2") is None


def test_threshold_only_changes_hit_the_cache(structured_sam, blob_image):
    engine = MaskEngine(structured_sam)
    engine.generate(blob_image, P)
    s0 = engine.stats
    assert (s0.embedding_misses, s0.proposal_misses) == (1, 1)
    for p in (P.replace(pred_iou_thresh=0.5), P.replace(stability_score_thresh=0.8, stability_score_offset=2.0),
              P.replace(box_nms_thresh=0.4), P.replace(min_mask_region_area=25)):
        engine.generate(blob_image, p)
    s1 = engine.stats
    assert (s1.embedding_misses, s1.proposal_misses, s1.stability_recomputes) == (1, 1, 0)
    assert s1.proposal_hits == 4 and s1.calls == 5
    # A new grid decodes again but reuses the embedding.
    engine.generate(blob_image, P.replace(points_per_side=4))
    s2 = engine.stats
    assert (s2.embedding_misses, s2.proposal_misses, s2.embedding_hits) == (1, 2, 1)
    assert set(s2.seconds) >= {"embed", "decode", "replay", "postprocess", "assemble"}
    assert s2.as_dict()["calls"] == 6


def test_off_grid_offset_is_decoded_once(structured_sam, blob_image, amg_ref, same_records):
    engine = MaskEngine(structured_sam, stability_offsets=[1.0])
    engine.generate(blob_image, P)
    p = P.replace(stability_score_offset=0.7)
    same_records(engine.generate(blob_image, p).to_amg_records(), amg_ref(structured_sam, blob_image, p))
    engine.generate(blob_image, p.replace(pred_iou_thresh=0.4))
    assert engine.stats.stability_recomputes == 1 and engine.stats.proposal_misses == 1


def test_small_memory_bound_still_exact(structured_sam, blob_image, amg_ref, same_records):
    engine = MaskEngine(structured_sam, cache_bytes=1)  # nothing fits: everything is recomputed
    p = P.replace(points_per_side=4)
    same_records(engine.generate(blob_image, p).to_amg_records(), amg_ref(structured_sam, blob_image, p))
    engine.generate(blob_image, p)
    st = engine.stats
    assert st.proposal_misses == 2 and st.embedding_misses == 2 and st.cache_bytes == 0 and st.cache_entries == 0


def test_disk_cache_shared_between_engines_and_corruption_recomputed(structured_sam, blob_image, tmp_path):
    p = P.replace(min_mask_region_area=10)
    first = MaskEngine(structured_sam, cache_dir=tmp_path).generate(blob_image, p).to_amg_records()
    second_engine = MaskEngine(structured_sam, cache_dir=tmp_path)
    second = second_engine.generate(blob_image, p).to_amg_records()
    st = second_engine.stats
    assert st.disk_hits == 1 and st.proposal_misses == 0 and st.embedding_misses == 0
    assert len(first) == len(second) and all(np.array_equal(a["segmentation"], b["segmentation"]) for a, b in zip(first, second, strict=True))
    for f in tmp_path.glob("*.npc"):
        blob = bytearray(f.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        f.write_bytes(bytes(blob))
    third_engine = MaskEngine(structured_sam, cache_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="discarding"):
        third = third_engine.generate(blob_image, p).to_amg_records()
    assert third_engine.stats.disk_rejected >= 1 and third_engine.stats.proposal_misses == 1
    assert [r["bbox"] for r in third] == [r["bbox"] for r in first]


def test_engine_keys_follow_the_weights(random_sam, blob_image):
    import copy

    import torch

    model = copy.deepcopy(random_sam)
    engine = MaskEngine(model)
    p = P.replace(pred_iou_thresh=0.0, stability_score_thresh=0.0, points_per_side=4)
    engine.generate(blob_image, p)
    with torch.no_grad():
        model.mask_decoder.iou_prediction_head.layers[-1].bias.add_(1.0)
    # Changed weights: new keys, so a new decode instead of stale proposals.
    assert engine.generate(blob_image, p).predicted_iou[0] != MaskEngine(random_sam).generate(blob_image, p).predicted_iou[0]
    assert engine.stats.proposal_misses == 2
