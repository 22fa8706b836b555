"""RewardSuite: an ordered set of rewards evaluated into one float32 vector."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from gymnasium import spaces

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine.maskset import MaskSet
from samstar_env.errors import RewardError
from samstar_env.params import AmgParams
from samstar_env.rewards.geometry import diameters, mask_geometry, pixel_size_nm
from samstar_env.rewards.registry import RewardContext, get_reward

RewardSpec = str | Callable[..., float] | tuple[str, Callable[..., float]]

# Values this close outside [0, 1] are floating-point round-off and are clipped, not rejected.
_RANGE_SLACK = 1e-6


def _fn_key(fn: Callable[..., Any]) -> Any:
    """Identity of a reward function; a ``functools.partial`` by its function and options (partials
    have no equality of their own, so a pickled-and-restored suite would otherwise differ)."""
    if isinstance(fn, partial):
        return (_fn_key(fn.func), fn.args, tuple(sorted(fn.keywords.items())))
    return fn


def _resolve(spec: RewardSpec) -> tuple[str, Callable[..., float]]:
    if isinstance(spec, str):
        return spec, get_reward(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and callable(spec[1]):
        return spec[0], spec[1]
    if callable(spec):
        name = getattr(spec, "__name__", None) or getattr(getattr(spec, "func", None), "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError(f"RewardSuite: cannot name reward {spec!r}; pass it as a (name, function) pair")
        return name, spec
    raise TypeError(f"RewardSuite: a reward must be a registered name, a function or a (name, function) pair, got {spec!r}")


class RewardSuite:
    """An ordered set of rewards; :meth:`evaluate` returns their values as a float32 vector.

    Parameters
    ----------
    rewards : sequence of str, callable or (name, callable)
        Registered reward names (see :func:`list_rewards`), reward functions (named by
        ``__name__``; configure options with ``functools.partial``) or explicit (name, function)
        pairs. The order is the order of the vector and of ``reward_space``.
    weights : sequence of float or mapping name -> float, optional
        Non-negative weights for :meth:`scalarize`, normalized to sum to 1. Default: equal
        weights, i.e. the plain mean of the rewards (every reward already lies in [0, 1], so the
        mean is in [0, 1] too and no reward dominates by scale).

    Notes
    -----
    Each reward is called as ``f(masks, image, prior, **ctx)`` where ``ctx`` holds the
    :class:`RewardContext` fields the function declares as keywords (e.g. ``params`` for
    ``latency``). A reward that raises, or returns anything but a finite real number in [0, 1],
    stops the evaluation with a :class:`RewardError` naming it and what it returned. The suite
    holds only names, functions and weights, so it pickles whenever its functions do (module-level
    functions and ``functools.partial`` of them; not lambdas). Rewards share the per-MaskSet
    geometry cache, so a suite evaluation measures each mask once.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> suite = RewardSuite(["circularity", "duplicate_free"], weights=[3, 1])
    >>> suite.names, suite.reward_dim
    (('circularity', 'duplicate_free'), 2)
    >>> m = np.zeros((1, 64, 64), bool); m[(0, *disk((32, 32), 12))] = True
    >>> v = suite.evaluate(MaskSet.from_masks(m), Micrograph(np.zeros((64, 64), np.float32)), PhysicsPrior((5.0, 40.0)))
    >>> v.dtype, bool(suite.reward_space.contains(v)), round(suite.scalarize(v), 2)
    (dtype('float32'), True, 1.0)
    """

    def __init__(self, rewards: Sequence[RewardSpec], *, weights: Sequence[float] | Mapping[str, float] | None = None) -> None:
        if isinstance(rewards, (str, bytes)) or not isinstance(rewards, Sequence):
            raise TypeError(f"RewardSuite: rewards must be a sequence of names or functions, got {rewards!r}")
        if len(rewards) == 0:
            raise ValueError("RewardSuite: at least one reward is needed")
        resolved = [_resolve(s) for s in rewards]
        names = [n for n, _ in resolved]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"RewardSuite: duplicate reward name(s) {dup}; use (name, function) pairs to rename")
        self._names: tuple[str, ...] = tuple(names)
        self._fns: tuple[Callable[..., float], ...] = tuple(f for _, f in resolved)
        self._ctx_fields = tuple(RewardContext.accepted_fields(f) for f in self._fns)
        self._weights = self._normalize_weights(weights)

    def _normalize_weights(self, weights: Sequence[float] | Mapping[str, float] | None) -> np.ndarray:
        k = len(self._names)
        if weights is None:
            w = np.ones(k)
        elif isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(self._names))
            if unknown:
                raise ValueError(f"RewardSuite: weights for unknown reward(s) {unknown}; rewards are {list(self._names)}")
            w = np.array([float(weights.get(n, 0.0)) for n in self._names])
        else:
            w = np.asarray(weights, float).reshape(-1)
            if w.shape[0] != k:
                raise ValueError(f"RewardSuite: {w.shape[0]} weights for {k} rewards {list(self._names)}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"RewardSuite: weights must be finite, non-negative and not all zero, got {w.tolist()}")
        return w / w.sum()

    # --- description -------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Reward names in vector order."""
        return self._names

    @property
    def functions(self) -> tuple[Callable[..., float], ...]:
        """Reward functions in vector order."""
        return self._fns

    @property
    def options(self) -> tuple[dict[str, Any], ...]:
        """Each reward's options in vector order: the keywords of a ``functools.partial``, else ``{}``."""
        return tuple(dict(f.keywords) if isinstance(f, partial) else {} for f in self._fns)

    @property
    def weights(self) -> np.ndarray:
        """Normalized scalarization weights (sum 1), in vector order."""
        return self._weights.copy()

    @property
    def reward_dim(self) -> int:
        """Number of rewards (MO-Gymnasium's ``reward_dim``)."""
        return len(self._names)

    @property
    def reward_space(self) -> spaces.Box:
        """``Box(0, 1, (k,), float32)``: the true bounds of every reward."""
        return spaces.Box(low=0.0, high=1.0, shape=(self.reward_dim,), dtype=np.float32)

    def __len__(self) -> int:
        return self.reward_dim

    def __repr__(self) -> str:
        ws = ", ".join(f"{n}={w:.3g}" for n, w in zip(self._names, self._weights, strict=True))
        return f"RewardSuite({ws})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RewardSuite):
            return NotImplemented
        return (
            self._names == other._names
            and tuple(map(_fn_key, self._fns)) == tuple(map(_fn_key, other._fns))
            and np.array_equal(self._weights, other._weights)
        )

    __hash__ = None  # type: ignore[assignment]

    # --- evaluation --------------------------------------------------------------------------
    def _call(self, k: int, masks: MaskSet, image: Micrograph, prior: PhysicsPrior, ctx: RewardContext) -> float:
        name, fn = self._names[k], self._fns[k]
        kwargs = {f: getattr(ctx, f) for f in self._ctx_fields[k]}
        try:
            value = fn(masks, image, prior, **kwargs)
        except RewardError:
            raise
        except Exception as exc:
            raise RewardError(name, f"raised {type(exc).__name__}: {exc}") from exc
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise RewardError(name, f"returned {value!r} ({type(value).__name__}); expected a float in [0, 1]")
        v = float(value)
        if math.isnan(v) or math.isinf(v) or v < -_RANGE_SLACK or v > 1.0 + _RANGE_SLACK:
            raise RewardError(name, f"returned {v!r}, outside [0, 1]")
        return min(max(v, 0.0), 1.0)

    def evaluate(
        self, masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, params: AmgParams | None = None,
        context: RewardContext | None = None,
    ) -> np.ndarray:
        """The reward vector (float32, shape ``(reward_dim,)``, in :attr:`names` order).

        Parameters
        ----------
        masks, image, prior
            What to score.
        params : AmgParams, optional
            The parameters that produced ``masks`` (shorthand for ``context=RewardContext(params)``).
        context : RewardContext, optional
            Full context; overrides ``params``.
        """
        ctx = context if context is not None else RewardContext(params=params)
        return np.array([self._call(k, masks, image, prior, ctx) for k in range(self.reward_dim)], dtype=np.float32)

    def evaluate_with_details(
        self, masks: MaskSet, image: Micrograph, prior: PhysicsPrior, *, params: AmgParams | None = None,
        context: RewardContext | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The reward vector and a JSON-ready dict for an env's ``info``.

        The dict holds ``rewards`` (name -> value), ``scalar`` (:meth:`scalarize`), ``n_masks``,
        ``n_valid_masks`` (non-empty, non-background), ``n_background_masks``,
        ``median_diameter`` and ``diameter_unit`` (``"nm"`` or ``"px"``; the median is ``None``
        without valid masks). Everything in it is deterministic.
        """
        vec = self.evaluate(masks, image, prior, params=params, context=context)
        g = mask_geometry(masks)
        d = diameters(masks, image, prior)[g.valid]
        details: dict[str, Any] = {
            "rewards": {n: float(v) for n, v in zip(self._names, vec, strict=True)},
            "scalar": self.scalarize(vec),
            "n_masks": len(masks),
            "n_valid_masks": int(g.valid.sum()),
            "n_background_masks": int(g.is_background.sum()),
            "median_diameter": float(np.median(d)) if d.size else None,
            "diameter_unit": "nm" if pixel_size_nm(image, prior) is not None else "px",
        }
        return vec, details

    def scalarize(self, vector: np.ndarray | Sequence[float]) -> Any:
        """Weighted mean of a reward vector (or of each row of a ``(..., k)`` array), in [0, 1].

        Returns a Python float for one vector, an ndarray for a batch.
        """
        v = np.asarray(vector, float)
        if v.shape[-1:] != (self.reward_dim,):
            raise ValueError(f"RewardSuite.scalarize: expected a vector of length {self.reward_dim} ({list(self._names)}), got shape {v.shape}")
        out = v @ self._weights
        return float(out) if np.ndim(out) == 0 else out
