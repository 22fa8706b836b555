"""Tiled generation: the grid, the stitching rule, exactness per tile, caching per tile, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

import samstar_env.engine.engine as engine_mod
from samstar_env.engine import MaskEngine, decode_units
from samstar_env.engine.maskset import MaskSet
from samstar_env.engine.tiles import check_tiling, stitch, tile_grid
from samstar_env.errors import InputError, MaskBudgetExceeded
from samstar_env.params import AmgParams

LOOSE = AmgParams(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.7)


@pytest.mark.parametrize("shape,tile,halo", [((128, 160), 48, 8), ((97, 61), 20, 20), ((50, 50), 64, 16), ((33, 200), 32, 0)])
def test_grid_inner_regions_cover_the_image_once_and_pads_add_the_halo(shape, tile, halo):
    h, w = shape
    tiles = tile_grid(shape, tile_shape=tile, halo=halo)
    cover = np.zeros(shape, int)
    for t in tiles:
        r0, c0, r1, c1 = t.inner
        cover[r0:r1, c0:c1] += 1
        assert r1 - r0 <= tile and c1 - c0 <= tile
        assert t.padded == (max(r0 - halo, 0), max(c0 - halo, 0), min(r1 + halo, h), min(c1 + halo, w))
    assert (cover == 1).all()
    sides = {t.inner[2] - t.inner[0] for t in tiles}
    assert max(sides) - min(sides) <= 1  # near-equal parts: no thin last tile


def _components(binary: np.ndarray) -> MaskSet:
    lab = label(binary)
    ids = np.arange(1, lab.max() + 1)
    return MaskSet.from_masks(lab[None] == ids[:, None, None] if len(ids) else np.zeros((0, *binary.shape), bool))


def _perfect_parts(binary: np.ndarray, tile: int, halo: int):
    # A segmenter that finds each connected component of the pixels it sees: the ideal tile segmenter.
    parts = []
    for t in tile_grid(binary.shape, tile_shape=tile, halo=halo):
        r0, c0, r1, c1 = t.padded
        parts.append((t, _components(binary[r0:r1, c0:c1])))
    return parts


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.mark.parametrize("radius", [5, 14, 30])  # inside the halo, about the halo, larger than the halo
def test_particles_on_tile_borders_are_found_once_and_whole(radius):
    tile, halo = 64, 12
    shape = (192, 192)
    centres = [(64, 64), (64, 100), (30, 128), (128, 20), (150, 150), (100, 64)]
    discs = []
    for cy, cx in centres:
        d = _disc(shape, cy, cx, radius)
        if not any((d & o).any() for o in discs):  # separate particles
            discs.append(d)
    binary = np.any(discs, axis=0)
    truth = _components(binary)
    got = stitch(_perfect_parts(binary, tile, halo), shape)
    assert len(got) == len(truth), f"{len(got)} stitched masks for {len(truth)} particles"
    got_full = sorted(tuple(np.flatnonzero(got.full(i))[:3]) for i in range(len(got)))
    want_full = sorted(tuple(np.flatnonzero(truth.full(i))[:3]) for i in range(len(truth)))
    assert got_full == want_full
    for i in range(len(got)):  # each stitched mask is a whole particle
        assert any(np.array_equal(got.full(i), truth.full(j)) for j in range(len(truth)))
    assert "masks" not in got.__dict__


@pytest.mark.parametrize("seed", range(12))
def test_random_particles_of_any_size_are_stitched_once_and_whole(seed):
    # Separate discs of 2-40 px radius (up to three times the halo) at random places; a perfect tile
    # segmenter (connected components of what each tile sees). The rule must give the particles back.
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(120, 220)), int(rng.integers(120, 220)))
    tile, halo = int(rng.integers(40, 80)), int(rng.integers(8, 17))
    binary = np.zeros(shape, bool)
    for _ in range(40):
        d = _disc(shape, rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 40))
        # Apart by a pixel from the others, so the connected components are the particles.
        if not any((np.roll(d, k, axis) & binary).any() for k in (-1, 0, 1) for axis in (0, 1)):
            binary |= d
    truth = _components(binary)
    got = stitch(_perfect_parts(binary, tile, halo), shape)
    want = {np.flatnonzero(truth.full(j)).tobytes() for j in range(len(truth))}
    have = [np.flatnonzero(got.full(i)).tobytes() for i in range(len(got))]
    assert len(have) == len(set(have)) == len(want), f"{len(got)} stitched masks for {len(truth)} particles"
    assert set(have) == want


def test_stitch_of_one_tile_is_that_tile(blob_image):
    binary = blob_image[..., 0] > 100
    ms = _components(binary)
    out = stitch(_perfect_parts(binary, 0, 0), binary.shape)
    assert len(out) == len(ms)
    for i in range(len(ms)):
        assert np.array_equal(out.full(i), ms.full(i))


def test_one_tile_covering_the_image_is_exactly_untiled(structured_sam, blob_image, same_records):
    engine = MaskEngine(structured_sam)
    untiled = engine.generate(blob_image, LOOSE).to_amg_records()
    covering = engine.generate(blob_image, LOOSE.replace(tile_shape=max(blob_image.shape[:2]), halo=16)).to_amg_records()
    same_records(covering, untiled)
    assert engine.stats.proposal_misses == 1  # the covering tile is the untiled image, cache included


def test_each_tile_is_amg_on_the_tile_pixels(structured_sam, blob_image, amg_ref, same_records):
    params = LOOSE.replace(tile_shape=64, halo=16)
    got = MaskEngine(structured_sam).generate(blob_image, params)
    parts = []
    for t in tile_grid(blob_image.shape[:2], tile_shape=64, halo=16):
        r0, c0, r1, c1 = t.padded
        sub = blob_image[r0:r1, c0:c1]
        recs = amg_ref(structured_sam, sub, params)
        ms = MaskSet.from_dense(
            np.array([r["segmentation"] for r in recs], bool).reshape(-1, *sub.shape[:2]),
            boxes_xywh=np.array([r["bbox"] for r in recs], float).reshape(-1, 4),
            predicted_iou=np.array([r["predicted_iou"] for r in recs], np.float32),
            stability_score=np.array([r["stability_score"] for r in recs], np.float32),
            point_coords=np.array([r["point_coords"][0] for r in recs], float).reshape(-1, 2),
            crop_boxes_xywh=np.array([r["crop_box"] for r in recs], float).reshape(-1, 4),
        )
        parts.append((t, ms))
    same_records(got.to_amg_records(), stitch(parts, blob_image.shape[:2]).to_amg_records())
    assert got.image_shape == blob_image.shape[:2]


def test_tiles_are_cached_per_tile_and_thresholds_replay(structured_sam, blob_image):
    engine = MaskEngine(structured_sam)
    params = LOOSE.replace(tile_shape=64, halo=16)
    units = decode_units(blob_image.shape[:2], params)
    n_tiles = len(tile_grid(blob_image.shape[:2], tile_shape=64, halo=16))
    assert n_tiles == 6 and len(units) == n_tiles and all(u.tile is not None for u in units)
    assert len(engine.missing_units(blob_image, params)) == n_tiles
    engine.generate(blob_image, params)
    assert engine.stats.proposal_misses == n_tiles and engine.missing_units(blob_image, params) == []
    engine.generate(blob_image, params.replace(pred_iou_thresh=0.5, stability_score_thresh=0.6, box_nms_thresh=0.5))
    assert engine.stats.proposal_misses == n_tiles  # a threshold change replays every tile
    engine.generate(blob_image, params.replace(halo=8))
    assert engine.stats.proposal_misses == 2 * n_tiles  # another halo is another set of tiles


def test_memory_follows_the_tile_not_the_image(structured_sam, blob_image, monkeypatch):
    seen = []
    real_embed, real_decode = engine_mod.embed_crop, engine_mod.decode_crop

    def embed(model, image, crop_box):
        seen.append(image.shape[:2])
        return real_embed(model, image, crop_box)

    def decode(predictor, *, orig_size, **kw):
        seen.append(tuple(orig_size))
        return real_decode(predictor, orig_size=orig_size, **kw)

    monkeypatch.setattr(engine_mod, "embed_crop", embed)
    monkeypatch.setattr(engine_mod, "decode_crop", decode)
    out = MaskEngine(structured_sam).generate(blob_image, LOOSE.replace(tile_shape=40, halo=8))
    assert seen and max(h for h, _ in seen) <= 40 + 2 * 8 and max(w for _, w in seen) <= 40 + 2 * 8
    assert "masks" not in out.__dict__  # the stitched set holds crops, no (N, H, W) stack
    assert all(s[0] <= 128 and s[1] <= 160 for s in out.crops.shapes_hw)


def test_mask_budget_counts_every_tile(structured_sam, blob_image):
    engine = MaskEngine(structured_sam)
    params = LOOSE.replace(tile_shape=64, halo=16)
    n = sum(len(engine.generate(blob_image[t.padded[0]:t.padded[2], t.padded[1]:t.padded[3]], LOOSE))
            for t in tile_grid(blob_image.shape[:2], tile_shape=64, halo=16))
    with pytest.raises(MaskBudgetExceeded) as err:
        engine.generate(blob_image, params, max_masks=n - 1)
    assert err.value.limit == n - 1 and err.value.count >= n
    engine.generate(blob_image, params, max_masks=n + 10)


@pytest.mark.parametrize("kw,words", [({"tile_shape": 16, "halo": 32}, "halo=32"), ({"tile_shape": 4}, "tile_shape=4"),
                                      ({"halo": -1}, "halo=-1"), ({"tile_shape": 2.5}, "tile_shape")])
def test_bad_tiling_is_refused_naming_the_option(kw, words):
    with pytest.raises((InputError, TypeError), match=words.replace("=", "=").replace(".", r"\.")):
        AmgParams(**kw)


def test_check_tiling_names_the_source():
    with pytest.raises(InputError, match="--tile-shape 32 is smaller than the halo 64"):
        check_tiling(32, 64, source="--tile-shape")
    with pytest.raises(InputError, match="halo=-3"):
        check_tiling(64, -3, source="[task]")
