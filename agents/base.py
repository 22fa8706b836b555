"""The one protocol every tuner follows: ``ask(n)`` actions, ``tell`` their rewards, ``run`` a budget.

Agents propose actions in ``[-1, 1]^d`` and never see parameters: the problem's search space
(:class:`~samstar_env.params.ParamSpace`, the only decoder) turns actions into ``AmgParams``. Rewards
are higher-is-better vectors. :meth:`Agent.run` implements the ask -> evaluate -> tell loop once for
every agent, with three hooks:

- ``evaluator(problem, params_list) -> iterable of Evaluation`` (in order), so that a population can
  be evaluated by an executor (a process pool, a Dask client) instead of one after another;
- ``callbacks``, called after every evaluation (progress bars, journals, TensorBoard);
- ``replay``: trials of an interrupted run (from a journal). They are fed to ``tell`` instead of being
  evaluated again; since agents are deterministic, re-asking yields the journaled actions, and any
  difference is an error (the agent, its options, the seed or the code changed).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from samstar_env.agents.result import Trial, TuningResult
from samstar_env.errors import InputError, ResumeMismatchError
from samstar_env.params import AmgParams, ParamSpace
from samstar_env.type_aliases import ProblemLike

Evaluator = Callable[[ProblemLike, Sequence[AmgParams]], Iterable[Any]]


@dataclass(frozen=True)
class RunState:
    """What a callback sees after each evaluation.

    Parameters
    ----------
    trial : Trial
        The evaluation that just finished.
    trials : tuple of Trial
        All evaluations so far (``trial`` last).
    budget : int
        The run's evaluation budget.
    replayed : bool
        True when ``trial`` came from ``replay`` (or the agent's own storage) and was not evaluated
        now: a journal must not write it again.
    reward_names : tuple of str
        Objective names.
    """

    trial: Trial
    trials: tuple[Trial, ...]
    budget: int
    replayed: bool
    reward_names: tuple[str, ...]


Callback = Callable[[RunState], None]


def serial_evaluator(problem: ProblemLike, params_list: Sequence[AmgParams]) -> Iterator[Any]:
    """Evaluate one after another, lazily (so callbacks run as soon as each evaluation ends)."""
    for p in params_list:
        yield problem.evaluate(p)


class Agent(ABC):
    """Base class of samstar tuners.

    Subclasses implement :meth:`_setup`, :meth:`ask` and :meth:`tell`; they draw all randomness from
    the seed given to :meth:`setup`, so the same seed gives the same actions (and, on a deterministic
    problem, the same :class:`TuningResult`). An agent instance may be run several times; each
    :meth:`run` starts afresh.
    """

    #: Registered name (set by :func:`~samstar_env.agents.registry.register_agent`).
    name: ClassVar[str] = "agent"

    def __init__(self, **options: Any) -> None:
        # Kept for TuningResult.agent_options (reproduction); subclasses pass their keyword options.
        self._options = dict(options)
        self.space: ParamSpace | None = None
        self.reward_names: tuple[str, ...] = ()
        self.seed: int = 0
        self.budget: int = 0

    # -- protocol ----------------------------------------------------------------------------
    @property
    def options(self) -> Mapping[str, Any]:
        """Constructor options (as given)."""
        return dict(self._options)

    @property
    def dim(self) -> int:
        """Action dimension."""
        if self.space is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() (or run()) first")
        return self.space.dim

    @property
    def n_objectives(self) -> int:
        """Number of rewards."""
        return len(self.reward_names)

    @property
    def batch_size(self) -> int:
        """How many actions :meth:`run` asks for at once (a population for evolutionary agents)."""
        return 1

    def setup(self, problem: ProblemLike, *, budget: int, seed: int) -> None:
        """Prepare a fresh run on ``problem`` (resets all state)."""
        self.space = problem.search_space
        self.reward_names = tuple(problem.reward_names)
        self.seed = int(seed)
        self.budget = int(budget)
        self._setup(problem)

    def _setup(self, problem: ProblemLike) -> None:  # noqa: B027 - optional hook
        """Subclass hook called by :meth:`setup`."""

    @abstractmethod
    def ask(self, n: int) -> np.ndarray:
        """Up to ``n`` actions, shape (m, d) with m <= n, values in [-1, 1]; m = 0 means "done"."""

    @abstractmethod
    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        """The rewards (m, k), higher is better, of the last asked actions (m, d), in ask order.

        ``evaluations`` are the full :class:`~samstar_env.problem.Evaluation` objects when the agent
        wants more than rewards (the RL agent rebuilds its environment step from them).
        """

    def restored(self) -> list[Trial]:
        """Trials the agent already knows from its own storage (e.g. an Optuna journal); default none."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, files) at the end of :meth:`run`."""

    def result_metadata(self) -> dict[str, Any]:
        """Extra metadata for the result (e.g. saved policy paths)."""
        return {}

    # -- the loop ----------------------------------------------------------------------------
    def run(
        self,
        problem: ProblemLike,
        *,
        budget: int,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        evaluator: Evaluator | None = None,
        replay: Sequence[Trial] = (),
    ) -> TuningResult:
        """Tune ``problem`` with at most ``budget`` evaluations.

        Parameters
        ----------
        problem : ProblemLike
            Usually a :class:`~samstar_env.problem.TuningProblem`.
        budget : int
            Number of evaluations (the unit every benchmark compares agents by).
        seed : int
            Seeds every random choice of the agent.
        callbacks : sequence of callable
            Each is called with a :class:`RunState` after every evaluation, in evaluation order.
        evaluator : callable, optional
            ``evaluator(problem, params_list)`` yielding one Evaluation per params, in order
            (default :func:`serial_evaluator`).
        replay : sequence of Trial
            Journaled trials of an interrupted run with the same agent, options and seed.

        Returns
        -------
        TuningResult
        """
        if int(budget) < 1:
            raise InputError(f"budget must be a positive number of evaluations, got {budget}")
        budget = int(budget)
        evaluator = evaluator or serial_evaluator
        t_start = time.perf_counter()
        self.setup(problem, budget=budget, seed=seed)
        space = self.space
        assert space is not None
        names = self.reward_names
        trials: list[Trial] = []
        replay = list(replay)
        if len(replay) > budget:
            raise InputError(f"the journal holds {len(replay)} evaluations, more than the budget {budget}")

        def emit(trial: Trial, replayed: bool) -> None:
            trials.append(trial)
            state = RunState(trial=trial, trials=tuple(trials), budget=budget, replayed=replayed, reward_names=names)
            for cb in callbacks:
                cb(state)

        try:
            for t in self.restored():
                emit(t, True)
            if replay and trials:
                raise ValueError("an agent that restores itself from its own storage cannot also replay a journal")
            while len(trials) < budget:
                k = min(max(int(self.batch_size), 1), budget - len(trials))
                actions = self._check_actions(self.ask(k), k)
                if len(actions) == 0:
                    break  # the agent is done (e.g. a grid smaller than the budget)
                params = [space.decode(a) for a in actions]
                n_old = len(trials)
                n_rep = min(len(actions), max(len(replay) - n_old, 0))
                evals: list[Any] = []
                for j in range(n_rep):
                    old = replay[n_old + j]
                    self._check_replay(old, n_old + j, actions[j], params[j])
                    evals.append(_replayed_evaluation(old, names))
                    emit(Trial(index=n_old + j, action=actions[j], params=params[j], rewards=old.rewards, cost_s=old.cost_s, gt=old.gt, n_masks=old.n_masks), True)
                for j, ev in enumerate(evaluator(problem, params[n_rep:]), start=n_rep):
                    if tuple(ev.reward_names) != names:
                        raise ValueError(f"evaluation returned rewards {tuple(ev.reward_names)}; the problem declares {names}")
                    evals.append(ev)
                    emit(Trial.from_evaluation(n_old + j, actions[j], ev), False)
                if len(evals) != len(actions):
                    raise RuntimeError(f"the evaluator returned {len(evals)} evaluations for {len(actions)} parameter sets")
                rewards = np.stack([np.asarray(e.rewards, np.float32) for e in evals])
                self.tell(actions, rewards, evaluations=evals)
        finally:
            self.close()
        task = getattr(getattr(problem, "task", None), "name", None)
        meta = {"wall_s": time.perf_counter() - t_start, "n_replayed": min(len(replay), len(trials)), **self.result_metadata()}
        return TuningResult(
            agent=self.name,
            seed=self.seed,
            reward_names=names,
            trials=tuple(trials),
            task=task,
            budget=budget,
            agent_options=self.options,
            space=tuple(space.describe()),
            metadata=meta,
        )

    # -- checks ------------------------------------------------------------------------------
    def _check_actions(self, actions: Any, k: int) -> np.ndarray:
        a = np.asarray(actions, np.float64)
        if a.size == 0:
            return np.zeros((0, self.dim))
        if a.ndim != 2 or a.shape[1] != self.dim or a.shape[0] > k:
            raise RuntimeError(f"{type(self).__name__}.ask({k}) returned shape {a.shape}; expected (m <= {k}, {self.dim})")
        if not np.isfinite(a).all() or np.abs(a).max() > 1.0 + 1e-9:
            raise RuntimeError(f"{type(self).__name__}.ask returned actions outside [-1, 1] or not finite")
        return np.clip(a, -1.0, 1.0)

    def _check_replay(self, old: Trial, index: int, action: np.ndarray, params: AmgParams) -> None:
        # A tolerance of 1e-9 absorbs JSON/float32 round-off only: any real change of the proposal
        # moves an action by far more, and decoded parameters must match exactly.
        if old.action.shape != action.shape or not np.allclose(old.action, action, rtol=0.0, atol=1e-9) or old.params != params:
            raise ResumeMismatchError(
                f"cannot resume: evaluation {index} in the journal has action {np.round(old.action, 6).tolist()}, "
                f"but the agent now asks {np.round(action, 6).tolist()}. The agent, its options, the seed, the "
                "search space or the code changed since the journal was written; use a new output folder "
                "or run without --resume."
            )


def _replayed_evaluation(trial: Trial, names: tuple[str, ...]) -> Any:
    """A journaled trial as an :class:`~samstar_env.problem.Evaluation` for ``tell`` (not re-evaluated)."""
    from samstar_env.problem import Evaluation

    return Evaluation(
        params=trial.params, rewards=trial.rewards, reward_names=names, cost_s=trial.cost_s,
        n_masks=trial.n_masks, gt=trial.gt, details={"replayed": True},
    )
