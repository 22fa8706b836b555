"""Tuners behind one ask/tell protocol (installed as ``samstar_env.agents``).

Every agent proposes actions in ``[-1, 1]^d``, decoded by the problem's
:class:`~samstar_env.params.ParamSpace`, and maximizes a vector of rewards. Built-ins: ``nsga2``
(pymoo; the SAM* baseline), ``random``, ``grid`` (micro-sam style), ``optuna`` (multi-objective TPE
or GP; needs the ``bayes`` extra) and ``sb3`` (stable-baselines3 PPO/SAC on the scalarized env).

Examples
--------
>>> from samstar_env.agents import make_agent
>>> agent = make_agent("random", batch_size=4)
>>> agent.name
'random'
"""

from samstar_env.agents.base import Agent, Callback, RunState, serial_evaluator
from samstar_env.agents.registry import agent_class, available_agents, make_agent, register_agent
from samstar_env.agents.result import PRIORITIES, OperatingPoint, Trial, TuningResult
from samstar_env.errors import ResumeMismatchError

__all__ = [
    "PRIORITIES",
    "Agent",
    "Callback",
    "OperatingPoint",
    "ResumeMismatchError",
    "RunState",
    "Trial",
    "TuningResult",
    "agent_class",
    "available_agents",
    "make_agent",
    "register_agent",
    "serial_evaluator",
]
