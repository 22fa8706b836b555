"""Wrappers: scalarization for SB3 (vector kept in info), normalization, MO-Gymnasium compatibility, PPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import samstar_env  # noqa: F401  (registers the ids)
from samstar_env.wrappers import NormalizeVectorReward, RunningMeanStd, ScalarizeReward
from tests.env_helpers import make

# Low thresholds: the random model's masks survive, so the reward vector is not all zeros.
LENIENT = np.array([1.0, -1.0, -1.0, 0.9], np.float32)


def test_scalarize_default_uses_suite_weights(random_sam):
    env = ScalarizeReward(make("samstar/Perovskite-v4", random_sam))
    suite = env.unwrapped.reward_suite
    env.reset(seed=0)
    _, r, _, _, info = env.step(LENIENT)
    assert isinstance(r, float)
    v = info["vector_reward"]
    assert v.dtype == np.float32 and env.unwrapped.reward_space.contains(v)
    assert r == pytest.approx(suite.scalarize(v))
    np.testing.assert_allclose(info["reward_weights"], suite.weights)


def test_scalarize_explicit_weights_and_chebyshev(random_sam):
    base = make("samstar/AuCo-v4", random_sam)
    k = base.unwrapped.reward_dim
    w = np.zeros(k)
    w[1] = 2.0
    lin = ScalarizeReward(base, weights=w)
    lin.reset(seed=0)
    _, r, _, _, info = lin.step(LENIENT)
    assert r == pytest.approx(2.0 * float(info["vector_reward"][1]))

    cheb = ScalarizeReward(make("samstar/AuCo-v4", random_sam), weights="chebyshev")
    cheb.reset(seed=0)
    _, rc, _, _, info = cheb.step(LENIENT)
    v = info["vector_reward"].astype(np.float64)
    assert rc == pytest.approx(-np.max((1.0 - v) / k))
    assert -1.0 / k <= rc <= 0.0

    with pytest.raises(ValueError, match=f"expected {k}"):
        ScalarizeReward(base, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="non-negative"):
        ScalarizeReward(base, weights=-np.ones(k))
    with pytest.raises(ValueError, match="chebyshev"):
        ScalarizeReward(base, weights="tchebycheff")


def test_normalization(random_sam):
    env = NormalizeVectorReward(make("samstar/ITO-v4", random_sam, budget=6), clip=3.0)
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(6):
        _, r, term, _, info = env.step(env.action_space.sample())
        assert r.dtype == np.float32 and env.reward_space.contains(r)
        assert env.unwrapped.reward_space.contains(info["raw_vector_reward"])
    assert env.stats.count == 6

    s = ScalarizeReward(make("samstar/ITO-v4", random_sam), normalize=True)
    s.reset(seed=0)
    _, r, _, _, info = s.step(LENIENT)
    assert r == 0.0  # first sample: every component at its running mean
    np.testing.assert_allclose(info["reward_weights"].sum(), 1.0)


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    xs = rng.random((50, 3))
    rms = RunningMeanStd((3,))
    for x in xs:
        rms.update(x)
    np.testing.assert_allclose(rms.mean, xs.mean(0))
    np.testing.assert_allclose(rms.var, xs.var(0))


def test_wrappers_need_a_vector_reward():
    with pytest.raises(TypeError, match="reward_space"):
        ScalarizeReward(gym.make("CartPole-v1"))


def test_mo_gymnasium_wrappers(random_sam):
    mo_wrappers = pytest.importorskip("mo_gymnasium.wrappers")
    env = mo_wrappers.MORecordEpisodeStatistics(make("samstar/Perovskite-v4", random_sam, budget=3), gamma=0.9)
    lin = mo_wrappers.LinearReward(env, weight=np.full(env.unwrapped.reward_dim, 0.5, np.float32))
    lin.action_space.seed(0)
    lin.reset(seed=0)
    total = np.zeros(env.unwrapped.reward_dim, np.float32)
    for _ in range(3):
        _, r, term, trunc, info = lin.step(lin.action_space.sample())
        assert np.isscalar(r) or np.ndim(r) == 0
        assert r == pytest.approx(0.5 * info["vector_reward"].sum(), rel=1e-5)
        total += info["vector_reward"]
    assert term
    assert info["episode"]["r"].shape == (env.unwrapped.reward_dim,) and info["episode"]["l"] == 3
    np.testing.assert_allclose(info["episode"]["r"], total, rtol=1e-6)


def test_sb3_check_env_and_ppo(random_sam):
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = ScalarizeReward(make("samstar/Perovskite-v4", random_sam, budget=8))
    sb3_check_env(env, warn=True)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_sb3_contextual_thumbnail(random_sam):
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = ScalarizeReward(
        make("samstar/Perovskite-v4", random_sam, mode="contextual", n_images=2, obs_mode="thumbnail", thumbnail_size=36)
    )
    sb3_check_env(env, warn=True)
    # A CNN policy (NatureCNN on the 36 px thumbnail) runs on the Dict observation.
    model = sb3.PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=16)
    assert model.num_timesteps >= 16
