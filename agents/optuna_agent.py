"""Bayesian optimization with Optuna: multi-objective TPE by default, a Gaussian process optionally.

Each action coordinate is an Optuna ``FloatDistribution(-1, 1)`` named after its AMG parameter, so
Optuna searches exactly the space every other agent searches and ParamSpace stays the only decoder.
Rewards are given to Optuna as they are, with every direction ``"maximize"`` (no sign flip).

Determinism and resuming. Optuna's samplers keep a random state that advances with every sample, so
a study resumed in a new process would not continue the same random stream. This agent therefore
builds a fresh sampler before each ``ask``, seeded from ``(seed, number of completed trials)``: the
proposal is then a function of the seed and the completed history only, and a run resumed from its
Optuna journal (``storage=...``; ``JournalStorage(JournalFileBackend)``) continues exactly as an
uninterrupted run would. A trial left RUNNING by a killed process is marked FAIL and proposed again
(it was never completed, so nothing is lost and nothing is counted twice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.agents.base import Agent
from samstar_env.agents.registry import register_agent
from samstar_env.agents.result import Trial
from samstar_env.errors import InputError, MissingExtraError
from samstar_env.params import AmgParams
from samstar_env.type_aliases import ProblemLike

SAMPLERS = ("tpe", "gp", "random")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("the optuna agent needs Optuna: pip install 'samstar[bayes]'") from exc
    return optuna


def _derived_seed(seed: int, n: int) -> int:
    """A 31-bit seed for the n-th proposal (independent streams per n, stable across platforms)."""
    return int.from_bytes(hashlib.sha256(f"samstar-optuna:{seed}:{n}".encode()).digest()[:4], "little") >> 1


@register_agent("optuna")
class OptunaAgent(Agent):
    """Optuna ask/tell over ``[-1, 1]^d``.

    Parameters
    ----------
    sampler : {"tpe", "gp", "random"}
        Multi-objective TPE (default; Optuna's ``TPESampler``), Optuna's ``GPSampler`` (Gaussian
        process, better at small budgets, slower per proposal), or random.
    n_startup_trials : int
        Random proposals before the model is used (Optuna's TPE default 10).
    storage : str or Path, optional
        A journal file (``JournalStorage(JournalFileBackend(path))``); the run resumes from it.
        Default: in memory.
    study_name : str, optional
        Default ``samstar-<task>-seed<seed>``.
    """

    def __init__(
        self,
        *,
        sampler: str = "tpe",
        n_startup_trials: int = 10,
        storage: str | Path | None = None,
        study_name: str | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise InputError(f"optuna agent: sampler must be one of {SAMPLERS}, got {sampler!r}")
        _optuna()
        super().__init__(sampler=sampler, n_startup_trials=n_startup_trials, storage=None if storage is None else str(storage), study_name=study_name)
        self.sampler_name = sampler
        self.n_startup_trials = int(n_startup_trials)
        self.storage_path = None if storage is None else Path(storage)
        self.study_name = study_name
        self.study: Any = None
        self._pending: list[Any] = []
        self._restored: list[Trial] = []

    def _make_sampler(self, seed: int) -> Any:
        optuna = _optuna()
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        if self.sampler_name == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return optuna.samplers.RandomSampler(seed=seed)

    def _distributions(self) -> dict[str, Any]:
        optuna = _optuna()
        assert self.space is not None
        return {name: optuna.distributions.FloatDistribution(-1.0, 1.0) for name in self.space.names}

    def _setup(self, problem: ProblemLike) -> None:
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        task = getattr(getattr(problem, "task", None), "name", "problem")
        name = self.study_name or f"samstar-{task}-seed{self.seed}"
        if self.storage_path is None:
            storage: Any = optuna.storages.InMemoryStorage()
        else:
            self.storage_path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(self.storage_path))
            storage = optuna.storages.JournalStorage(backend)
        self.study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=["maximize"] * self.n_objectives,
            sampler=self._make_sampler(self.seed),
            load_if_exists=True,
        )
        meta = {"samstar_reward_names": list(self.reward_names), "samstar_space": self.space.describe() if self.space else []}
        if not self.study.user_attrs:
            for k, v in meta.items():
                self.study.set_user_attr(k, v)
        elif any(self.study.user_attrs.get(k) != v for k, v in meta.items()):
            raise InputError(
                f"optuna storage {self.storage_path}: study {name!r} was made for other rewards or another "
                "search space; use another study_name or storage"
            )
        self._pending = []
        self._restored = []
        states = optuna.trial.TrialState
        for t in self.study.get_trials(deepcopy=False):
            if t.state == states.COMPLETE and "samstar_trial" in t.user_attrs:
                d = dict(t.user_attrs["samstar_trial"])
                d["index"] = len(self._restored)
                self._restored.append(Trial.from_dict(d))
            elif t.state in (states.RUNNING, states.WAITING):
                # Orphaned by a killed process: fail it; the same proposal is made again below.
                self.study.tell(t.number, state=states.FAIL)

    def restored(self) -> list[Trial]:
        return list(self._restored)

    def _n_complete(self) -> int:
        states = _optuna().trial.TrialState
        return len(self.study.get_trials(deepcopy=False, states=(states.COMPLETE,)))

    def ask(self, n: int) -> np.ndarray:
        dists = self._distributions()
        names = list(dists)
        rows = []
        for _ in range(n):
            # Fresh sampler per proposal: the proposal depends on (seed, completed history) only.
            self.study.sampler = self._make_sampler(_derived_seed(self.seed, self._n_complete() + len(self._pending)))
            trial = self.study.ask(dists)
            self._pending.append(trial)
            rows.append([trial.params[k] for k in names])
        return np.asarray(rows, np.float64).reshape(len(rows), self.dim)

    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        if len(actions) > len(self._pending):
            raise RuntimeError("OptunaAgent.tell: more rewards than asked trials")
        assert self.space is not None
        for i, (a, r) in enumerate(zip(actions, reward_vectors, strict=True)):
            trial = self._pending.pop(0)
            ev = None if evaluations is None else evaluations[i]
            params: AmgParams = ev.params if ev is not None else self.space.decode(a)
            record = Trial(
                index=-1, action=a, params=params, rewards=r,
                cost_s=float(getattr(ev, "cost_s", 0.0)), gt=getattr(ev, "gt", None), n_masks=tuple(getattr(ev, "n_masks", ())),
            )
            # The full record rides along in the journal so a resumed run rebuilds its TuningResult.
            trial.set_user_attr("samstar_trial", record.to_dict())
            self.study.tell(trial, [float(v) for v in r])
