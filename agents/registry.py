"""Agents by name: ``make_agent("nsga2", pop_size=50)``; a new tuner joins with one decorator.

Examples
--------
Skipped when the docs are tested: registering would add ``my-tuner`` to the process-wide
registry that the tests list (``tests/agents/`` registers and removes its own).

>>> from samstar_env.agents import Agent, register_agent
>>> @register_agent("my-tuner")           # doctest: +SKIP
... class MyTuner(Agent): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from samstar_env.agents.base import Agent
from samstar_env.errors import InputError

A = TypeVar("A", bound=type[Agent])

_REGISTRY: dict[str, type[Agent]] = {}

# Built-in agents, imported on first use so that `import samstar_env.agents` does not pull in
# optuna or stable-baselines3.
_BUILTIN: dict[str, str] = {
    "nsga2": "samstar_env.agents.nsga2",
    "random": "samstar_env.agents.random",
    "grid": "samstar_env.agents.grid",
    "optuna": "samstar_env.agents.optuna_agent",
    "sb3": "samstar_env.agents.sb3",
}


def register_agent(name: str) -> Callable[[A], A]:
    """Class decorator: make ``cls`` available as ``make_agent(name)`` and set ``cls.name``."""

    def deco(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise TypeError(f"register_agent({name!r}): {cls!r} is not an Agent subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"agent name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_agents() -> list[str]:
    """Names of all agents (built-in and registered)."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def agent_class(name: str) -> type[Agent]:
    """The class registered under ``name`` (imports built-ins lazily)."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise InputError(f"unknown agent {name!r}; expected one of {available_agents()}")
    return _REGISTRY[name]


def make_agent(name: str, **kwargs: Any) -> Agent:
    """Build the agent registered under ``name`` with keyword options ``kwargs``."""
    cls = agent_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TypeError(f"agent {name!r}: {exc}") from exc
