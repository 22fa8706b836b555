"""The reward registry, the evaluation context and the error a misbehaving reward raises.

Users plug in their own reward with a decorator::

    from samstar_env.rewards import register_reward

    @register_reward("my_reward")
    def my_reward(masks, image, prior):
        return 1.0 if len(masks) else 0.0

after which ``RewardSuite(["size_window", "my_reward"])`` and ``get_reward("my_reward")`` find it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from samstar_env.params import AmgParams

F = TypeVar("F", bound=Callable[..., float])

#: Version of the built-in rewards' definitions: bumped whenever one of them can return another
#: value for the same masks, image and prior, so that results made under another version (the
#: shipped reference fronts, the env's ``-vN`` ids) are not compared with new ones.
#: 2: per-mask means are taken over at least ``count_floor`` times the expected particle count.
#: 3: ``small_particle_detection`` is an F2 score against the small LoG blobs (recall alone
#: saturated at 1.0) and ``aggregate_coverage`` weighs each aggregate's best IoU by that mask's
#: share of all mask area on it (fragments and nested duplicates cost).
REWARDS_VERSION = 3

_REGISTRY: dict[str, Callable[..., float]] = {}


@dataclass(frozen=True)
class RewardContext:
    """What a reward may know besides the masks, the image and the prior.

    Rewards are plain functions ``f(masks, image, prior, *, ...)``. A reward that needs context
    declares a keyword-only argument with the SAME NAME as a field below (e.g.
    ``def latency(masks, image, prior, *, params=None)``); :class:`RewardSuite` inspects each
    reward's signature once and passes exactly the fields it declares (or all of them to a reward
    with ``**kwargs``). Rewards that need nothing stay three-argument functions, and a field added
    here later breaks no existing reward.

    Parameters
    ----------
    params : AmgParams or None
        The AMG hyperparameters that produced the masks (the latency reward needs them).

    Examples
    --------
    >>> def r(masks, image, prior, *, params=None):
    ...     return 1.0
    >>> RewardContext(params=AmgParams()).kwargs_for(r)["params"].points_per_side
    32
    >>> RewardContext().kwargs_for(lambda m, i, p: 0.5)
    {}
    """

    params: AmgParams | None = None

    @staticmethod
    def accepted_fields(fn: Callable[..., Any]) -> tuple[str, ...]:
        """The context fields ``fn`` accepts as keywords (all of them for ``**kwargs``)."""
        names = tuple(f.name for f in fields(RewardContext))
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return ()
        ps = sig.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps.values()):
            return names
        ok = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return tuple(n for n in names if n in ps and ps[n].kind in ok)

    def kwargs_for(self, fn: Callable[..., Any]) -> dict[str, Any]:
        """Keyword arguments to pass to ``fn``."""
        return {n: getattr(self, n) for n in self.accepted_fields(fn)}


def register_reward(name: str, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator that registers a reward function under ``name``.

    Parameters
    ----------
    name : str
        Registry key (also the reward's name in a :class:`RewardSuite` and in env ``info``).
    overwrite : bool
        Replace an existing entry instead of raising ``ValueError``.

    Examples
    --------
    >>> @register_reward("always_half_doc", overwrite=True)
    ... def always_half(masks, image, prior):
    ...     return 0.5
    >>> get_reward("always_half_doc") is always_half
    True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_reward: name must be a non-empty string, got {name!r}")

    def deco(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"register_reward({name!r}): {fn!r} is not callable")
        old = _REGISTRY.get(name)
        if old is not None and old is not fn and not overwrite and not _same_definition(old, fn):
            raise ValueError(f"register_reward: a reward named {name!r} is already registered; pass overwrite=True to replace it")
        _REGISTRY[name] = fn
        return fn

    return deco


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """True for the same function defined again: a module reload, or the module imported under a
    second name (``rewards.size`` and ``samstar_env.rewards.size`` when doctests collect the folder)."""
    qa, qb = getattr(a, "__qualname__", None), getattr(b, "__qualname__", None)
    ma, mb = str(getattr(a, "__module__", "")), str(getattr(b, "__module__", ""))
    return qa is not None and qa == qb and ma.rsplit(".", 1)[-1] == mb.rsplit(".", 1)[-1]


def get_reward(name: str) -> Callable[..., float]:
    """The registered reward called ``name`` (``KeyError`` listing the known names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; registered rewards: {', '.join(list_rewards())}") from None


def list_rewards() -> list[str]:
    """Names of all registered rewards, sorted."""
    return sorted(_REGISTRY)
