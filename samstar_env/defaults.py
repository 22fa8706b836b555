"""Defaults shared by the env, the registered ids, ``samstar tune``, segment, stream and the benchmarks.

Layer 0: plain values, no imports, so that ``import samstar_env`` (which registers the env ids) can
read them without importing the env, torch or numpy. Each value is written here once; the modules that
document it as their own (``env.DEFAULT_BUDGET``, ``tune.DEFAULT_BUDGET``) alias it.
"""

from __future__ import annotations

#: The model used when none is given: the small SAM-architecture model trained in this repo on the
#: synthetic generators (no SAM weights can be downloaded here).
DEFAULT_MODEL = "samstar-tiny"

# Two budgets, on purpose different: they count different things.
#: Evaluations per episode of the env in ``budget`` mode, and the registered ids' ``max_episode_steps``:
#: one tuning session seen by an RL agent, which trains over many such episodes.
ENV_EPISODE_BUDGET = 50

#: Evaluations of one ``samstar tune`` run (and of ``reproduce``'s NSGA-II runs): a whole search, sized
#: so the README's first command finishes in a few minutes on 2 CPU cores with samstar-tiny (measured
#: in issue 7: NSGA-II with population 12 for 5 generations on one 256 x 256 perovskite image).
TUNE_BUDGET = 60

__all__ = ["DEFAULT_MODEL", "ENV_EPISODE_BUDGET", "TUNE_BUDGET"]
