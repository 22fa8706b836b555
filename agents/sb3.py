"""Reinforcement learning with stable-baselines3 on the scalarized SamStarEnv, behind ask/tell.

SB3 drives its own loop (``model.learn`` calls ``env.step``), while samstar's agents are asked. The
two are joined by a hand-off: SB3 runs in a worker thread on the real
``ScalarizeReward(SamStarEnv(task))``; when the env needs an evaluation, the action goes to
:meth:`SB3Agent.ask`, the run loop evaluates it like any agent's (journal, executor, callbacks,
replay), and :meth:`SB3Agent.tell` hands the Evaluation back, which the env then turns into its
observation and reward. Exactly one of the two threads runs at a time, so the run is deterministic.

A sweep of scalarization weights gives a front: the budget is split over ``n_weights`` weight vectors
(evenly spread on the simplex, corners first), one policy per weight. The contextual, amortized
policy (one step per episode, a new image each reset: image descriptors -> parameters) is trained
afterwards on the task's images when ``contextual_steps > 0`` and saved to ``save_dir``; its
evaluations are training data, not tuning evaluations, and do not count against the budget.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.agents.base import Agent
from samstar_env.agents.registry import register_agent
from samstar_env.errors import InputError
from samstar_env.type_aliases import ProblemLike

ALGOS = ("sac", "ppo")


class _Stop(Exception):
    """Raised inside the SB3 thread to end training when the run stops early."""


def simplex_weights(k: int, n: int) -> np.ndarray:
    """``n`` weight vectors on the k-simplex: equal weights first, then the corners, then mixtures."""
    out = [np.full(k, 1.0 / k)]
    out += [np.eye(k)[i] for i in range(k)]
    j = 0
    while len(out) < n:
        w = np.full(k, 0.5 / (k - 1) if k > 1 else 1.0)
        w[j % k] = 0.5
        out.append(w / w.sum())
        j += 1
    return np.stack(out[:n])


class _HandoffProblem:
    """Stands in for the env's TuningProblem: returns the Evaluation the run loop computed."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.pending: Any = None

    def evaluate(self, params: Any, *, images: Any = None) -> Any:
        ev, self.pending = self.pending, None
        if ev is None or ev.params != params:
            raise RuntimeError("SB3 hand-off: the env asked to evaluate parameters the run loop did not evaluate")
        return ev

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@register_agent("sb3")
class SB3Agent(Agent):
    """stable-baselines3 (SAC by default, or PPO) on ``ScalarizeReward(SamStarEnv)``.

    Parameters
    ----------
    algo : {"sac", "ppo"}
        SAC (default: off-policy, the more sample-efficient at the few hundred evaluations a tuning
        budget allows) or PPO (on-policy; each weight's steps are rounded down to whole rollouts).
    n_weights : int
        Scalarization weights in the sweep (default 1: the task preset's weighting via the suite's
        ``scalarize``; more gives a front of policies).
    episode_length : int
        Evaluations per budget-mode episode (a tuning session the policy learns to run).
    learning_starts : int, optional
        SAC's random warm-up steps per weight (default: a quarter of each weight's steps).
    contextual_steps : int
        Training steps of the contextual, amortized policy after tuning (0: skip).
    save_dir : str or Path, optional
        Where policies are saved (``policy_w{i}.zip``, ``contextual.zip``).
    algo_kwargs : dict, optional
        Extra keyword arguments for the SB3 algorithm.
    """

    def __init__(
        self,
        *,
        algo: str = "sac",
        n_weights: int = 1,
        episode_length: int = 8,
        learning_starts: int | None = None,
        contextual_steps: int = 0,
        save_dir: str | Path | None = None,
        algo_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if algo not in ALGOS:
            raise InputError(f"sb3 agent: algo must be one of {ALGOS}, got {algo!r}")
        super().__init__(
            algo=algo, n_weights=n_weights, episode_length=episode_length, learning_starts=learning_starts,
            contextual_steps=contextual_steps, save_dir=None if save_dir is None else str(save_dir), algo_kwargs=algo_kwargs,
        )
        self.algo = algo
        self.n_weights = int(n_weights)
        self.episode_length = int(episode_length)
        self.learning_starts = learning_starts
        self.contextual_steps = int(contextual_steps)
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.algo_kwargs = dict(algo_kwargs or {})
        self._thread: threading.Thread | None = None
        self._actions: queue.Queue[Any] = queue.Queue()
        self._evals: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._saved: dict[str, str] = {}

    def _setup(self, problem: ProblemLike) -> None:
        self.close()
        task = getattr(problem, "task", None)
        if task is None:
            raise TypeError("the sb3 agent needs a TuningProblem (it builds a SamStarEnv from problem.task)")
        self._task, self._problem = task, problem
        self._actions, self._evals = queue.Queue(), queue.Queue()
        self._error, self._saved = None, {}
        self._thread = threading.Thread(target=self._train, name="samstar-sb3", daemon=True)
        self._thread.start()

    # -- the SB3 side ------------------------------------------------------------------------
    def _make_model(self, env: Any, steps: int, seed: int) -> Any:
        import stable_baselines3 as sb3
        from stable_baselines3.common.logger import Logger

        kw = dict(self.algo_kwargs)
        kw.setdefault("verbose", 0)
        if self.algo == "sac":
            kw.setdefault("learning_starts", self.learning_starts if self.learning_starts is not None else max(1, steps // 4))
            kw.setdefault("batch_size", 64)
            model = sb3.SAC("MlpPolicy", env, seed=seed, device="cpu", **kw)
        else:
            kw.setdefault("n_steps", max(2, min(64, steps)))
            kw.setdefault("batch_size", kw["n_steps"])
            model = sb3.PPO("MlpPolicy", env, seed=seed, device="cpu", **kw)
        if kw.get("tensorboard_log") is None and not kw["verbose"]:
            # Without a logger of its own, every learn() makes an empty $TMPDIR/SB3-<date> folder
            # (SB3's configure() with no output formats); an in-memory logger writes nothing. A user
            # who asks for tensorboard_log or verbose output gets SB3's own logger.
            model.set_logger(Logger(folder=None, output_formats=[]))
        return model

    def _env(self, weights: Any, *, mode: str = "budget", handoff: bool = True) -> Any:
        from samstar_env.env import SamStarEnv
        from samstar_env.wrappers import ScalarizeReward

        inner = SamStarEnv(self._task, mode=mode, budget=self.episode_length, engine=getattr(self._problem, "engine", None))
        if handoff:
            proxy = _HandoffProblem(inner.problem)
            inner.problem = proxy
            agent = self
            orig_step = inner.step

            def step(action: Any) -> Any:
                self._actions.put(np.clip(np.asarray(action, np.float64), -1.0, 1.0))
                ev = agent._evals.get()
                if ev is None:
                    raise _Stop()
                proxy.pending = ev
                return orig_step(action)

            inner.step = step  # type: ignore[method-assign]
        return ScalarizeReward(inner, weights=weights)

    def _train(self) -> None:
        import torch

        try:
            torch.manual_seed(self.seed)
            k = len(self.reward_names)
            weights = [None] if self.n_weights <= 1 else list(simplex_weights(k, self.n_weights))
            per = [self.budget // len(weights) + (1 if i < self.budget % len(weights) else 0) for i in range(len(weights))]
            for i, (w, steps) in enumerate(zip(weights, per, strict=True)):
                if steps < 1:
                    continue
                model = self._make_model(self._env(w), steps, self.seed + i)
                if self.algo == "ppo":
                    steps = (steps // model.n_steps) * model.n_steps  # whole rollouts only
                if steps:
                    model.learn(total_timesteps=steps)
                if self.save_dir is not None:
                    self.save_dir.mkdir(parents=True, exist_ok=True)
                    path = self.save_dir / f"policy_w{i}.zip"
                    model.save(path)
                    self._saved[f"policy_w{i}"] = str(path)
            if self.contextual_steps > 0:
                # Amortized policy: evaluated directly on single images (training data, not budget).
                env = self._env(None, mode="contextual", handoff=False)
                model = self._make_model(env, self.contextual_steps, self.seed + 1000)
                model.learn(total_timesteps=self.contextual_steps)
                if self.save_dir is not None:
                    self.save_dir.mkdir(parents=True, exist_ok=True)
                    path = self.save_dir / "contextual.zip"
                    model.save(path)
                    self._saved["contextual"] = str(path)
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by ask()
            self._error = exc
        finally:
            self._actions.put(None)  # "done": ask() returns no action

    # -- the ask/tell side -------------------------------------------------------------------
    def ask(self, n: int) -> np.ndarray:
        a = self._actions.get()
        if a is None:
            self._actions.put(None)  # keep answering "done"
            if self._error is not None:
                raise RuntimeError(f"sb3 agent: training failed: {self._error!r}") from self._error
            return np.zeros((0, self.dim))
        return a.reshape(1, -1)

    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        if evaluations is None:
            raise ValueError("the sb3 agent needs the evaluations in tell() (its env step is built from them)")
        for ev in evaluations:
            self._evals.put(ev)

    def close(self) -> None:
        t = self._thread
        if t is not None and t.is_alive():
            # Budget spent: let learn() finish its update and saving, unless it waits for a step.
            self._evals.put(None)
            t.join()
        self._thread = None

    def result_metadata(self) -> dict[str, Any]:
        return {"saved_policies": dict(self._saved)}
