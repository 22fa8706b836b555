"""RewardSuite: ordering, reward_space, registry, errors, pickling, presets."""

from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest
from gymnasium import spaces
from reward_shapes import draw_disk, maskset, render

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards import (
    PRESETS,
    RewardContext,
    RewardError,
    RewardSuite,
    circularity,
    configure_suite,
    coverage,
    get_reward,
    list_rewards,
    preset,
    register_reward,
    reward_options,
)
from samstar_env.rewards import registry as reg

S = (96, 96)


@pytest.fixture
def case():
    masks = [draw_disk(S, (24, 24), 8), draw_disk(S, (70, 60), 10)]
    img = Micrograph(render(S, masks, noise=0.03), pixel_size_nm=1.0, modality="haadf")
    return maskset(*masks), img, PhysicsPrior((10.0, 30.0), modality="haadf", pixel_size_nm=1.0)


@pytest.fixture
def clean_registry():
    before = dict(reg._REGISTRY)
    yield
    reg._REGISTRY.clear()
    reg._REGISTRY.update(before)


def test_order_space_and_scalarize(case):
    suite = RewardSuite(["coverage", "circularity", "duplicate_free"], weights={"coverage": 2.0, "circularity": 1.0, "duplicate_free": 1.0})
    v = suite.evaluate(*case)
    assert suite.names == ("coverage", "circularity", "duplicate_free")
    assert v.dtype == np.float32 and v.shape == (3,)
    assert v[0] == np.float32(coverage(*case)) and v[1] == np.float32(circularity(*case))
    assert suite.reward_space == spaces.Box(0.0, 1.0, (3,), np.float32)
    assert suite.reward_space.contains(v)
    assert suite.scalarize(v) == pytest.approx(0.5 * v[0] + 0.25 * v[1] + 0.25 * v[2])
    assert suite.scalarize(np.stack([v, v])).shape == (2,)
    # Default weights: the plain mean.
    assert RewardSuite(["coverage", "circularity"]).scalarize([0.2, 0.6]) == pytest.approx(0.4)


def test_details(case):
    suite = RewardSuite(["size_window", "latency"])
    v, d = suite.evaluate_with_details(*case, params=AmgParams(points_per_side=16))
    assert list(d["rewards"]) == ["size_window", "latency"]
    assert d["rewards"]["size_window"] == pytest.approx(float(v[0]))
    assert d["n_masks"] == 2 and d["n_valid_masks"] == 2 and d["n_background_masks"] == 0
    assert d["diameter_unit"] == "nm" and 16 < d["median_diameter"] < 20
    assert 0 <= d["scalar"] <= 1
    _, d2 = suite.evaluate_with_details(*case, params=AmgParams(points_per_side=16))
    assert d == d2


def test_context_passes_params_only_where_declared(case):
    seen = {}

    def wants(masks, image, prior, *, params=None):
        seen["params"] = params
        return 0.5

    def plain(masks, image, prior):
        return 0.25

    p = AmgParams(points_per_side=12)
    v = RewardSuite([("wants", wants), ("plain", plain)]).evaluate(*case, params=p)
    assert seen["params"] is p and v.tolist() == [0.5, 0.25]
    assert RewardContext.accepted_fields(plain) == ()
    assert RewardContext.accepted_fields(lambda m, i, p, **kw: 0) == ("params",)


def test_latency_without_params_is_a_named_error(case):
    with pytest.raises(RewardError, match="'latency'.*params"):
        RewardSuite(["latency"]).evaluate(*case)


@pytest.mark.parametrize(
    "bad, expect",
    [(lambda m, i, p: float("nan"), "nan"), (lambda m, i, p: 1.5, "1.5"), (lambda m, i, p: -0.2, "-0.2"),
     (lambda m, i, p: "high", "'high'"), (lambda m, i, p: None, "None"), (lambda m, i, p: 1 / 0, "ZeroDivisionError")],
)
def test_bad_user_reward_raises_named_error(case, bad, expect):
    suite = RewardSuite(["coverage", ("my_bad_reward", bad)])
    with pytest.raises(RewardError, match="my_bad_reward") as ei:
        suite.evaluate(*case)
    assert expect in str(ei.value)
    assert ei.value.name == "my_bad_reward"
    assert pickle.loads(pickle.dumps(ei.value)).name == "my_bad_reward"


def test_round_off_is_clipped(case):
    v = RewardSuite([("tiny_over", lambda m, i, p: 1.0 + 1e-9)]).evaluate(*case)
    assert v[0] == 1.0


def test_registry(clean_registry, case):
    @register_reward("my_count")
    def my_count(masks, image, prior):
        return min(1.0, len(masks) / 10)

    assert get_reward("my_count") is my_count and "my_count" in list_rewards()
    assert RewardSuite(["my_count"]).evaluate(*case)[0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="already registered"):
        register_reward("my_count")(lambda m, i, p: 0.0)
    register_reward("my_count", overwrite=True)(circularity)
    assert get_reward("my_count") is circularity
    with pytest.raises(KeyError, match="unknown reward 'nope'.*coverage"):
        get_reward("nope")


def test_constructor_errors():
    with pytest.raises(ValueError, match="duplicate"):
        RewardSuite(["coverage", "coverage"])
    with pytest.raises(ValueError, match="2 weights for 1"):
        RewardSuite(["coverage"], weights=[1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        RewardSuite(["coverage"], weights=[-1])
    with pytest.raises(ValueError, match="unknown reward"):
        RewardSuite(["coverage"], weights={"circularity": 1.0})
    with pytest.raises(ValueError, match="name"):
        RewardSuite([lambda m, i, p: 0.0])
    with pytest.raises(ValueError, match="at least one"):
        RewardSuite([])


def test_pickle_round_trip(case):
    suite = RewardSuite(["coverage", ("cov_local", partial(coverage, threshold="local")), circularity, "latency"], weights=[1, 2, 3, 4])
    back = pickle.loads(pickle.dumps(suite))
    assert back == suite and back.names == suite.names
    p = AmgParams(points_per_side=24)
    np.testing.assert_array_equal(back.evaluate(*case, params=p), suite.evaluate(*case, params=p))
    for task in PRESETS:
        s = preset(task)
        assert pickle.loads(pickle.dumps(s)) == s


def test_deterministic_across_fresh_objects(case):
    ms, img, prior = case
    suite = preset("generic")
    a = suite.evaluate(ms, img, prior)
    b = suite.evaluate(MaskSet.from_masks(ms.masks.copy()), Micrograph(img.image.copy(), pixel_size_nm=1.0, modality="haadf"), prior)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", ["perovskite", "ito", "auco", "generic"])
def test_presets(task, case):
    s = preset(task)
    assert s.reward_dim == len(PRESETS[task]) and s.names == tuple(PRESETS[task])
    assert s.weights.sum() == pytest.approx(1.0)
    assert s.reward_space.contains(s.evaluate(*case))


def test_preset_contents_follow_the_paper():
    assert {"overlap_fidelity", "shape_fidelity"} <= set(PRESETS["perovskite"])
    assert PRESETS["ito"]["duplicate_free"] == max(PRESETS["ito"].values())
    assert {"small_particle_detection", "aggregate_coverage"} <= set(PRESETS["auco"])
    assert PRESETS["auco"]["small_particle_detection"] == PRESETS["auco"]["aggregate_coverage"]
    with pytest.raises(ValueError, match="valid presets"):
        preset("graphene")


@pytest.mark.parametrize("task", ["perovskite", "ito", "auco", "generic"])
def test_configure_suite_of_a_preset_equals_the_preset(task, case):
    a, b = configure_suite(task), preset(task)
    assert a.names == b.names and a.options == b.options
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.evaluate(*case), b.evaluate(*case))


def test_configure_suite_changes_options_and_weights_by_name(case):
    s = configure_suite("auco", options={"coverage": {"threshold": "otsu"}, "count_plausibility": {"log_threshold": 0.05}},
                        weights={"boundary_contrast": 5.0})
    opts = dict(zip(s.names, s.options, strict=True))
    assert opts["coverage"] == {"threshold": "otsu"}  # overrides the preset's triangle
    assert opts["aggregate_coverage"] == {"threshold": "triangle"}  # the preset's, untouched
    assert opts["count_plausibility"] == {"log_threshold": 0.05}
    w = dict(zip(s.names, s.weights, strict=True))
    assert w["boundary_contrast"] == pytest.approx(5 / 10) and w["coverage"] == pytest.approx(1 / 10)
    # The options reach the reward: another count floor gives another shape score on sparse masks.
    ms, img, prior = case
    lo, hi = (configure_suite(["circularity"], options={"circularity": {"count_floor": f}}).evaluate(ms, img, prior)[0] for f in (0.0, 50.0))
    assert lo > hi
    assert pickle.loads(pickle.dumps(s)).options == s.options
    names = configure_suite(["size_window", "coverage"])
    assert names.options == ({}, {}) and names.weights.tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rewards": "graphene"}, "valid presets"),
        ({"rewards": ["nope"]}, "nope"),
        ({"options": {"latency": {}}}, r"latency.*does not hold"),
        ({"weights": {"latency": 1.0}}, r"latency.*does not hold"),
        ({"options": {"size_window": {"tolerence": 0.1}}}, r"'size_window' has no option.*tolerence.*tolerance"),
        ({"options": {"size_window": 0.1}}, "must be a mapping"),
        ({"weights": {"size_window": "high"}}, "must be a number"),
        ({"weights": {"size_window": -1.0}}, "non-negative"),
    ],
)
def test_configure_suite_errors_name_the_reward(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        configure_suite(**{"rewards": "generic", **kwargs})


def test_reward_options_lists_keyword_arguments_but_not_context():
    assert reward_options("size_window") == ("tolerance", "count_floor")
    assert reward_options("latency") == ()  # its params keyword is context the suite passes
    assert set(reward_options("overlap_fidelity")) == {"solidity_range", "inscribed_range", "count_floor"}
