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

#: The env's mask budget per image (``SamStarEnv(max_masks=)``): a configuration that keeps more masks
#: is not scored (reward 0 on that image). Scoring costs about 0.5-1.5 ms per mask on 2 CPU cores, and
#: samstar-tiny at points_per_side 64 with crops and loose thresholds keeps up to 13,000 masks on a
#: 512² image (2-26 s to score); at 1,000 every step of the registered ids stays under a second
#: (``benchmarks/scripts/bench_env.py``), well above any plausible particle count of their images.
ENV_MAX_MASKS = 1000

__all__ = ["DEFAULT_MODEL", "ENV_EPISODE_BUDGET", "ENV_MAX_MASKS", "TUNE_BUDGET"]
