"""Empty and full-frame outputs get defined poor values; every reward stays in [0, 1] on random masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reward_shapes import draw_disk, maskset, render

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards import get_reward, list_rewards

S = (64, 64)
BUILTIN = [
    "aggregate_coverage", "aspect_ratio", "boundary_contrast", "circularity", "count_plausibility", "coverage",
    "duplicate_free", "overlap_fidelity", "shape_fidelity", "size_distribution", "size_window",
    "small_particle_detection", "squareness",
]
PRIORS = {
    "sphere": PhysicsPrior((6.0, 20.0), shape="sphere", modality="haadf", pixel_size_nm=1.0),
    "cube": PhysicsPrior((6.0, 20.0), shape="cube", modality="bf-tem"),
    "irregular": PhysicsPrior((2.0, 40.0), shape="irregular", small_max_nm=8.0, pixel_size_nm=0.5),
}


def _image():
    masks = [draw_disk(S, (16, 16), 6), draw_disk(S, (45, 40), 8), draw_disk(S, (50, 10), 3)]
    return Micrograph(render(S, masks, noise=0.05), pixel_size_nm=1.0, modality="haadf")


def test_all_builtins_listed():
    assert set(BUILTIN) | {"latency"} <= set(list_rewards())


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("shape", list(PRIORS))
def test_empty_and_full_frame_are_poor(name, shape):
    fn, img, prior = get_reward(name), _image(), PRIORS[shape]
    assert fn(MaskSet.empty(S), img, prior) == 0.0
    full = fn(maskset(np.ones(S, bool)), img, prior)
    assert full == 0.0, f"{name}: a single full-frame mask scored {full}"


def test_latency_ignores_masks():
    img, prior = _image(), PRIORS["sphere"]
    p = AmgParams(points_per_side=16)
    assert get_reward("latency")(MaskSet.empty(S), img, prior, params=p) == get_reward("latency")(
        maskset(np.ones(S, bool)), img, prior, params=p
    )


def test_blank_image_defined():
    img = Micrograph(np.zeros(S, np.float32), pixel_size_nm=1.0)
    ms = maskset(draw_disk(S, (32, 32), 6))
    for name in BUILTIN:
        v = get_reward(name)(ms, img, PRIORS["sphere"])
        assert 0.0 <= v <= 1.0 and not math.isnan(v), name


@st.composite
def random_masks(draw):
    n = draw(st.integers(0, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    out = np.zeros((n, *S), bool)
    for i in range(n):
        kind = rng.integers(4)
        if kind == 0:  # random blob
            out[i] = rng.random(S) < rng.uniform(0.0, 0.3)
        elif kind == 1:  # disk, maybe off the frame
            out[i] = draw_disk(S, rng.uniform(-10, 74, 2), rng.uniform(0.5, 40))
        elif kind == 2:  # a line or a single pixel
            r = rng.integers(64)
            out[i, r, rng.integers(64): rng.integers(64) + 1] = True
        else:  # rectangle
            r0, c0 = rng.integers(0, 64, 2)
            out[i, r0 : r0 + rng.integers(1, 64), c0 : c0 + rng.integers(1, 64)] = True
    return MaskSet.from_masks(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ms=random_masks(), shape=st.sampled_from(list(PRIORS)))
def test_rewards_in_unit_interval(ms, shape):
    img, prior = _image(), PRIORS[shape]
    for name in BUILTIN:
        v = get_reward(name)(ms, img, prior)
        assert isinstance(v, float) and 0.0 <= v <= 1.0 and not math.isnan(v), (name, v)


@pytest.mark.parametrize("name", BUILTIN)
def test_deterministic(name):
    img, prior = _image(), PRIORS["sphere"]
    masks = np.array([draw_disk(S, (16, 16), 6), draw_disk(S, (45, 40), 9)])
    a = get_reward(name)(MaskSet.from_masks(masks), img, prior)
    b = get_reward(name)(MaskSet.from_masks(masks.copy()), Micrograph(img.image.copy(), pixel_size_nm=1.0, modality="haadf"), prior)
    assert a == b
