"""``samstar train-policy``: train an amortized policy (image -> AMG parameters) with stable-baselines3.

The policy is trained in the environment's contextual mode: each episode draws one image of the
pool's training images (deterministically from the seed), the policy proposes parameters from the
image's observation, and the scalarized physics rewards of that one evaluation are its return. The
pool is warmed first (:func:`samstar_env.cache.warm`, which prints its cost), so every step is a
replay of cached decodes.

Output folder::

    policy.zip, policy.json     the policy and what it was trained for (samstar_env.policy.policy_file)
    held_out.json               per held-out image: proposed parameters, rewards, scalar, F1@0.5
    train_config.json           the run's configuration (``--resume`` refuses another one)
    checkpoints/                policy_<steps>_steps.zip (+ SAC's replay buffer), for --resume
    tb/                         TensorBoard: rollout/ep_rew_mean, held_out/scalar, held_out/f1 ...

``--resume`` continues from the latest checkpoint: the network, the optimizer state, the step count
and SAC's replay buffer. It is not bit-identical to an uninterrupted run (stable-baselines3 does
not save the environments' random state or PPO's half-filled rollout); a run without interruption
is deterministic for a seed and a number of workers.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.defaults import ENV_MAX_MASKS
from samstar_env.errors import InputError, ResumeMismatchError
from samstar_env.jsonutil import to_jsonable
from samstar_env.policy.policy_file import (
    ALGOS,
    OBS_MODES,
    AmortizedPolicy,
    PolicyInfo,
    algo_class,
    space_to_dict,
)
from samstar_env.policy.pool import POOL_TEST, POOL_TRAIN, policy_pool
from samstar_env.task import Task
from samstar_env.task_file import is_task_file

_CKPT = re.compile(r"policy_(\d+)_steps\.zip$")


@dataclass(frozen=True)
class PolicyTrainConfig:
    """One ``samstar train-policy`` run.

    Parameters
    ----------
    task : str
        ``perovskite``, ``ito``, ``auco`` or a task file (its pool: :func:`~samstar_env.policy.pool.policy_pool`).
    out : str
        Output folder.
    algo : {"ppo", "sac"}
        stable-baselines3 algorithm.
    steps : int
        Environment steps (one evaluation each).
    weights : tuple of float, optional
        Scalarization weights, one per reward (default: the suite's own weighting).
    obs_mode : {"features", "thumbnail"}
        What the policy sees: the 13 image descriptors (an MLP), or the descriptors and a
        ``thumbnail_size``² uint8 thumbnail (stable-baselines3's CNN + MLP, ``MultiInputPolicy``).
    n_train, n_test, size, model
        The pool (see :func:`~samstar_env.policy.pool.policy_pool`).
    seed : int
        Seeds the networks, the image draws and the actions' exploration.
    workers : int
        Environment copies, each in its own process when more than one (``SubprocVecEnv``).
    checkpoint_every : int
        Steps between checkpoints (and held-out evaluations in TensorBoard).
    max_masks : int or None
        The env's mask budget (:class:`~samstar_env.env.SamStarEnv`).
    algo_kwargs : mapping
        Extra keyword arguments of the algorithm (override samstar's defaults for it).
    """

    task: str
    out: str
    algo: str = "ppo"
    steps: int = 20_000
    weights: tuple[float, ...] | None = None
    obs_mode: str = "features"
    thumbnail_size: int = 64
    n_train: int = POOL_TRAIN
    n_test: int = POOL_TEST
    size: int = 512
    model: str | None = None
    seed: int = 0
    workers: int = 1
    checkpoint_every: int = 2048
    max_masks: int | None = ENV_MAX_MASKS
    algo_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise InputError(f"train-policy: --algo must be one of {ALGOS}, got {self.algo!r}")
        if self.obs_mode not in OBS_MODES:
            raise InputError(f"train-policy: --obs must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.steps < 1:
            raise InputError(f"train-policy: --steps must be >= 1, got {self.steps}")
        if self.workers < 1:
            raise InputError(f"train-policy: --workers must be >= 1, got {self.workers}")
        if self.checkpoint_every < 1:
            raise InputError(f"train-policy: --checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if self.obs_mode == "thumbnail" and self.thumbnail_size < 36:
            raise InputError(f"train-policy: --thumbnail-size must be >= 36 for the CNN, got {self.thumbnail_size}")
        if self.weights is not None and (any(w < 0 for w in self.weights) or sum(self.weights) <= 0):
            raise InputError(f"train-policy: --weights must be non-negative and not all zero, got {list(self.weights)}")

    def identity(self) -> dict[str, Any]:
        """What ``--resume`` compares: everything but the step count and the checkpoint spacing."""
        d = to_jsonable(asdict(self))
        for k in ("steps", "checkpoint_every", "out"):
            d.pop(k)
        return dict(d)


@dataclass(frozen=True)
class HeldOutImage:
    """The trained policy on one held-out image."""

    name: str
    params: dict[str, Any]
    rewards: dict[str, float]
    scalar: float
    n_masks: int
    f1: float | None
    seconds: float


@dataclass(frozen=True)
class PolicyReport:
    """What a training run produced."""

    out: Path
    steps: int
    seconds: float
    warm_seconds: float
    held_out: tuple[HeldOutImage, ...]

    @property
    def held_out_scalar(self) -> float:
        """Mean scalarized reward of the policy on the held-out images (NaN without any)."""
        return float(np.mean([h.scalar for h in self.held_out])) if self.held_out else float("nan")


def scalarize(suite: Any, vector: Sequence[float] | np.ndarray, weights: Sequence[float] | None) -> float:
    """The run's scalar of a reward vector: the suite's weighting, or ``weights`` normalized to sum 1."""
    v = np.asarray(vector, dtype=np.float64)
    if weights is None:
        return float(suite.scalarize(v))
    w = np.asarray(weights, dtype=np.float64)
    return float(w @ v / w.sum())


def evaluate_policy(policy: AmortizedPolicy, pool: Task, *, weights: Sequence[float] | None, engine: Any = None,
                    max_masks: int | None = ENV_MAX_MASKS, images: Sequence[Any] | None = None) -> tuple[HeldOutImage, ...]:
    """The policy on each held-out image of ``pool`` (or ``images``): its parameters, rewards and F1@0.5."""
    from samstar_env.problem import TuningProblem

    problem = TuningProblem(pool, gt_metrics=True, engine=engine, max_masks=max_masks)
    out = []
    for im in (pool.test_images if images is None else images):
        prop = policy.propose(im)
        ev = problem.evaluate(prop.params, images=(im,))
        gt = dict(ev.gt) if ev.gt is not None else {}
        f1 = gt.get("f1")
        out.append(HeldOutImage(
            name=im.name, params=prop.params.to_dict(),
            rewards={n: float(v) for n, v in zip(pool.rewards.names, ev.rewards, strict=True)},
            scalar=scalarize(pool.rewards, ev.rewards, weights), n_masks=int(sum(ev.n_masks)),
            f1=None if f1 is None else float(f1), seconds=prop.seconds + float(ev.cost_s),
        ))
    return tuple(out)


def _algo_defaults(algo: str, workers: int) -> dict[str, Any]:
    # One-step episodes make this a contextual bandit: no bootstrapping to learn (gamma 0), so PPO
    # updates after rollouts of 256 steps in all (SB3's 2048 would give 10 updates in 20k steps).
    # Chosen by that reasoning, not tuned; algo_kwargs override any of them.
    if algo == "ppo":
        n_steps = max(8, 256 // workers)
        return {"n_steps": n_steps, "batch_size": 64, "n_epochs": 10, "gamma": 0.0, "gae_lambda": 1.0, "learning_rate": 3e-4}
    return {"learning_starts": 500, "batch_size": 256, "gamma": 0.0, "buffer_size": 100_000}


def _env_factory(pool: Task, config: PolicyTrainConfig, engine: Any) -> Callable[[], Any]:
    def make() -> Any:
        from samstar_env.env import SamStarEnv
        from samstar_env.wrappers import ScalarizeReward

        env = SamStarEnv(pool, mode="contextual", obs_mode=config.obs_mode, thumbnail_size=config.thumbnail_size,  # type: ignore[arg-type]
                         max_masks=config.max_masks, engine=engine)
        return ScalarizeReward(env, weights=None if config.weights is None else np.asarray(config.weights) / sum(config.weights))

    return make


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The checkpoint with the most steps in ``folder`` (``policy_<steps>_steps.zip``), if any."""
    found = [(p, int(m.group(1))) for p in folder.glob("policy_*_steps.zip") if (m := _CKPT.search(p.name))]
    return max(found, key=lambda t: t[1]) if found else None


def _check_resume(out: Path, config: PolicyTrainConfig, pool: Task, *, resume: bool) -> tuple[Path, int] | None:
    cfg_file = out / "train_config.json"
    identity = {**config.identity(), "space": space_to_dict(pool.space), "reward_names": list(pool.rewards.names)}
    if not resume:
        if cfg_file.exists():
            raise InputError(f"train-policy: {out} already holds a run ({cfg_file.name}); pass --resume to continue it "
                             "or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        cfg_file.write_text(json.dumps(identity, indent=2, sort_keys=True))
        return None
    if not cfg_file.is_file():
        raise InputError(f"train-policy --resume: {out} holds no run to resume ({cfg_file.name} is missing)")
    recorded = json.loads(cfg_file.read_text())
    diff = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
    if diff:
        raise ResumeMismatchError(
            "train-policy --resume: this run differs from the one in "
            f"{out} in {diff}: " + "; ".join(f"{k}: recorded {recorded.get(k)!r}, now {identity.get(k)!r}" for k in diff)
        )
    return latest_checkpoint(out / "checkpoints")


def train_policy(config: PolicyTrainConfig, *, pool: Task | None = None, resume: bool = False, engine: Any = None,
                 warm_pool: bool = True, log: Callable[[str], None] = print) -> PolicyReport:
    """Train, checkpoint, save and judge an amortized policy (see the module docstring).

    Parameters
    ----------
    config : PolicyTrainConfig
    pool : Task, optional
        A ready pool (default: :func:`~samstar_env.policy.pool.policy_pool` of ``config.task``).
    resume : bool
        Continue the run in ``config.out`` from its latest checkpoint.
    engine : Segmenter, optional
        Engine for a single worker (default: the process-wide engine of the pool's model).
    warm_pool : bool
        Warm the pool's decodes first (:func:`samstar_env.cache.warm`).
    log : callable
        Progress lines.
    """
    import torch

    out = Path(config.out)
    pool = pool if pool is not None else policy_pool(config.task, n_train=config.n_train, n_test=config.n_test,
                                                     size=config.size, model=config.model)
    from samstar_env.problem import shared_engine
    from samstar_env.task import adapt_to_backbone

    # A SAM 2 model: the policy also chooses SAM 2's own parameters (its space gains them).
    pool = adapt_to_backbone(pool, shared_engine(pool.model).backbone)
    if config.weights is not None and len(config.weights) != len(pool.rewards.names):
        raise InputError(f"train-policy: --weights has {len(config.weights)} values; the rewards are "
                         f"{list(pool.rewards.names)} ({len(pool.rewards.names)})")
    ckpt = _check_resume(out, config, pool, resume=resume)
    warm_s = 0.0
    if warm_pool and isinstance(pool.model, (str, Path)):
        from samstar_env.cache import warm

        t0 = time.perf_counter()
        rep = warm(pool.replace(images=(*pool.images, *pool.test_images)), progress=False, log=log)
        warm_s = time.perf_counter() - t0
        log(f"samstar train-policy: pool of {len(pool.images)} training + {len(pool.test_images)} held-out images warm "
            f"({rep.decoded} decoded, {rep.already_cached} cached) in {warm_s:.1f} s")
    torch.manual_seed(config.seed)
    # The networks are small MLPs/CNNs and every env step is a cached replay: one torch thread per
    # process avoids the thread pool's synchronization on each small op, which cost more than the op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(config, pool, ckpt=ckpt, resume=resume, engine=engine, warm_s=warm_s, log=log)
    finally:
        torch.set_num_threads(threads)


def _train(config: PolicyTrainConfig, pool: Task, *, ckpt: tuple[Path, int] | None, resume: bool, engine: Any,
           warm_s: float, log: Callable[[str], None]) -> PolicyReport:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    from samstar_env.rewards import REWARDS_VERSION

    out = Path(config.out)
    make = _env_factory(pool, config, engine if config.workers == 1 else None)
    inner = (DummyVecEnv([make]) if config.workers == 1 else
             SubprocVecEnv([make] * config.workers, start_method="fork" if os.name == "posix" else "spawn"))
    venv = VecMonitor(inner)
    cls = algo_class(config.algo)
    kw = {**_algo_defaults(config.algo, config.workers), **dict(config.algo_kwargs)}
    tb = str(out / "tb")
    if ckpt is not None:
        path, done = ckpt
        model = cls.load(str(path), env=venv, device="cpu", tensorboard_log=tb)
        if config.algo == "sac":
            buf = path.with_name(f"policy_replay_buffer_{done}_steps.pkl")
            if buf.is_file():
                model.load_replay_buffer(str(buf))
        log(f"samstar train-policy: resuming from {path.name} ({model.num_timesteps} steps done)")
    else:
        if resume:
            log("samstar train-policy: no checkpoint yet; starting from step 0")
        policy_name = "MultiInputPolicy" if config.obs_mode == "thumbnail" else "MlpPolicy"
        model = cls(policy_name, venv, seed=config.seed, device="cpu", verbose=0, tensorboard_log=tb, **kw)
    # A task file is recorded by its absolute path: the drift monitor rebuilds the rewards from it.
    task = str(Path(config.task).resolve()) if is_task_file(config.task) else config.task
    info = PolicyInfo(
        task=task, algo=config.algo, obs_mode=config.obs_mode, thumbnail_size=config.thumbnail_size,
        space=pool.space, reward_names=tuple(pool.rewards.names), rewards_version=REWARDS_VERSION,
        weights=config.weights, prior=pool.prior, seed=config.seed, steps=0,
        model=str(pool.model) if isinstance(pool.model, (str, Path)) else None,
    )
    eval_engine = engine

    class HeldOut(BaseCallback):  # type: ignore[misc]
        """At each checkpoint, the deterministic policy on the held-out images, into TensorBoard."""

        def __init__(self) -> None:
            super().__init__()
            self.next_at = 0

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at and pool.test_images:
                self.next_at = self.num_timesteps + config.checkpoint_every
                res = evaluate_policy(AmortizedPolicy(self.model, info), pool, weights=config.weights, engine=eval_engine,
                                      max_masks=config.max_masks)
                self.logger.record("held_out/scalar", float(np.mean([r.scalar for r in res])))
                f1s = [r.f1 for r in res if r.f1 is not None]
                if f1s:
                    self.logger.record("held_out/f1", float(np.mean(f1s)))
                self.logger.record("held_out/masks", float(np.mean([r.n_masks for r in res])))
                rate = (self.num_timesteps - start_steps) / max(time.perf_counter() - t0, 1e-9)
                log(f"samstar train-policy: step {self.num_timesteps}: held-out scalar reward {np.mean([r.scalar for r in res]):.3f}"
                    + (f", F1@0.5 {np.mean(f1s):.3f}" if f1s else "") + f" ({rate:.0f} steps/s)")
            return True

    saver = CheckpointCallback(save_freq=max(1, config.checkpoint_every // config.workers), save_path=str(out / "checkpoints"),
                               name_prefix="policy", save_replay_buffer=config.algo == "sac")
    start_steps = int(model.num_timesteps)
    remaining = config.steps - start_steps
    t0 = time.perf_counter()
    try:
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=CallbackList([saver, HeldOut()]), tb_log_name="run",
                        reset_num_timesteps=ckpt is None, progress_bar=False)
    finally:
        venv.close()
    train_s = time.perf_counter() - t0
    steps = int(model.num_timesteps)
    # The final state is a checkpoint too, so --resume with a larger --steps continues from here.
    model.save(str(out / "checkpoints" / f"policy_{steps}_steps.zip"))
    if config.algo == "sac":
        model.save_replay_buffer(str(out / "checkpoints" / f"policy_replay_buffer_{steps}_steps.pkl"))
    model.save(str(out / "policy.zip"))
    info = info.with_(steps=steps)
    held = evaluate_policy(AmortizedPolicy(model, info), pool, weights=config.weights, engine=engine, max_masks=config.max_masks)
    level = None
    if held:
        level = {
            "images": len(held),
            "rewards": {n: float(np.mean([h.rewards[n] for h in held])) for n in pool.rewards.names},
            "scalar": float(np.mean([h.scalar for h in held])),
        }
    info = info.with_(held_out=level, extra={"train_seconds": train_s, "warm_seconds": warm_s, "workers": config.workers})
    (out / "policy.json").write_text(json.dumps(info.to_dict(), indent=2))
    (out / "held_out.json").write_text(json.dumps(to_jsonable([asdict(h) for h in held]), indent=2))
    report = PolicyReport(out=out, steps=steps, seconds=train_s, warm_seconds=warm_s, held_out=held)
    rate = (remaining / train_s) if remaining > 0 and train_s > 0 else float("nan")
    f1s = [h.f1 for h in held if h.f1 is not None]
    log(f"samstar train-policy: {steps} steps ({rate:.0f} steps/s this run, {train_s:.0f} s); held-out "
        f"{len(held)} images: scalar reward {report.held_out_scalar:.3f}"
        + (f", F1@0.5 {np.mean(f1s):.3f}" if f1s else "") + f"; wrote {out / 'policy.zip'}")
    return report
