"""Wrappers: scalarize the vector reward for single-objective agents, and normalize it per reward.

``SamStarEnv`` follows MO-Gymnasium: ``step`` returns a float32 reward VECTOR and the unwrapped env has
``reward_space`` and ``reward_dim``. stable-baselines3 (and Gymnasium's ``check_env``) need a scalar:
:class:`ScalarizeReward` provides it and keeps the vector in ``info["vector_reward"]`` (the key
MO-Gymnasium's own ``LinearReward`` uses), so MO-aware logging still sees every objective.
MO-Gymnasium's ``LinearReward`` and ``MORecordEpisodeStatistics`` work on the env directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv


class RunningMeanStd:
    """Per-component running mean and variance (Chan et al.'s parallel update; picklable).

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 0.0

    def update(self, x: np.ndarray) -> None:
        """Add one sample."""
        x = np.asarray(x, np.float64)
        if self.count == 0:
            self.mean, self.var, self.count = x.copy(), np.zeros_like(x), 1.0
            return
        n = self.count + 1.0
        delta = x - self.mean
        mean = self.mean + delta / n
        # Population variance, updated without storing samples.
        self.var = (self.var * self.count + delta * (x - mean)) / n
        self.mean, self.count = mean, n

    def normalize(self, x: np.ndarray, *, epsilon: float = 1e-8) -> np.ndarray:
        """``(x - mean) / sqrt(var + epsilon)``."""
        return (np.asarray(x, np.float64) - self.mean) / np.sqrt(self.var + epsilon)


class NormalizeVectorReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Standardize each reward component by its running mean and standard deviation.

    Physics rewards share the range [0, 1] but not their spread (one may move in [0.9, 1], another
    in [0, 0.5]); standardizing puts them on equal footing before they are weighted. The wrapper's
    own ``reward_space`` is ``Box(-clip, clip)``; ``env.unwrapped.reward_space`` keeps the true
    bounds of the raw rewards, which stay available in ``info["raw_vector_reward"]``.

    Parameters
    ----------
    env : gymnasium.Env
        An env with a vector reward (``env.unwrapped.reward_space``).
    clip : float
        Normalized values are clipped to ``[-clip, clip]``.
    epsilon : float
        Added to the variance.
    update : bool
        Update the statistics on each step (set ``False`` to evaluate with frozen statistics).
    """

    def __init__(self, env: gym.Env, *, clip: float = 5.0, epsilon: float = 1e-8, update: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, clip=clip, epsilon=epsilon, update=update)
        gym.Wrapper.__init__(self, env)
        k = _reward_dim(env)
        if not clip > 0:
            raise ValueError(f"NormalizeVectorReward: clip must be positive, got {clip!r}")
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.update = bool(update)
        self.stats = RunningMeanStd((k,))
        self.reward_space = spaces.Box(-self.clip, self.clip, shape=(k,), dtype=np.float32)

    def step(self, action: Any) -> tuple[Any, np.ndarray, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        vec = np.asarray(reward, np.float64)
        if self.update:
            self.stats.update(vec)
        info["raw_vector_reward"] = np.asarray(reward, np.float32).copy()
        norm = np.clip(self.stats.normalize(vec, epsilon=self.epsilon), -self.clip, self.clip)
        return obs, norm.astype(np.float32), terminated, truncated, info


class ScalarizeReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn the vector reward into a float for single-objective agents (stable-baselines3).

    Parameters
    ----------
    env : gymnasium.Env
        An env with a vector reward (``env.unwrapped.reward_space``).
    weights : array-like, "chebyshev" or None
        ``None`` (default): the reward suite's weights (the task preset's documented weighting,
        summing to 1, i.e. ``RewardSuite.scalarize``). An array of ``k`` non-negative weights: the
        weighted sum ``w . r``.
        ``"chebyshev"``: ``-max_i w_i (u_i - r_i)``, the weighted Chebyshev distance to the
        utopia point ``u`` (negated, so higher is better), with uniform weights unless
        ``chebyshev_weights`` is given; it reaches points on concave parts of a Pareto front that
        no weighted sum can.
    chebyshev_weights : array-like, optional
        Weights for ``"chebyshev"`` (default ``1/k`` each).
    utopia : array-like, optional
        Utopia point for ``"chebyshev"`` (default: the upper bound of the reward space, 1 for the
        physics rewards; with ``normalize=True`` the clip bound).
    normalize : bool
        Standardize each component by its running mean and std before weighting (see
        :class:`NormalizeVectorReward`).
    clip : float
        Clip bound of the normalized components.

    Notes
    -----
    ``info["vector_reward"]`` holds the environment's raw float32 vector (not normalized) and
    ``info["reward_weights"]`` the weights (the Chebyshev weights for ``"chebyshev"``).

    Examples
    --------
    Skipped when the docs are tested: a step loads the task's model and segments (seconds to
    minutes on a CPU); ``tests/test_wrappers.py`` runs it on a small random-weight model.

    >>> env = ScalarizeReward(gym.make("samstar/Perovskite-v4"), weights=[1, 0, 0])  # doctest: +SKIP
    >>> obs, r, term, trunc, info = env.step(env.action_space.sample())            # doctest: +SKIP
    >>> info["vector_reward"]                                                      # doctest: +SKIP
    """

    def __init__(
        self,
        env: gym.Env,
        weights: Sequence[float] | np.ndarray | Literal["chebyshev"] | None = None,
        *,
        chebyshev_weights: Sequence[float] | np.ndarray | None = None,
        utopia: Sequence[float] | np.ndarray | None = None,
        normalize: bool = False,
        clip: float = 5.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, weights=weights, chebyshev_weights=chebyshev_weights, utopia=utopia, normalize=normalize, clip=clip
        )
        gym.Wrapper.__init__(self, env)
        k = _reward_dim(env)
        self.reward_dim = k
        self.normalize = bool(normalize)
        self.clip = float(clip)
        self.stats = RunningMeanStd((k,)) if self.normalize else None
        self.method: str
        self.weights: np.ndarray
        self.utopia: np.ndarray | None = None
        if isinstance(weights, str):
            if weights != "chebyshev":
                raise ValueError(f"ScalarizeReward: weights must be an array, 'chebyshev' or None, got {weights!r}")
            self.method = "chebyshev"
            self.weights = _check_weights(np.full(k, 1.0 / k) if chebyshev_weights is None else chebyshev_weights, k)
            if utopia is None:
                rs: Any = getattr(env.unwrapped, "reward_space")  # noqa: B009 - checked by _reward_dim
                high = np.full(k, self.clip) if self.normalize else np.asarray(rs.high, np.float64)
                if not np.isfinite(high).all():
                    raise ValueError("ScalarizeReward: the reward space is unbounded; pass utopia= for 'chebyshev'")
                utopia = high
            self.utopia = np.asarray(utopia, np.float64).reshape(-1)
            if self.utopia.shape != (k,):
                raise ValueError(f"ScalarizeReward: utopia has {self.utopia.size} values; expected {k}")
        elif weights is None:
            # The suite's documented preset weights (its scalarize is this same weighted mean).
            suite_w = getattr(getattr(env.unwrapped, "reward_suite", None), "weights", None)
            self.method = "linear"
            self.weights = _check_weights(np.full(k, 1.0 / k) if suite_w is None else suite_w, k)
        else:
            self.method, self.weights = "linear", _check_weights(weights, k)

    def scalarize(self, vector: np.ndarray) -> float:
        """The scalar reward of a (raw) reward vector, WITHOUT updating normalization statistics."""
        v = np.asarray(vector, np.float64)
        if self.stats is not None:
            v = np.clip(self.stats.normalize(v), -self.clip, self.clip)
        if self.method == "chebyshev":
            assert self.utopia is not None
            return float(-np.max(self.weights * (self.utopia - v)))
        return float(np.dot(self.weights, v))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        vec = np.asarray(reward, np.float32).reshape(-1)
        if vec.shape != (self.reward_dim,):
            raise ValueError(f"ScalarizeReward: expected a reward vector of {self.reward_dim} values, got shape {vec.shape}")
        if self.stats is not None:
            self.stats.update(vec)
        scalar = self.scalarize(vec)
        info["vector_reward"] = vec.copy()
        info["reward_weights"] = self.weights.copy()
        return obs, scalar, terminated, truncated, info


class SyncVectorRewardEnv(SyncVectorEnv):
    """A ``SyncVectorEnv`` whose rewards are ``(num_envs, reward_dim)`` float32 arrays.

    Gymnasium's ``SyncVectorEnv`` stores one float per sub-env, so a vector reward does not fit;
    this is what ``gym.make_vec`` builds for the samstar ids (their ``vector_entry_point``), the same
    override as MO-Gymnasium's ``MOSyncVectorEnv`` without requiring MO-Gymnasium. For stable-
    baselines3, scalarize each sub-env instead: ``gym.make_vec(id, n, vectorization_mode="sync",
    wrappers=[ScalarizeReward])``.

    Parameters
    ----------
    env_fns : iterable of callables
        Sub-env constructors (every sub-env has the same ``unwrapped.reward_space``).
    copy : bool
        Return copies of the batched observations.
    """

    def __init__(self, env_fns: Any, *, copy: bool = True) -> None:
        super().__init__(env_fns, copy=copy)
        k = _reward_dim(self.envs[0])
        rs: Any = getattr(self.envs[0].unwrapped, "reward_space")  # noqa: B009 - checked by _reward_dim
        self.reward_space = rs
        self.reward_dim = k
        self._rewards = np.zeros((self.num_envs, k), dtype=np.float32)


def _reward_dim(env: gym.Env) -> int:
    rs = getattr(env.unwrapped, "reward_space", None)
    if rs is None or len(getattr(rs, "shape", ()) or ()) != 1:
        raise TypeError(
            f"{type(env.unwrapped).__name__} has no vector reward_space; these wrappers expect a multi-objective env"
        )
    return int(rs.shape[0])


def _check_weights(weights: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (k,):
        raise ValueError(f"ScalarizeReward: got {w.size} weights; expected {k} (one per reward)")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"ScalarizeReward: weights must be finite and non-negative, got {w.tolist()}")
    return w
