"""Every reward against an analytic case on drawn shapes."""

from __future__ import annotations

import numpy as np
import pytest
from reward_shapes import draw_disk, draw_square, maskset, render

from samstar_env.data.micrograph import Micrograph, PhysicsPrior, SizeComponent
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards import (
    aggregate_coverage,
    aspect_ratio,
    boundary_contrast,
    circularity,
    count_plausibility,
    coverage,
    duplicate_free,
    expected_count,
    latency,
    mask_geometry,
    overlap_fidelity,
    predicted_cost,
    shape_fidelity,
    size_distribution,
    size_window,
    small_particle_detection,
    squareness,
)
from samstar_env.rewards.geometry import image_features

S = (128, 128)


# --- geometry ---------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [4, 8, 15, 30])
def test_disk_geometry(radius):
    g = mask_geometry(maskset(draw_disk(S, (64, 64), radius)))
    assert g.circularity[0] == pytest.approx(1.0, abs=0.05)
    assert g.solidity[0] > 0.95
    assert g.inscribed_ratio[0] > 0.98
    assert g.aspect_ratio[0] < 1.05
    assert g.equivalent_diameter_px[0] == pytest.approx(2 * radius, rel=0.08)


@pytest.mark.parametrize("angle", [0, 10, 22.5, 45])
def test_square_geometry(angle):
    g = mask_geometry(maskset(draw_square(S, (64, 64), 30, angle)))
    assert g.rect_fill[0] > 0.88
    assert g.rect_aspect[0] < 1.1
    assert g.solidity[0] > 0.92
    # A square's inscribed circle over its equivalent circle: sqrt(pi) / 2.
    assert g.inscribed_ratio[0] == pytest.approx(np.sqrt(np.pi) / 2, abs=0.08)


def test_geometry_is_cached_per_maskset():
    ms = maskset(draw_disk(S, (64, 64), 10))
    assert mask_geometry(ms) is mask_geometry(ms)


def test_border_and_background_flags():
    full = np.ones(S, bool)
    edge = draw_disk(S, (0, 64), 10)
    g = mask_geometry(maskset(full, edge, draw_disk(S, (64, 64), 10)))
    assert g.is_background.tolist() == [True, False, False]
    assert g.touches_border.tolist() == [True, True, False]
    assert g.valid.tolist() == [False, True, True]


# --- shape ------------------------------------------------------------------------------------
def test_circularity_disk_vs_square_vs_merged(blank128, sphere_prior):
    d = circularity(maskset(draw_disk(S, (64, 64), 15)), blank128, sphere_prior)
    sq = circularity(maskset(draw_square(S, (64, 64), 30, 22.5)), blank128, sphere_prior)
    pair = draw_disk(S, (64, 44), 12) | draw_disk(S, (64, 68), 12)
    mp = circularity(maskset(pair), blank128, sphere_prior)
    assert d == pytest.approx(1.0, abs=0.03)
    assert sq < 0.9
    assert mp < 0.6


def test_squareness_square_vs_disk_vs_side_by_side(blank128, cube_prior):
    sq = squareness(maskset(draw_square(S, (64, 64), 30)), blank128, cube_prior)
    rot = squareness(maskset(draw_square(S, (64, 64), 30, 30)), blank128, cube_prior)
    d = squareness(maskset(draw_disk(S, (64, 64), 15)), blank128, cube_prior)
    two = np.zeros(S, bool)
    two[50:70, 30:70] = True  # two 20 px cubes side by side: fills its rectangle, but 2:1
    pair = squareness(maskset(two), blank128, cube_prior)
    assert sq == pytest.approx(1.0)
    assert rot > 0.9
    assert d < 0.5
    assert pair <= cube_prior.aspect_ratio_max / 2 + 1e-9


def test_aspect_ratio_window(blank128, sphere_prior):
    rod = np.zeros(S, bool)
    rod[60:66, 20:100] = True
    ms = maskset(draw_disk(S, (30, 30), 10), rod)
    assert aspect_ratio(ms, blank128, sphere_prior) == pytest.approx(0.5)


def test_shape_fidelity_dispatches_on_prior(blank128, sphere_prior, cube_prior):
    ms = maskset(draw_square(S, (64, 64), 30))
    assert shape_fidelity(ms, blank128, cube_prior) == squareness(ms, blank128, cube_prior)
    assert shape_fidelity(ms, blank128, sphere_prior) == circularity(ms, blank128, sphere_prior)
    irr = PhysicsPrior((10.0, 30.0), shape="irregular")
    assert shape_fidelity(ms, blank128, irr) == aspect_ratio(ms, blank128, irr)


def test_shape_rewards_skip_border_masks(blank128, sphere_prior):
    # A half disk cut by the border is not the segmenter's fault: it is left out.
    ms = maskset(draw_disk(S, (64, 64), 12), draw_disk(S, (64, 0), 12))
    assert circularity(ms, blank128, sphere_prior) == pytest.approx(
        circularity(ms.select([0]), blank128, sphere_prior)
    )


# --- overlap ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", [2.0, 1.5, 1.2])
def test_overlap_fidelity_penalizes_merged_disks(blank128, sphere_prior, spacing):
    r = 12
    a, b = draw_disk(S, (64, 64 - spacing * r / 2), r), draw_disk(S, (64, 64 + spacing * r / 2), r)
    separate = overlap_fidelity(maskset(a, b), blank128, sphere_prior)
    merged = overlap_fidelity(maskset(a | b), blank128, sphere_prior)
    assert separate == pytest.approx(1.0)
    assert merged < 0.3


def test_overlap_fidelity_accepts_rotated_cubes(blank128, cube_prior):
    ms = maskset(*[draw_square(S, (32 + 64 * (k // 2), 32 + 64 * (k % 2)), 22, 15 * k) for k in range(4)])
    assert overlap_fidelity(ms, blank128, cube_prior) > 0.9


# --- duplicates -------------------------------------------------------------------------------
def test_duplicate_free_nested_and_identical(blank128, sphere_prior):
    a, b = draw_disk(S, (40, 40), 12), draw_disk(S, (90, 90), 12)
    assert duplicate_free(maskset(a, b), blank128, sphere_prior) == 1.0
    nested = draw_disk(S, (40, 40), 6)
    assert duplicate_free(maskset(a, b, nested), blank128, sphere_prior) == pytest.approx(2 / 3)
    assert duplicate_free(maskset(a, a.copy()), blank128, sphere_prior) == pytest.approx(0.5)
    # Two halves inside the whole particle: both halves are redundant.
    left, right = a.copy(), a.copy()
    left[:, 40:] = False
    right[:, :40] = False
    assert duplicate_free(maskset(a, left, right), blank128, sphere_prior) == pytest.approx(1 / 3)


# --- size -------------------------------------------------------------------------------------
def test_size_window_counts_in_range(blank128):
    prior = PhysicsPrior((10.0, 20.0), pixel_size_nm=1.0)
    ms = maskset(draw_disk(S, (30, 30), 7), draw_disk(S, (90, 90), 2), draw_disk(S, (64, 64), 25))
    assert size_window(ms, blank128, prior) == pytest.approx(1 / 3)


def test_size_window_uses_pixel_size():
    prior = PhysicsPrior((10.0, 20.0))
    ms = maskset(draw_disk(S, (64, 64), 7))  # d = 14 px
    img_px = Micrograph(np.zeros(S, np.float32))  # no calibration: range read in px
    img_half = Micrograph(np.zeros(S, np.float32), pixel_size_nm=0.5)  # d = 7 nm: too small
    assert size_window(ms, img_px, prior) == 1.0
    assert size_window(ms, img_half, prior) == 0.0


def test_size_distribution_matches_prior(blank128):
    prior = PhysicsPrior((10.0, 20.0), size_components=(SizeComponent(1.0, 14.0, 0.05),), pixel_size_nm=1.0)
    right = maskset(*[draw_disk(S, (20 + 30 * (k // 4), 20 + 30 * (k % 4)), 7) for k in range(16)])
    small = maskset(*[draw_disk(S, (20 + 30 * (k // 4), 20 + 30 * (k % 4)), 3) for k in range(16)])
    s_right, s_small = size_distribution(right, blank128, prior), size_distribution(small, blank128, prior)
    assert s_right > 0.9
    # d = 7 px against 14: W1 ~ 7, normalized by the mean ~14 -> about 0.5.
    assert s_small == pytest.approx(1 - abs(mask_geometry(small).equivalent_diameter_px.mean() - 14.0) / prior.mean_diameter_nm, abs=0.05)


# --- image-based rewards ----------------------------------------------------------------------
def _scene(noise=0.02):
    centers = [(32, 32), (32, 96), (96, 32), (96, 96)]
    masks = [draw_disk(S, c, 10) for c in centers]
    img = Micrograph(render(S, masks, noise=noise), pixel_size_nm=1.0, modality="haadf")
    return img, masks


def test_coverage_full_partial_leaky(sphere_prior):
    img, masks = _scene()
    assert coverage(maskset(*masks), img, sphere_prior) > 0.9
    half = coverage(maskset(*masks[:2]), img, sphere_prior)
    # Dice with half the foreground: 2 * 0.5 / 1.5 = 2/3 if the foreground estimate were exact;
    # Li's threshold on the blurred edges makes it a pixel wider, so a little less.
    fg = image_features(img, sphere_prior).foreground
    m2 = masks[0] | masks[1]
    assert half == pytest.approx(2 * (m2 & fg).sum() / (m2.sum() + fg.sum()))
    assert 0.55 < half < 2 / 3
    leaky = maskset(*masks, np.pad(np.ones((40, 40), bool), ((0, 88), (44, 44))))
    assert coverage(leaky, img, sphere_prior) < coverage(maskset(*masks), img, sphere_prior)


def test_coverage_dark_polarity(sphere_prior):
    img, masks = _scene()
    dark = Micrograph((1.0 - img.image).astype(np.float32), pixel_size_nm=1.0, modality="bf-tem")
    prior = PhysicsPrior((10.0, 30.0), modality="bf-tem", pixel_size_nm=1.0)
    assert coverage(maskset(*masks), dark, prior) > 0.9
    unknown = Micrograph((1.0 - img.image).astype(np.float32), pixel_size_nm=1.0)
    assert image_features(unknown, PhysicsPrior((10.0, 30.0))).polarity == "dark"


def test_count_plausibility(sphere_prior):
    img, masks = _scene()
    assert expected_count(img, sphere_prior) == 4
    assert count_plausibility(maskset(*masks), img, sphere_prior) == 1.0
    assert count_plausibility(maskset(*masks[:3]), img, sphere_prior) == pytest.approx(0.75)
    merged = masks[0] | masks[1]
    assert count_plausibility(maskset(merged, masks[2], masks[3]), img, sphere_prior) == pytest.approx(0.75)


def test_boundary_contrast_edges_vs_cuts(sphere_prior):
    img, masks = _scene()
    good = boundary_contrast(maskset(*masks), img, sphere_prior)
    halves = []
    for m in masks:
        h = m.copy()
        h[:, : int(np.argwhere(m)[:, 1].mean())] = False
        halves.append(h)
    cut = boundary_contrast(maskset(*halves), img, sphere_prior)
    background = boundary_contrast(maskset(draw_disk(S, (64, 64), 10)), img, sphere_prior)
    assert good > 0.8
    assert good > cut > background


def _small_and_aggregate_scene():
    # 12 small particles (d = 8 px) and one 40 px aggregate; small/aggregate split at 16 nm.
    small = [draw_disk(S, (12 + 20 * (k // 6), 12 + 20 * (k % 6)), 4) for k in range(6)]
    small += [draw_disk(S, (112, 12 + 20 * k), 4) for k in range(6)]
    agg = np.zeros(S, bool)
    agg[60:100, 40:80] = True
    img = Micrograph(render(S, [*small, agg]), pixel_size_nm=1.0, modality="haadf")
    prior = PhysicsPrior((4.0, 60.0), shape="irregular", pixel_size_nm=1.0, small_max_nm=16.0)
    return small, agg, img, prior


def test_small_particles_and_aggregates_are_antagonistic():
    small, agg, img, prior = _small_and_aggregate_scene()
    quarters = [np.zeros(S, bool) for _ in range(4)]
    for k, (r, c) in enumerate([(60, 40), (60, 60), (80, 40), (80, 60)]):
        quarters[k][r : r + 20, c : c + 20] = True
    fine = maskset(*small, *quarters)   # every small particle, aggregate split
    coarse = maskset(agg)               # aggregate whole, small ones missed
    assert small_particle_detection(fine, img, prior) == 1.0
    assert small_particle_detection(coarse, img, prior) == 0.0
    assert aggregate_coverage(coarse, img, prior) > 0.85  # foreground a pixel wider than the square
    assert aggregate_coverage(fine, img, prior) < 0.3



def test_small_particle_detection_keeps_falling_with_spurious_masks():
    # Rewards v3: recall alone was 1.0 for every superset of the right masks; the F2 score keeps
    # falling as particle-sized masks on empty support are added (12 particles, +0/4/12 spurious).
    small, agg, img, prior = _small_and_aggregate_scene()
    support = [draw_disk(S, (30 + 20 * (k % 4), 100 + 8 * (k // 4)), 3) for k in range(12)]
    scores = [small_particle_detection(maskset(*small, *support[:n]), img, prior) for n in (0, 4, 12)]
    assert scores[0] == 1.0
    assert scores[0] > scores[1] > scores[2] > 0.5  # recall-weighted: a spurious mask costs less than a miss
    # F2 = 5 M / (4 B + S): 12 matches, 12 blobs, 24 small masks -> 60 / 72.
    assert scores[2] == pytest.approx(60 / 72)
    # Half the particles found, nothing spurious: recall 0.5, precision 1 -> 5 * 6 / (48 + 6).
    assert small_particle_detection(maskset(*small[:6]), img, prior) == pytest.approx(30 / 54)


def test_small_particle_detection_matches_one_mask_per_blob():
    small, agg, img, prior = _small_and_aggregate_scene()
    # Each particle returned twice: 12 matches out of 24 small masks, as for 12 spurious ones.
    twice = small_particle_detection(maskset(*small, *small), img, prior)
    assert twice == pytest.approx(60 / 72)
    # Fragments of the aggregate are no detections, in either direction.
    pieces = [np.zeros(S, bool) for _ in range(4)]
    for k, (r, c) in enumerate([(62, 42), (62, 62), (82, 42), (82, 62)]):
        pieces[k][r : r + 12, c : c + 12] = True
    assert small_particle_detection(maskset(*small, *pieces), img, prior) == 1.0


def test_aggregate_coverage_charges_fragments_beside_the_whole_mask():
    small, agg, img, prior = _small_and_aggregate_scene()
    whole = aggregate_coverage(maskset(agg), img, prior)
    halves = [agg.copy(), agg.copy()]
    halves[0][:, 60:] = False
    halves[1][:, :60] = False
    with_halves = aggregate_coverage(maskset(agg, *halves), img, prior)
    duplicate = aggregate_coverage(maskset(agg, agg), img, prior)
    # Best IoU unchanged; the whole mask holds half of all mask area on the aggregate.
    assert with_halves == pytest.approx(whole / 2, rel=0.02)
    assert duplicate == pytest.approx(whole / 2, rel=0.02)
    # Small particles off the aggregate do not touch it.
    assert aggregate_coverage(maskset(agg, *small), img, prior) == pytest.approx(whole)

# --- latency ----------------------------------------------------------------------------------
def test_latency_monotone_in_cost(blank128, sphere_prior):
    ms = MaskSet.empty(S)
    costs = [AmgParams(points_per_side=p) for p in (8, 16, 32, 64)]
    vals = [latency(ms, blank128, sphere_prior, params=p) for p in costs]
    assert vals[0] == 1.0 and all(a > b for a, b in zip(vals, vals[1:], strict=False))
    dearest = AmgParams(points_per_side=64, crop_n_layers=2, crop_n_points_downscale_factor=1)
    assert latency(ms, blank128, sphere_prior, params=dearest) == pytest.approx(0.0, abs=1e-9)
    assert predicted_cost(AmgParams(points_per_side=16, crop_n_layers=1, crop_n_points_downscale_factor=2)) == 16 * 16 + 12 + 4 * (64 + 12)
    with pytest.raises(ValueError, match="params"):
        latency(ms, blank128, sphere_prior)


# --- count floor: per-mask means over at least half the expected particles --------------------
FLOORED = [overlap_fidelity, circularity, squareness, aspect_ratio, shape_fidelity, duplicate_free, size_window,
           boundary_contrast]
CENTERS = [(32, 32), (32, 96), (96, 32), (96, 96)]


def _four_disks():
    """Four separate interior disks (radius 10 px) on a HAADF-like image, and a prior that fits them."""
    disks = [draw_disk(S, c, 10) for c in CENTERS]
    img = Micrograph(render(S, disks), modality="haadf")
    return disks, img, PhysicsPrior((12.0, 30.0), aspect_ratio_max=1.3)


def test_expected_particle_count_interior_excludes_border_blobs():
    from samstar_env.rewards.geometry import expected_particle_count

    disks, img, prior = _four_disks()
    assert expected_particle_count(img, prior) == 4
    assert expected_particle_count(img, prior, interior=True) == 4
    cut = [*disks[:3], draw_disk(S, (64, 2), 10)]  # the fourth particle now crosses the left edge
    img_cut = Micrograph(render(S, cut), modality="haadf")
    assert expected_particle_count(img_cut, prior) == 4
    assert expected_particle_count(img_cut, prior, interior=True) == 3


@pytest.mark.parametrize("fn", FLOORED, ids=lambda f: f.__name__)
def test_count_floor_scores_missed_particles_as_failures(fn):
    disks, img, prior = _four_disks()
    all_four, one = maskset(*disks), maskset(disks[0])
    full = fn(all_four, img, prior)
    assert full > 0.3  # separate disks of the right size (squareness rates a disk ~0.5)
    # One of four identical particles: the plain mean (count_floor 0) equals the full score, the
    # default divides by max(1, 0.5 * 4) = 2.
    plain = fn(one, img, prior, count_floor=0.0)
    assert plain == pytest.approx(full, abs=1e-9)
    assert fn(one, img, prior) == pytest.approx(plain / 2.0, abs=1e-12)
    # Two of four reach the floor exactly: no penalty.
    assert fn(maskset(*disks[:2]), img, prior) == pytest.approx(fn(maskset(*disks[:2]), img, prior, count_floor=0.0), abs=1e-12)
    # count_floor 1: every missing particle counts.
    assert fn(one, img, prior, count_floor=1.0) == pytest.approx(plain / 4.0, abs=1e-12)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_count_floor_must_be_finite_and_non_negative(bad):
    disks, img, prior = _four_disks()
    with pytest.raises(ValueError, match="count_floor"):
        overlap_fidelity(maskset(disks[0]), img, prior, count_floor=bad)
