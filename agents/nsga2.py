"""NSGA-II (pymoo) through ask/tell: the SAM* reference tuner.

pymoo runs its own generational loop, but here only its ask/tell interface is used: pymoo proposes a
population, samstar evaluates it through the problem (and any executor), and pymoo selects. pymoo
sees a continuous box problem ``[-1, 1]^d``; the integer and grid hyperparameters (points_per_side,
crop layers, ...) are handled by :class:`~samstar_env.params.ParamSpace` when it decodes each action,
so no mixed-variable operators are needed and every agent searches the same space.

pymoo minimizes. This module is the ONLY place in samstar where rewards change sign: see
:meth:`NSGA2Agent.tell`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM

from samstar_env.agents.base import Agent
from samstar_env.agents.registry import register_agent
from samstar_env.type_aliases import ProblemLike

# The SAM* group's NSGA-II runs (LoG*, Digital Discovery 2024) use a population of 100; pymoo's NSGA-II
# defaults for the operators (SBX crossover p=0.9, eta=15; polynomial mutation eta=20, p=1/d) are
# Deb's originals and are kept.
DEFAULT_POP_SIZE = 100


@register_agent("nsga2")
class NSGA2Agent(Agent):
    """pymoo's NSGA-II over ``[-1, 1]^d``.

    Parameters
    ----------
    pop_size : int
        Population size (default 100, the SAM* group's setting). The first ``pop_size`` evaluations
        are the random initial population.
    n_offsprings : int, optional
        Offspring per generation (default: ``pop_size``, as in pymoo).
    n_gen : int, optional
        Stop after this many generations even if budget remains (default: run until the budget is
        spent; the budget, in evaluations, is the primary limit so agents compare fairly).
    crossover_eta, crossover_prob, mutation_eta : float
        SBX and polynomial-mutation settings (pymoo's defaults).
    eliminate_duplicates : bool
        pymoo's duplicate elimination in action space (default True).

    Notes
    -----
    With a budget that is not ``pop_size + g * n_offsprings``, the last generation is evaluated in
    part and never selected from; the run's front still includes those evaluations.
    """

    def __init__(
        self,
        *,
        pop_size: int = DEFAULT_POP_SIZE,
        n_offsprings: int | None = None,
        n_gen: int | None = None,
        crossover_eta: float = 15.0,
        crossover_prob: float = 0.9,
        mutation_eta: float = 20.0,
        eliminate_duplicates: bool = True,
    ) -> None:
        if pop_size < 2:
            raise ValueError(f"pop_size must be >= 2, got {pop_size}")
        super().__init__(
            pop_size=pop_size, n_offsprings=n_offsprings, n_gen=n_gen, crossover_eta=crossover_eta,
            crossover_prob=crossover_prob, mutation_eta=mutation_eta, eliminate_duplicates=eliminate_duplicates,
        )
        self.pop_size = int(pop_size)
        self.n_offsprings = int(n_offsprings) if n_offsprings else self.pop_size
        self.n_gen = n_gen
        self._kw = dict(crossover_eta=crossover_eta, crossover_prob=crossover_prob, mutation_eta=mutation_eta)
        self._eliminate_duplicates = bool(eliminate_duplicates)
        self._algorithm: NSGA2 | None = None
        self._pop: Population | None = None
        self._F: np.ndarray | None = None
        self._n_asked = 0
        self._n_told = 0
        self._gen = 0

    @property
    def batch_size(self) -> int:
        # The rest of the current generation (a whole population when a new one starts).
        if self._pop is not None and self._n_asked < len(self._pop):
            return len(self._pop) - self._n_asked
        return self.pop_size if self._gen == 0 else self.n_offsprings

    def _setup(self, problem: ProblemLike) -> None:
        d, k = self.dim, self.n_objectives
        self._algorithm = NSGA2(
            pop_size=self.pop_size,
            n_offsprings=self.n_offsprings,
            crossover=SBX(prob=self._kw["crossover_prob"], eta=self._kw["crossover_eta"]),
            mutation=PM(eta=self._kw["mutation_eta"]),
            eliminate_duplicates=self._eliminate_duplicates,
        )
        box = Problem(n_var=d, n_obj=k, xl=-np.ones(d), xu=np.ones(d))
        # pymoo 0.6.2 keeps its own np.random.Generator seeded here: no global random state.
        self._algorithm.setup(box, termination=NoTermination(), seed=self.seed, verbose=False)
        self._pop, self._F = None, None
        self._n_asked = self._n_told = self._gen = 0

    def ask(self, n: int) -> np.ndarray:
        assert self._algorithm is not None
        if self._pop is None or self._n_told >= len(self._pop):
            if self.n_gen is not None and self._gen >= self.n_gen:
                return np.zeros((0, self.dim))
            self._pop = self._algorithm.ask()
            self._F = np.zeros((len(self._pop), self.n_objectives))
            self._n_asked = self._n_told = 0
            self._gen += 1
        if self._n_asked > self._n_told:
            raise RuntimeError("NSGA2Agent.ask: tell the previous actions first")
        x = np.asarray(self._pop.get("X"), np.float64)[self._n_asked : self._n_asked + n]
        self._n_asked += len(x)
        return x

    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        assert self._algorithm is not None and self._pop is not None and self._F is not None
        r = np.asarray(reward_vectors, np.float64)
        m = len(r)
        if self._n_told + m > self._n_asked:
            raise RuntimeError("NSGA2Agent.tell: more rewards than asked actions")
        # THE sign flip: rewards are maximized everywhere in samstar; pymoo minimizes F.
        self._F[self._n_told : self._n_told + m] = -r
        self._n_told += m
        if self._n_told == len(self._pop):
            self._pop.set("F", self._F)
            self._algorithm.tell(infills=self._pop)
