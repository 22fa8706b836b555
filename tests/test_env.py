"""SamStarEnv: every registered id passes the checkers, is deterministic, pickles, and keeps its contracts.

Fast by construction: the session's random 64-px SAM, 96x96 images and a 4-dimensional space whose
only expensive dimension (points_per_side) has two cheap values, so each env decodes at most twice.
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import samstar_env
from samstar_env.data.synthetic import generate
from samstar_env.env import ActionClippedWarning, EvalCost, SamStarEnv
from samstar_env.observation import IMAGE_FEATURE_NAMES
from samstar_env.params import AmgParams
from samstar_env.problem import TuningProblem
from samstar_env.registration import CUSTOM_ID, SYNTHETIC_IDS
from samstar_env.wrappers import ScalarizeReward
from tests.env_helpers import make

ALL_IDS = [*SYNTHETIC_IDS, CUSTOM_ID]




def rollout(env: gym.Env, seed: int, n: int) -> tuple[list, list]:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(n):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return observations, rewards


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_on_scalarized(env_id, random_sam):
    env = ScalarizeReward(make(env_id, random_sam))
    with warnings.catch_warnings():
        # check_env recommends checking the unwrapped env; the scalarized stack is what SB3 sees.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_determinism_pickle_and_reward_space(env_id, random_sam):
    env_a = make(env_id, random_sam)
    env_b = make(env_id, random_sam)
    obs_a, rew_a = rollout(env_a, seed=7, n=4)
    obs_b, rew_b = rollout(env_b, seed=7, n=4)
    assert len(rew_a) == 4
    for x, y in zip(obs_a, obs_b, strict=True):
        np.testing.assert_array_equal(x, y)
    u = env_a.unwrapped
    for x, y in zip(rew_a, rew_b, strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == np.float32 and x.shape == (u.reward_dim,)
        assert u.reward_space.contains(x)
    for o in obs_a:
        assert env_a.observation_space.contains(o)

    # Pickle round-trip mid-episode: the copy continues exactly like the original (it rebuilds its
    # engine from the pickled model).
    env_a.action_space.seed(3)
    env_a.reset(seed=3)
    env_a.step(env_a.action_space.sample())
    copy = pickle.loads(pickle.dumps(env_a))
    act = env_a.action_space.sample()
    o1, r1, t1, _, i1 = env_a.step(act)
    o2, r2, t2, _, i2 = copy.step(act)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    assert t1 == t2 and i1["params"] == i2["params"]
    assert copy.unwrapped.reward_names == u.reward_names


def test_env_step_equals_tuning_problem(random_sam):
    env = make("samstar/Perovskite-v4", random_sam)
    env.reset(seed=0)
    action = np.array([1.0, -0.9, -0.9, 0.5], np.float32)
    _, r, _, _, info = env.step(action)
    u = env.unwrapped
    ev = TuningProblem(u.task).evaluate(u.space.decode(action))
    np.testing.assert_array_equal(r, ev.rewards)
    assert info["params"] == u.space.decode(action)
    assert info["n_masks"] == sum(ev.n_masks) and info["n_masks_per_image"] == ev.n_masks


def test_info_keys_and_cost(random_sam):
    from samstar_env.engine import MaskEngine

    # A private engine (direct construction): the process-wide one may already hold this image.
    task = make("samstar/ITO-v4", random_sam).unwrapped.task
    env = SamStarEnv(task, budget=4, engine=MaskEngine(random_sam))
    _, info0 = env.reset(seed=0)
    assert set(info0) == {"image_names", "descriptors"}
    assert list(info0["descriptors"]) == list(IMAGE_FEATURE_NAMES)
    assert env.last_cost is None
    a = np.array([0.9, -1.0, -1.0, 0.9], np.float32)
    _, r, _, _, first = env.step(a)
    first_cost = env.last_cost
    _, _, _, _, again = env.step(a)
    again_cost = env.last_cost
    assert set(first) == {"params", "action", "rewards", "n_masks", "n_masks_per_image", "reward_details",
                          "image_names", "evaluation_index", "best_rewards"}
    assert isinstance(first["params"], AmgParams) and first["params"].points_per_side == 4
    assert list(first["rewards"]) == list(env.unwrapped.reward_names)
    assert first["rewards"] == pytest.approx(dict(zip(env.unwrapped.reward_names, r.tolist(), strict=True)))
    assert len(first["reward_details"]) == 1 and "rewards" in first["reward_details"][0]
    assert "gt" not in first  # only with gt_metrics=True
    # The first evaluation decodes; the identical second one is served from the cache.
    assert isinstance(first_cost, EvalCost) and isinstance(again_cost, EvalCost)
    assert first_cost.cache_misses >= 1 and first_cost.seconds > 0
    assert again_cost.cache_hits >= 1 and again_cost.cache_misses == 0
    assert first_cost != again_cost  # an honest value: the decode and the replay differ
    assert first_cost == EvalCost(first_cost.seconds, first_cost.cache_hits, first_cost.cache_misses,
                                  dict(first_cost.engine))
    env.reset(seed=0)
    assert env.last_cost is None
    assert (first["evaluation_index"], again["evaluation_index"]) == (0, 1)


def test_gt_metrics_in_info(random_sam):
    env = make("samstar/AuCo-v4", random_sam, gt_metrics=True)
    env.reset(seed=0)
    _, r, _, _, info = env.step(np.array([1.0, -1.0, -1.0, 1.0], np.float32))
    assert isinstance(info["gt"], dict) and info["gt"]
    np.testing.assert_array_equal(r, make("samstar/AuCo-v4", random_sam).unwrapped.problem.evaluate(info["params"]).rewards)


def test_budget_episode_and_observation_blocks(random_sam):
    env = make("samstar/Perovskite-v4", random_sam, budget=3)
    u = env.unwrapped
    obs, _ = env.reset(seed=0)
    sl = u.feature_slices
    assert len(u.observation_names) == obs.shape[0] == 13 + u.space.dim + 2 * u.reward_dim + 1
    assert obs[sl["budget_left"]][0] == 1.0 and not obs[sl["prev_action"]].any() and not obs[sl["best_reward"]].any()
    rewards = []
    for t in range(3):
        a = np.array([1.0, -1.0, -1.0, 0.2 * t], np.float32)
        obs, r, term, trunc, info = env.step(a)
        rewards.append(r)
        prev = obs[sl["prev_action"]]
        np.testing.assert_array_equal(prev, u.space.encode(info["params"]))
        np.testing.assert_allclose(prev[1:], a[1:], atol=1e-6)  # float dims: the action itself
        assert prev[0] == 0.5  # points_per_side=4: centre of the upper of two grid bins
        np.testing.assert_array_equal(obs[sl["prev_reward"]], r)
        np.testing.assert_allclose(obs[sl["budget_left"]], [(2 - t) / 3])
        assert term == (t == 2) and not trunc
    np.testing.assert_array_equal(obs[sl["best_reward"]], np.max(rewards, axis=0))
    with pytest.raises(RuntimeError, match="episode is over"):
        u.step(a)


def test_improvement_rewards_sum_to_best(random_sam):
    env = make("samstar/Perovskite-v4", random_sam, budget=3, reward_mode="improvement")
    env.action_space.seed(1)
    env.reset(seed=1)
    total = np.zeros(env.unwrapped.reward_dim, np.float32)
    for _ in range(3):
        _, r, _, _, info = env.step(env.action_space.sample())
        assert (r >= 0).all() and env.unwrapped.reward_space.contains(r)
        total += r
    np.testing.assert_allclose(total, info["best_rewards"], atol=1e-6)


def test_contextual_mode_draws_images_from_np_random(random_sam):
    env = make("samstar/Perovskite-v4", random_sam, mode="contextual", n_images=3)
    names = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        assert len(info["image_names"]) == 1
        names.append(info["image_names"][0])
        _, r, term, trunc, _ = env.step(np.array([-1.0, -1.0, -1.0, 0.9], np.float32))
        assert term and not trunc and env.unwrapped.reward_space.contains(r)
    assert len(set(names)) > 1  # a new image per episode
    assert env.reset(seed=2)[1]["image_names"] == (names[2],)  # same seed, same image
    # Unseeded resets continue the env's own generator: still reproducible from the first seed.
    env.reset(seed=11)
    seq1 = [env.reset()[1]["image_names"] for _ in range(4)]
    env.reset(seed=11)
    assert [env.reset()[1]["image_names"] for _ in range(4)] == seq1


def test_reset_with_given_image_and_thumbnail_obs(random_sam):
    env = make("samstar/Perovskite-v4", random_sam, obs_mode="thumbnail", thumbnail_size=40)
    frame = generate("perovskite", 123, size=(80, 112))
    obs, info = env.reset(seed=0, options={"image": frame})
    assert info["image_names"] == (frame.name,)
    assert env.observation_space.contains(obs)
    assert obs["thumbnail"].dtype == np.uint8 and obs["thumbnail"].shape == (40, 40, 1)
    obs, r, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"imgs": [frame]})
    with pytest.raises(TypeError, match="Micrograph"):
        env.reset(options={"images": [np.zeros((8, 8), np.float32)]})


def test_bad_actions(random_sam):
    env = make("samstar/Perovskite-v4", random_sam)
    u = env.unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(4,\).*points_per_side"):
        u.step(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        u.step(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="not numeric"):
        u.step(["a", "b", "c", "d"])
    with pytest.warns(ActionClippedWarning, match="pred_iou_thresh"):
        _, _, _, _, info = u.step(np.array([0.0, 3.0, -1.0, 1.0]))
    np.testing.assert_array_equal(info["action"], np.array([0.0, 1.0, -1.0, 1.0], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u.step(np.array([1.0, -1.0, 1.0, -1.0], np.float64))  # on the bounds: no warning


def test_construction_is_cheap_and_validated(random_sam):
    # gym.make loads no model: a bad model name fails on the first step, not before.
    env = make("samstar/Perovskite-v4", "no-such-model")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(Exception, match="no-such-model"):
        env.step(env.action_space.sample())
    task = make("samstar/Perovskite-v4", random_sam).unwrapped.task
    for bad, match in [
        ({"mode": "online"}, "mode"),
        ({"obs_mode": "pixels"}, "obs_mode"),
        ({"budget": 0}, "budget"),
        ({"images_per_episode": 5}, "images_per_episode"),
        ({"reward_mode": "sum"}, "reward_mode"),
    ]:
        with pytest.raises(ValueError, match=match):
            SamStarEnv(task, **bad)
    with pytest.raises(TypeError, match="Task"):
        SamStarEnv("perovskite")


def test_lazy_exports():
    assert samstar_env.SamStarEnv is SamStarEnv
    assert callable(samstar_env.make_env_from_toml)


def test_mask_budget_scores_nothing_over_it_and_says_so(random_sam, caplog):
    from samstar_env.engine import MaskEngine, to_sam_image
    from samstar_env.engine.testing import structure_random_sam
    from samstar_env.errors import InputError, MaskBudgetExceeded

    task = make("samstar/ITO-v4", random_sam).unwrapped.task
    # Localized masks (the plain random SAM gives one whole-image mask), so the count can exceed a budget.
    engine = MaskEngine(structure_random_sam(random_sam, to_sam_image(task.images[0])))
    a = np.array([0.9, -1.0, -1.0, 0.9], np.float32)
    free = SamStarEnv(task, budget=4, engine=engine, max_masks=None)
    free.reset(seed=0)
    _, r_free, _, _, info_free = free.step(a)
    n = info_free["n_masks"]
    assert n >= 2 and "over_mask_budget" not in info_free

    # The engine stops after the filters and NMS, before any per-mask work.
    params = info_free["params"]
    with pytest.raises(MaskBudgetExceeded) as exc:
        engine.generate(free.images[0], params, max_masks=n - 1)
    assert (exc.value.count, exc.value.limit) == (n, n - 1)
    assert len(engine.generate(free.images[0], params, max_masks=n)) == n

    tight = SamStarEnv(task, budget=4, engine=engine, max_masks=n - 1)
    tight.reset(seed=0)
    with caplog.at_level("WARNING", logger="samstar_env.env"):
        obs, r, _, _, info = tight.step(a)
        tight.step(a)
    assert info["over_mask_budget"] == (n,) and info["n_masks"] == n
    assert np.array_equal(r, tight.reward_space.low) and r_free.max() > 0
    assert np.array_equal(obs[tight.feature_slices["prev_reward"]], tight.reward_space.low)
    assert sum("over its budget (max_masks=" in m for m in caplog.messages) == 1  # once per env
    assert tight.max_masks == n - 1 and SamStarEnv(task, engine=engine).max_masks == 1000

    # A user's segmenter without the keyword: counted after it returns, scored the same way.
    class Plain:
        def generate(self, image, p):
            return engine.generate(image, p)

    ev = TuningProblem(task, engine=Plain(), max_masks=n - 1).evaluate(params)
    assert ev.details["over_mask_budget"] == (n,) and not ev.rewards.any()
    # Larger images get the budget per 512² pixels (their particles scale with their area).
    problem = TuningProblem(task, engine=engine, max_masks=100)
    assert [problem.mask_budget(s) for s in ((96, 96), (512, 512), (1024, 1024), (4096, 4096))] == [100, 100, 400, 6400]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="max_masks must be a positive integer or None"):
            SamStarEnv(task, engine=engine, max_masks=bad)
