"""A trained amortized policy on disk, and its use: one forward pass from a micrograph to AMG parameters.

A policy is two files side by side: ``policy.zip``, the stable-baselines3 model, and ``policy.json``
(:class:`PolicyInfo`), which says what the model was trained for: the search space (its actions
decode only through it), the reward suite and its version, the scalarization weights, the physics
prior its image descriptors are computed with, the observation mode, and the level of each reward on
its held-out images (the drift monitor's reference). :func:`load_policy` reads both and refuses a
model whose action or observation shape does not match what the sidecar describes, a sidecar written
by another format, or rewards of another version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior, SizeComponent
from samstar_env.errors import InputError, MissingFileError
from samstar_env.jsonutil import to_jsonable
from samstar_env.observation import IMAGE_FEATURE_NAMES, assemble_observation, describe_image, thumbnail
from samstar_env.params import AmgParams, Dimension, ParamSpace

POLICY_FORMAT = "samstar-policy/1"
"""The ``format`` of ``policy.json``; another value is refused."""

ALGOS = ("ppo", "sac")
OBS_MODES = ("features", "thumbnail")


# -- values <-> JSON ----------------------------------------------------------------------------
def space_to_dict(space: ParamSpace) -> dict[str, Any]:
    """A search space as JSON-ready data (every dimension and the fixed base parameters)."""
    return {"dimensions": [to_jsonable(asdict(d)) for d in space.dimensions], "base": space.base.to_dict()}


def space_from_dict(data: Mapping[str, Any]) -> ParamSpace:
    """Inverse of :func:`space_to_dict`.

    Examples
    --------
    >>> s = ParamSpace.policy_default()
    >>> space_from_dict(json.loads(json.dumps(space_to_dict(s)))) == s
    True
    """
    dims = tuple(
        Dimension(name=d["name"], kind=d["kind"], low=float(d["low"]), high=float(d["high"]), choices=tuple(d.get("choices", ())))
        for d in data["dimensions"]
    )
    return ParamSpace(dimensions=dims, base=AmgParams.from_dict(data["base"]))


def prior_to_dict(prior: PhysicsPrior) -> dict[str, Any]:
    """A physics prior as JSON-ready data."""
    return dict(to_jsonable(asdict(prior)))


def prior_from_dict(data: Mapping[str, Any]) -> PhysicsPrior:
    """Inverse of :func:`prior_to_dict`."""
    d = dict(data)
    d["diameter_range_nm"] = tuple(d["diameter_range_nm"])
    d["size_components"] = tuple(SizeComponent(**c) for c in d.get("size_components", ()))
    return PhysicsPrior(**d)


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy was trained for: the contents of ``policy.json``.

    Parameters
    ----------
    task : str
        The registered task or task file it was trained on.
    algo : {"ppo", "sac"}
        The stable-baselines3 algorithm.
    obs_mode : {"features", "thumbnail"}
        Image descriptors only, or descriptors and a uint8 thumbnail (a CNN policy).
    thumbnail_size : int
        Thumbnail side, pixels.
    space : ParamSpace
        The search space its actions decode through.
    reward_names : tuple of str
        The reward suite it was trained on, in order.
    rewards_version : int
        ``samstar_env.rewards.REWARDS_VERSION`` at training time.
    weights : tuple of float or None
        Scalarization weights (``None``: the suite's own weighting).
    prior : PhysicsPrior
        The prior its observation descriptors are computed with.
    seed, steps : int
        Training seed and environment steps taken.
    held_out : mapping, optional
        ``{"images": n, "rewards": {name: mean}, "scalar": mean}``: the policy's rewards on its held-out
        images, the drift monitor's reference level.
    model : str or None
        The model it was trained with (a registered name or checkpoint path; ``None`` for an
        in-memory model): its parameters are meant for that model's masks.
    format : str
        :data:`POLICY_FORMAT`.
    extra : mapping
        Run facts (training and warming seconds, workers).
    """

    task: str
    algo: str
    obs_mode: str
    thumbnail_size: int
    space: ParamSpace
    reward_names: tuple[str, ...]
    rewards_version: int
    weights: tuple[float, ...] | None
    prior: PhysicsPrior
    seed: int
    steps: int
    held_out: Mapping[str, Any] | None = None
    model: str | None = None
    format: str = POLICY_FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "format": self.format, "task": self.task, "algo": self.algo, "obs_mode": self.obs_mode,
            "thumbnail_size": self.thumbnail_size, "space": space_to_dict(self.space),
            "reward_names": list(self.reward_names), "rewards_version": self.rewards_version,
            "weights": None if self.weights is None else list(self.weights), "prior": prior_to_dict(self.prior),
            "seed": self.seed, "steps": self.steps, "held_out": to_jsonable(self.held_out), "model": self.model,
            "extra": to_jsonable(dict(self.extra)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "policy.json") -> PolicyInfo:
        """Read :meth:`to_dict`'s data; :class:`InputError` naming ``where`` on another format or a missing key."""
        fmt = data.get("format")
        if fmt != POLICY_FORMAT:
            raise InputError(f"{where}: format {fmt!r} is not a samstar policy ({POLICY_FORMAT!r} expected)")
        try:
            return cls(
                task=str(data["task"]), algo=str(data["algo"]), obs_mode=str(data["obs_mode"]),
                thumbnail_size=int(data["thumbnail_size"]), space=space_from_dict(data["space"]),
                reward_names=tuple(data["reward_names"]), rewards_version=int(data["rewards_version"]),
                weights=None if data.get("weights") is None else tuple(float(w) for w in data["weights"]),
                prior=prior_from_dict(data["prior"]), seed=int(data["seed"]), steps=int(data["steps"]),
                held_out=data.get("held_out"), model=data.get("model"), extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: not a readable samstar policy description ({type(exc).__name__}: {exc})") from None

    def with_(self, **changes: Any) -> PolicyInfo:
        """A copy with some fields changed."""
        return replace(self, **changes)


def policy_paths(path: str | Path) -> tuple[Path, Path]:
    """``(policy.zip, policy.json)`` of a policy given by its zip, its json or its folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "policy.zip"
    if p.suffix == ".json":
        return p.with_suffix(".zip"), p
    return p, p.with_suffix(".json")


@dataclass(frozen=True)
class Proposal:
    """The parameters a policy proposes for one image.

    Parameters
    ----------
    params : AmgParams
        Decoded through the policy's space.
    action : ndarray
        The policy's deterministic action in ``[-1, 1]^d``.
    seconds : float
        Descriptors plus forward pass, wall-clock.
    """

    params: AmgParams
    action: np.ndarray
    seconds: float


class AmortizedPolicy:
    """A trained policy: :meth:`propose` maps a micrograph to AMG parameters in one forward pass.

    Load one with :func:`load_policy`. The observation is the contextual environment's reset
    observation of the image (its descriptors under the policy's prior; zero previous action and
    rewards; a full budget; a thumbnail for CNN policies), built by the same
    :func:`~samstar_env.observation.assemble_observation`, so deployment sees what training saw.
    """

    def __init__(self, model: Any, info: PolicyInfo, *, path: Path | None = None) -> None:
        self.model = model
        self.info = info
        self.path = path

    @property
    def space(self) -> ParamSpace:
        """The search space the actions decode through."""
        return self.info.space

    def observation(self, image: Micrograph) -> np.ndarray | dict[str, np.ndarray]:
        """The observation the policy sees for ``image``."""
        d, k = self.space.dim, len(self.info.reward_names)
        feats = describe_image(image, self.info.prior).to_array()
        thumb = thumbnail(image, self.info.thumbnail_size) if self.info.obs_mode == "thumbnail" else None
        z = np.zeros
        return assemble_observation(feats, prev_action=z(d), prev_reward=z(k), best_reward=z(k), budget_left=1.0, thumb=thumb)

    def propose(self, image: Micrograph) -> Proposal:
        """The policy's parameters for ``image`` (deterministic: the mean action)."""
        t0 = time.perf_counter()
        action, _ = self.model.predict(self.observation(image), deterministic=True)
        act = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        return Proposal(params=self.space.decode(act), action=act.astype(np.float32), seconds=time.perf_counter() - t0)

    def check_compatible(self, *, space: ParamSpace | None = None, reward_names: Sequence[str] | None = None, where: str = "policy") -> None:
        """Raise :class:`InputError` when the policy was trained for another space or reward suite."""
        name = str(self.path) if self.path is not None else "the policy"
        if space is not None and space_to_dict(space) != space_to_dict(self.space):
            raise InputError(
                f"{where}: {name} was trained on the space {list(self.space.names)} (base {self.space.base.to_dict()}), "
                f"not on {list(space.names)} (base {space.base.to_dict()}); train a policy for this space"
            )
        if reward_names is not None and tuple(reward_names) != self.info.reward_names:
            raise InputError(
                f"{where}: {name} was trained on the rewards {list(self.info.reward_names)}, not {list(reward_names)}; "
                "train a policy for this reward suite"
            )

    def __repr__(self) -> str:
        return (f"AmortizedPolicy(task={self.info.task!r}, algo={self.info.algo!r}, obs_mode={self.info.obs_mode!r}, "
                f"space={list(self.space.names)}, steps={self.info.steps})")


def algo_class(algo: str) -> Any:
    """The stable-baselines3 class of ``algo`` (``ppo`` or ``sac``)."""
    if algo not in ALGOS:
        raise InputError(f"policy algo must be one of {ALGOS}, got {algo!r}")
    import stable_baselines3 as sb3

    return sb3.PPO if algo == "ppo" else sb3.SAC


def expected_obs_dim(info: PolicyInfo) -> int:
    """Length of the flat features the policy's observation has."""
    return len(IMAGE_FEATURE_NAMES) + info.space.dim + 2 * len(info.reward_names) + 1


def read_info(path: str | Path) -> PolicyInfo:
    """Read ``policy.json`` (given by the policy's zip, json or folder)."""
    _, meta = policy_paths(path)
    if not meta.is_file():
        raise MissingFileError(f"policy description {str(meta)!r} does not exist (a policy is policy.zip + policy.json, "
                               "as `samstar train-policy` writes them)")
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta}: not valid JSON ({exc})") from None
    return PolicyInfo.from_dict(data, where=str(meta))


def load_policy(path: str | Path) -> AmortizedPolicy:
    """Load a policy written by ``samstar train-policy`` (its ``policy.zip``, ``policy.json`` or folder).

    Raises
    ------
    MissingFileError
        Either file is missing.
    InputError
        The description is of another format or rewards version, or the model's action or
        observation space does not match it.
    """
    from samstar_env.rewards import REWARDS_VERSION

    zpath, _ = policy_paths(path)
    info = read_info(path)
    if not zpath.is_file():
        raise MissingFileError(f"policy model {str(zpath)!r} does not exist")
    if info.rewards_version != REWARDS_VERSION:
        raise InputError(
            f"{zpath}: trained on rewards version {info.rewards_version}; this samstar's rewards are version "
            f"{REWARDS_VERSION}, so its rewards (and what the policy learned from them) differ: train it again"
        )
    try:
        model = algo_class(info.algo).load(str(zpath), device="cpu")
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise InputError(f"{zpath}: not a readable stable-baselines3 {info.algo.upper()} model ({exc})") from None
    act_shape = tuple(model.action_space.shape)
    if act_shape != (info.space.dim,):
        raise InputError(f"{zpath}: the model's actions have shape {act_shape}; policy.json's space has {info.space.dim} "
                         f"dimensions ({', '.join(info.space.names)})")
    obs_space = model.observation_space
    flat = obs_space["features"] if info.obs_mode == "thumbnail" else obs_space
    if tuple(flat.shape) != (expected_obs_dim(info),):
        raise InputError(f"{zpath}: the model observes {tuple(flat.shape)} features; policy.json describes "
                         f"{expected_obs_dim(info)} ({info.space.dim} parameters, {len(info.reward_names)} rewards)")
    return AmortizedPolicy(model, info, path=zpath)


def policy_suite(info: PolicyInfo) -> Any:
    """The reward suite a policy was trained on, rebuilt from its task (a preset, or its task file's).

    Raises :class:`InputError` when the task no longer gives the recorded rewards (a changed task file).
    """
    from samstar_env.rewards import preset
    from samstar_env.task_file import is_task_file

    if is_task_file(info.task):
        from samstar_env.task_file import task_from_toml

        suite = task_from_toml(info.task)[0].rewards
    else:
        suite = preset(info.task)
    if tuple(suite.names) != info.reward_names:
        raise InputError(f"the policy was trained on the rewards {list(info.reward_names)}; its task {info.task!r} "
                         f"now gives {list(suite.names)}")
    return suite
