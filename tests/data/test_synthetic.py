"""The synthetic generators: determinism, exact ground truth, size statistics, priors, splits, errors.

Images are generated once per (task, seed, size) through a module cache so the whole file stays fast
on 2 cores. Speed is a benchmark claim (benchmarks/scripts/bench_generators.py), not a test.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from samstar_env.data import TASKS, Micrograph, generate, prior, split_seeds
from samstar_env.data.synthetic import SPLITS, knob_defaults
from samstar_env.data.synthetic.common import MIN_VISIBLE_FRACTION, MIN_VISIBLE_PX

SEEDS = (0, 1, 2)


@cache
def _gen(task: str, seed: int, size: tuple[int, int] = (512, 512)) -> Micrograph:
    return generate(task, seed, size)


def test_tasks_listed():
    assert TASKS == ("perovskite", "ito", "auco")


@pytest.mark.parametrize("task", TASKS)
def test_micrograph_fields(task):
    m = _gen(task, 0)
    assert m.image.dtype == np.float32 and m.image.shape == (512, 512)
    assert 0.0 <= m.image.min() and m.image.max() <= 1.0
    assert m.modality == {"perovskite": "haadf", "ito": "bf-tem", "auco": "haadf"}[task]
    assert m.pixel_size_nm == knob_defaults(task)["pixel_size_nm"]
    assert m.labels.dtype == np.int32
    assert len(m.instances) == len(m.particles) and m.instances.image_shape == (512, 512)
    assert m.instances.to_dense().dtype == bool
    assert len(m.particles) >= 10
    assert [p.label for p in m.particles] == list(range(1, len(m.particles) + 1))
    assert m.metadata["task"] == task and m.metadata["seed"] == 0
    assert set(m.metadata["knobs"]) == set(knob_defaults(task))
    # Particles do differ in brightness from the background in the expected direction.
    fg, bg = m.image[m.labels > 0].mean(), m.image[m.labels == 0].mean()
    assert (fg > bg) if m.polarity == "bright" else (fg < bg)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_arrays_other_seed_differs(task):
    a, b = _gen(task, 1, (160, 192)), generate(task, 1, (160, 192))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.instances.to_dense(), b.instances.to_dense())
    assert a.particles == b.particles
    c = generate(task, 2, (160, 192))
    assert not np.array_equal(a.image, c.image)


def test_no_global_random_state_used():
    np.random.seed(123)  # noqa: NPY002 (the legacy global state must not matter)
    a = generate("auco", 5, (96, 96)).image
    np.random.seed(456)  # noqa: NPY002
    b = generate("auco", 5, (96, 96)).image
    assert np.array_equal(a, b)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_labels_are_visible_parts_of_amodal_masks(task, seed):
    m = _gen(task, seed)
    inst = m.instances.to_dense()
    n = len(inst)
    # Stacking order is the instance order: the visible owner of a pixel is the last (top) cover.
    covered = inst.any(axis=0)
    top = n - 1 - np.argmax(inst[::-1], axis=0)
    expected = np.where(covered, top + 1, 0).astype(np.int32)
    assert np.array_equal(m.labels, expected)
    # Every listed particle is visible enough (the documented drop rule) and has the right fraction.
    vis = np.bincount(m.labels.ravel(), minlength=n + 1)[1:]
    area = inst.reshape(n, -1).sum(1)
    assert (vis >= MIN_VISIBLE_PX).all()
    assert (vis >= MIN_VISIBLE_FRACTION * area - 1e-9).all()
    occ = np.array([p.occluded_fraction for p in m.particles])
    np.testing.assert_allclose(occ, 1.0 - vis / area, atol=1e-9)
    cent = np.array([p.centroid_px for p in m.particles])
    rows = (inst.sum(2) * np.arange(512)).sum(1) / area
    np.testing.assert_allclose(cent[:, 0], rows, atol=1e-6)


def _interior(m: Micrograph) -> np.ndarray:
    """Particles whose amodal mask does not touch the frame (their mask holds the whole outline)."""
    b = m.instances.boxes  # tight (tests/data/test_instances.py): a box on the frame's edge has pixels there
    h, w = m.instances.image_shape
    return (b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 2] < h) & (b[:, 3] < w)


@pytest.mark.parametrize("task", TASKS)
def test_mask_sizes_match_table_diameters(task):
    """The equivalent size of each interior amodal mask matches its true diameter within ~1.5 px."""
    m = _gen(task, 0)
    px = m.pixel_size_nm
    inner = _interior(m)
    area_px = m.instances.areas[inner]
    true_nm = np.array([p.diameter_nm for p in m.particles])[inner]
    shape = [p.shape for p in m.particles]
    # Cube: diameter is the edge, area ~ edge^2 (corner rounding removes < 1 %); else area = pi d^2 / 4.
    factor = np.where(np.array(shape)[inner] == "cube", 1.0, np.sqrt(4 / np.pi))
    mask_nm = factor * np.sqrt(area_px) * px
    err_px = np.abs(mask_nm - true_nm) / px
    assert np.median(err_px) < 0.6
    assert err_px.max() < 1.5 + 0.03 * true_nm.max() / px


# (task, population kind(s), knob holding the median, knob holding sigma)
SIZE_CASES = [
    ("perovskite", ("patch", "top", "isolated"), "edge_median_nm", "edge_sigma"),
    ("ito", ("crystal",), "diameter_median_nm", "diameter_sigma"),
    ("auco", ("small",), "small_median_nm", "small_sigma"),
    ("auco", ("aggregate",), "aggregate_median_nm", "aggregate_sigma"),
]


@pytest.mark.parametrize(("task", "kinds", "median_knob", "sigma_knob"), SIZE_CASES)
def test_realised_size_distribution_matches_requested(task, kinds, median_knob, sigma_knob):
    """Median of true diameters within 10 % of the requested lognormal median (over 3 images),
    and the log-spread within 35 % of the requested sigma where the sample is large enough."""
    ms = [_gen(task, s) for s in SEEDS]
    d = np.array([p.diameter_nm for m in ms for p in m.particles if p.kind in kinds])
    want_median = knob_defaults(task)[median_knob]
    want_sigma = knob_defaults(task)[sigma_knob]
    assert len(d) >= 3
    assert abs(np.median(d) / want_median - 1) < (0.10 if len(d) >= 30 else 0.35)
    if len(d) >= 100:
        assert abs(np.log(d).std() / want_sigma - 1) < 0.35
    # Same check through the masks of interior particles (what a segmenter would measure).
    mask_d = []
    for m in ms:
        inner = _interior(m)
        for i, p in enumerate(m.particles):
            if inner[i] and p.kind in kinds:
                a = m.instances.areas[i]
                f = 1.0 if p.shape == "cube" else np.sqrt(4 / np.pi)
                mask_d.append(f * np.sqrt(a) * m.pixel_size_nm)
    assert abs(np.median(mask_d) / want_median - 1) < (0.10 if len(mask_d) >= 30 else 0.35)


def test_knobs_change_the_size():
    big = generate("ito", 3, (256, 256), diameter_median_nm=18.0)
    d = np.median([p.diameter_nm for p in big.particles])
    assert abs(d / 18.0 - 1) < 0.15


@pytest.mark.parametrize("task", TASKS)
def test_prior_consistent_with_generator(task):
    p = prior(task)
    assert p.modality == _gen(task, 0).modality
    assert p.pixel_size_nm == knob_defaults(task)["pixel_size_nm"]
    lo, hi = p.diameter_range_nm
    d = np.array([q.diameter_nm for s in SEEDS for q in _gen(task, s).particles])
    inside = ((d >= lo) & (d <= hi)).mean()
    assert inside >= 0.9
    assert p.shape == {"perovskite": "cube", "ito": "sphere", "auco": "irregular"}[task]


def test_auco_prior_is_bimodal():
    p = prior("auco")
    assert len(p.size_components) == 2 and p.small_max_nm is not None
    small, agg = p.size_components
    assert small.median_nm < p.small_max_nm < agg.median_nm
    assert small.weight > agg.weight  # many small particles, few aggregates


def test_prior_follows_recipe_knobs():
    assert prior("perovskite", edge_median_nm=9.0).size_components[0].median_nm == 9.0


def test_splits_frozen_and_disjoint():
    for task in TASKS:
        tune, test, train, pol = (set(split_seeds(task, s)) for s in ("tune", "test", "train", "policy"))
        assert split_seeds(task, "tune") == tuple(range(16))
        assert split_seeds(task, "test") == tuple(range(1000, 1016))
        assert not (tune & test) and not (tune & train) and not (test & train)
        assert not (pol & tune) and not (pol & test) and not (pol & train)
        assert len(train) >= 10_000 and len(pol) >= 64
    assert set(SPLITS) == {"tune", "test", "train", "policy"}


def test_bad_task_names_valid_ones():
    with pytest.raises(ValueError, match=r"unknown task 'sem'.*perovskite.*ito.*auco"):
        generate("sem", 0)
    with pytest.raises(ValueError, match="unknown task"):
        prior("nope")
    with pytest.raises(ValueError, match="unknown task"):
        split_seeds("nope", "tune")


def test_bad_knob_names_valid_ones():
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['bogus'\] for task 'ito'.*diameter_median_nm"):
        generate("ito", 0, bogus=1.0)
    with pytest.raises(ValueError, match="unknown knob"):
        prior("auco", edge_median_nm=3.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"coverage": 1.5}, {"pixel_size_nm": -1.0}, {"dose_e_per_px": float("nan")}, {"n_domains": "3"}],
)
def test_bad_knob_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        generate("perovskite", 0, (64, 64), **kwargs)


@pytest.mark.parametrize("bad", [{"seed": -1}, {"seed": 1.5}, {"size": (8, 8)}, {"size": (64,)}])
def test_bad_seed_or_size(bad):
    args = {"seed": 0, "size": (64, 64)} | bad
    with pytest.raises(ValueError):
        generate("auco", args["seed"], args["size"])


def test_bad_split():
    with pytest.raises(ValueError, match=r"unknown split 'val'.*tune"):
        split_seeds("ito", "val")


def test_camera_sized_frames_hold_memory_proportional_to_the_particles():
    # A dense (N, H, W) stack here would be ~15,000 x 16 MiB = 239 GiB; the crops take ~18 MiB.
    # (Round trips, windows, pickling and equality with the dense stack: tests/data/test_instances.py.)
    m = generate("perovskite", 0, size=(4096, 4096))
    h, w = m.shape
    inst = m.instances
    assert len(inst) == len(m.particles) > 10_000 and inst.image_shape == (h, w)
    assert inst.nbytes < len(inst) * h * w / 1000
    assert inst.nbytes < 4 * inst.areas.sum()  # tight boxes: a crop is not much more than its particle
    assert inst.areas.sum() >= np.count_nonzero(m.labels)
    with pytest.raises(MemoryError, match="GiB"):
        inst.to_dense()
    # Each visible region lies inside its amodal mask's box and mask (checked on a few particles).
    n_visible = np.bincount(m.labels.ravel(), minlength=len(inst) + 1)
    for i in np.linspace(0, len(inst) - 1, 25).astype(int):
        r0, c0, r1, c1 = inst.boxes[i]
        visible = m.labels[r0:r1, c0:c1] == i + 1
        assert visible.sum() == n_visible[i + 1] > 0 and not (visible & ~inst.window(i, r0, c0, r1, c1)).any()
