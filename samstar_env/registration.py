"""Gymnasium registration of the samstar tasks, and task files (TOML) for users' own images.

Registered on ``import samstar_env`` (string entry points, versioned ids; bump ``-vN`` when reward
semantics change):

* ``samstar/Perovskite-v2``, ``samstar/ITO-v2``, ``samstar/AuCo-v2``: the synthetic tasks' frozen
  ``tune`` split with their reward presets and the shipped ``samstar-tiny`` model;
* ``samstar/Custom-v2``: images, prior, rewards and model passed as keyword arguments.

The ``-v0`` ids (rewards version 1: per-mask rewards as plain means over masks) and the ``-v1`` ids
(the full default space, whose crop layer 2 and crop overlaps cannot be decoded ahead) are
superseded; ``gym.make`` of one raises Gymnasium's ``DeprecatedEnv`` naming the ``-v2`` id. Their
default space is :data:`~samstar_env.params.ENV_DIMENSIONS`: ``samstar cache warm TASK`` decodes
every crop and grid it reaches, after which every step is a replay.

All ids take :class:`~samstar_env.env.SamStarEnv`'s options as keyword arguments too (``mode``,
``budget``, ``obs_mode``, ...), and ``model``, ``space`` and ``rewards`` overrides, e.g.::

    gym.make("samstar/Perovskite-v2", model="sam_vit_b.pth", size=(256, 256), mode="contextual")

``gym.make_vec(id, n)`` gives a synchronous vector env with ``(n, k)`` vector rewards; for
stable-baselines3 scalarize each sub-env:
``gym.make_vec(id, n, vectorization_mode="sync", wrappers=[ScalarizeReward])``.

A task file (:func:`make_env_from_toml`)::

    [task]
    name = "my-sample"
    images = "micrographs/"          # folder, relative to this file
    pixel_size_nm = 0.42             # optional: overrides the files' calibration
    modality = "haadf"               # optional
    model = "checkpoints/sam.pth"    # a path (relative to this file) or a registered name
    rewards = ["size_window", "shape_fidelity", "overlap_fidelity"]   # optional: "generic" preset
                                     # (or a preset name: "perovskite", "ito", "auco", "generic")

    [prior]
    diameter_range_nm = [8.0, 15.0]
    shape = "cube"                   # sphere | cube | irregular

    [rewards]                        # optional: weights (others keep 1 or the preset's) and options
    weights = { overlap_fidelity = 2.0 }
    options.size_window = { tolerance = 0.3, count_floor = 0.3 }   # keyword arguments of the reward

    [space]                          # optional: tune a subset of the default dimensions
    dimensions = ["points_per_side", "pred_iou_thresh", "stability_score_thresh"]

    [env]                            # optional: SamStarEnv options
    mode = "budget"
    budget = 30
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import gymnasium as gym

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject allows it): tomllib's backport
    import tomli as tomllib

# Ids -> synthetic task names. The registered ids are frozen; a change of reward semantics gets a new -vN.
SYNTHETIC_IDS: dict[str, str] = {
    "samstar/Perovskite-v2": "perovskite",
    "samstar/ITO-v2": "ito",
    "samstar/AuCo-v2": "auco",
}
CUSTOM_ID = "samstar/Custom-v2"

# Same as samstar_env.env.DEFAULT_BUDGET (not imported: registration must not import numpy-heavy
# modules on `import samstar_env`).
_DEFAULT_BUDGET = 50
_ENV_OPTIONS = (
    "mode", "budget", "images_per_episode", "obs_mode", "thumbnail_size", "reward_mode", "gt_metrics", "device",
)  # fmt: skip


class TaskFileError(ValueError):
    """A task file is missing, unreadable or has a wrong key; the message names the file and key."""


# -- entry points ----------------------------------------------------------------------------------
def make_synthetic_env(
    task: str,
    *,
    model: Any = None,
    size: Sequence[int] = (512, 512),
    n_images: int | None = None,
    space: Any = None,
    rewards: Any = None,
    **env_options: Any,
) -> Any:
    """Entry point of the synthetic ids: a :class:`SamStarEnv` on a task's frozen ``tune`` split.

    Parameters
    ----------
    task : str
        ``perovskite``, ``ito`` or ``auco``.
    model : str, Path or torch.nn.Module, optional
        Model name, checkpoint path or in-memory SAM (default: ``samstar-tiny``). Loaded on the
        first step, not here.
    size : (int, int)
        Size of the generated images (pixels).
    n_images : int, optional
        Tune images in the pool: default 1 in ``budget`` mode (the paper's single-image tuning
        session) and 8 in ``contextual`` mode (a new image per episode).
    space : ParamSpace, optional
        Search space (default: ``ParamSpace.env_default()``, every action of which
        ``samstar cache warm`` decodes ahead).
    rewards : RewardSuite or list of names/callables, optional
        Default: the task's preset.
    **env_options
        :class:`SamStarEnv` options (``mode``, ``budget``, ``obs_mode``, ...).
    """
    from samstar_env.env import SamStarEnv
    from samstar_env.params import ParamSpace
    from samstar_env.task import DEFAULT_MODEL, make_task

    _check_options(env_options, f"make_synthetic_env({task!r})")
    space = ParamSpace.env_default() if space is None else space
    if n_images is None:
        n_images = 8 if env_options.get("mode") == "contextual" else 1
    t = make_task(
        task,
        n_images=int(n_images),
        n_test_images=0,
        size=(int(size[0]), int(size[1])),
        model=DEFAULT_MODEL if model is None else model,
        space=space,
        rewards=rewards,
    )
    return SamStarEnv(t, **env_options)


def make_custom_env(
    *,
    images: Any = None,
    prior: Any = None,
    rewards: Any = None,
    model: Any = None,
    pixel_size_nm: float | None = None,
    modality: str = "unknown",
    space: Any = None,
    name: str = "custom",
    **env_options: Any,
) -> Any:
    """Entry point of ``samstar/Custom-v2``: a :class:`SamStarEnv` on the user's images.

    Parameters
    ----------
    images : folder path, Micrograph, or sequence of Micrograph
        The micrographs to tune on (a folder is read with ``samstar_env.data.load_folder``).
    prior : PhysicsPrior or mapping
        What is known about the sample (a mapping is passed to ``PhysicsPrior(**prior)``).
    rewards : RewardSuite, preset name or list of names/callables, optional
        The rewards (default: ``samstar_env.rewards.preset("generic")``, every physics criterion
        once with equal weights; ``samstar_env.rewards.configure_suite`` sets options and weights).
    model : str, Path or torch.nn.Module, optional
        Model name, checkpoint path or in-memory SAM (default ``samstar-tiny``).
    pixel_size_nm : float, optional
        Calibration for a folder's images (overrides the files' own).
    modality : str
        Modality of a folder's images.
    space : ParamSpace, optional
        Search space (default: ``ParamSpace.env_default()``).
    name : str
        Task name (logs and results).
    **env_options
        :class:`SamStarEnv` options.
    """
    from samstar_env.env import SamStarEnv

    _check_options(env_options, CUSTOM_ID)
    task = build_custom_task(
        images=images, prior=prior, rewards=rewards, model=model, pixel_size_nm=pixel_size_nm,
        modality=modality, space=space, name=name, where=CUSTOM_ID,
    )  # fmt: skip
    return SamStarEnv(task, **env_options)


def build_custom_task(
    *,
    images: Any,
    prior: Any,
    rewards: Any = None,
    model: Any = None,
    pixel_size_nm: float | None = None,
    modality: str = "unknown",
    space: Any = None,
    name: str = "custom",
    where: str = "custom task",
) -> Any:
    """A :class:`~samstar_env.task.Task` from user images (shared by ``Custom-v2`` and task files).

    ``where`` prefixes error messages (the env id or the task file).
    """
    from samstar_env.data.micrograph import Micrograph, PhysicsPrior
    from samstar_env.params import ParamSpace
    from samstar_env.task import DEFAULT_MODEL, Task

    if images is None:
        raise ValueError(f"{where}: pass images= (a folder, a Micrograph or a list of Micrograph)")
    if prior is None:
        raise ValueError(f"{where}: pass prior= (a PhysicsPrior or a mapping such as {{'diameter_range_nm': (8, 15)}})")
    if isinstance(images, (str, Path)):
        from samstar_env.data.loaders import load_folder

        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"{where}: image folder {str(folder)!r} does not exist")
        imgs = tuple(load_folder(folder, pixel_size_nm=pixel_size_nm, modality=modality))
        if not imgs:
            raise ValueError(f"{where}: no images found in {str(folder)!r}")
    elif isinstance(images, Micrograph):
        imgs = (images,)
    else:
        imgs = tuple(images)
        bad = [type(im).__name__ for im in imgs if not isinstance(im, Micrograph)]
        if bad or not imgs:
            raise TypeError(f"{where}: images must be a folder or Micrograph values, got {bad or 'nothing'}")
    if isinstance(prior, Mapping):
        prior = _prior_from_mapping(prior, where)
    elif not isinstance(prior, PhysicsPrior):
        raise TypeError(f"{where}: prior must be a PhysicsPrior or a mapping, got {type(prior).__name__}")
    return Task(
        name=name,
        images=imgs,
        prior=prior,
        rewards=_suite(rewards, where),
        space=space if space is not None else ParamSpace.env_default(),
        model=DEFAULT_MODEL if model is None else model,
    )


def make_synthetic_vector_env(num_envs: int = 1, *, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """Vector entry point of the synthetic ids (``gym.make_vec``): rewards of shape ``(num_envs, k)``."""
    return _vector_env(make_synthetic_env, num_envs, max_episode_steps, kwargs)


def make_custom_vector_env(num_envs: int = 1, *, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """Vector entry point of ``samstar/Custom-v2`` (``gym.make_vec``)."""
    return _vector_env(make_custom_env, num_envs, max_episode_steps, kwargs)


def _vector_env(factory: Any, num_envs: int, max_episode_steps: int | None, kwargs: dict[str, Any]) -> Any:
    from gymnasium.wrappers import TimeLimit

    from samstar_env.wrappers import SyncVectorRewardEnv

    def one() -> Any:
        env = factory(**kwargs)
        return TimeLimit(env, max_episode_steps) if max_episode_steps is not None else env

    # Sub-envs on one in-memory model or one model name share a single engine (samstar_env.problem),
    # so its caches serve them all.
    return SyncVectorRewardEnv([one for _ in range(int(num_envs))])


# -- task files ------------------------------------------------------------------------------------
def task_from_toml(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read a task file: the :class:`~samstar_env.task.Task` and the ``[env]`` options.

    Relative paths (images, model) are resolved against the file's folder. Errors are
    :class:`TaskFileError` (or ``FileNotFoundError``) naming the file and the key.
    """
    from samstar_env.params import AmgParams, ParamSpace

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"task file {str(p)!r} does not exist")
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{p}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"task", "prior", "rewards", "space", "env"})
    if unknown:
        raise TaskFileError(f"{p}: unknown table(s) {unknown}; expected [task], [prior], [rewards], [space], [env]")
    task_tbl = _table(doc, "task", p, required=True)
    prior_tbl = _table(doc, "prior", p, required=True)
    rewards_tbl = _table(doc, "rewards", p, required=False)
    space_tbl = _table(doc, "space", p, required=False)
    env_tbl = _table(doc, "env", p, required=False)

    known_task = {"name", "images", "pixel_size_nm", "modality", "model", "rewards"}
    _no_unknown(task_tbl, known_task, p, "task")
    images = _get(task_tbl, "images", str, p, "task", required=True)
    folder = (p.parent / images).resolve()
    if not folder.is_dir():
        raise TaskFileError(f"{p}: [task].images: folder {str(folder)!r} does not exist")
    px = _get(task_tbl, "pixel_size_nm", (int, float), p, "task")
    if px is not None and not px > 0:
        raise TaskFileError(f"{p}: [task].pixel_size_nm must be positive, got {px!r}")
    model = _get(task_tbl, "model", str, p, "task")
    if model is not None:
        # A relative path is relative to the task file; anything that is not a file there is a
        # registered model name, left for load_sam to resolve (or reject with its list of names).
        cand = p.parent / model
        if cand.is_file():
            model = str(cand.resolve())
        elif any(sep in model for sep in ("/", "\\")) or model.endswith((".pth", ".pt", ".ckpt")):
            raise TaskFileError(f"{p}: [task].model: checkpoint {str(cand)!r} does not exist")
    rewards = _get(task_tbl, "rewards", (list, str), p, "task")
    if isinstance(rewards, list) and not all(isinstance(r, str) for r in rewards):
        raise TaskFileError(f"{p}: [task].rewards must be a preset name or a list of reward names, got {rewards!r}")
    suite = _suite_from_file(rewards, rewards_tbl, p)

    space = None
    if space_tbl:
        _no_unknown(space_tbl, {"dimensions", "base"}, p, "space")
        dims = _get(space_tbl, "dimensions", list, p, "space")
        base_tbl = _get(space_tbl, "base", dict, p, "space") or {}
        try:
            base = AmgParams.from_dict(base_tbl)
            space = ParamSpace.subset(dims, base=base) if dims is not None else ParamSpace.env_default(**base_tbl)
        except (ValueError, TypeError) as exc:
            raise TaskFileError(f"{p}: [space]: {exc}") from None

    env_opts = dict(env_tbl)
    _no_unknown(env_opts, set(_ENV_OPTIONS), p, "env")
    where = f"{p}"
    try:
        task = build_custom_task(
            images=str(folder),
            prior=_prior_from_mapping(prior_tbl, f"{p}: [prior]"),
            rewards=suite,
            model=model,
            pixel_size_nm=px,
            modality=_get(task_tbl, "modality", str, p, "task") or "unknown",
            space=space,
            name=_get(task_tbl, "name", str, p, "task") or p.stem,
            where=where,
        )
    except TaskFileError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        msg = str(exc)
        raise TaskFileError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
    return task, env_opts


def make_env_from_toml(path: str | Path, **overrides: Any) -> Any:
    """A :class:`~samstar_env.env.SamStarEnv` for a task file (see the module docstring for its format).

    Parameters
    ----------
    path : str or Path
        The ``.toml`` task file.
    **overrides
        :class:`SamStarEnv` options that take precedence over the file's ``[env]`` table.

    Examples
    --------
    >>> env = make_env_from_toml("my_sample.toml", budget=20)     # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                             # doctest: +SKIP
    """
    from samstar_env.env import SamStarEnv

    task, env_opts = task_from_toml(path)
    _check_options(overrides, "make_env_from_toml")
    return SamStarEnv(task, **{**env_opts, **overrides})


# -- helpers ---------------------------------------------------------------------------------------
def _check_options(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(_ENV_OPTIONS))
    if unknown:
        raise TypeError(f"{where}: unknown option(s) {unknown}; SamStarEnv takes {list(_ENV_OPTIONS)}")


def _suite_from_file(rewards: str | list[str] | None, table: Mapping[str, Any], p: Path) -> Any:
    """The suite of a task file: ``[task].rewards`` (a preset or names) with ``[rewards]`` options and weights."""
    from samstar_env.rewards import configure_suite

    _no_unknown(table, {"options", "weights"}, p, "rewards")
    options = _get(table, "options", dict, p, "rewards")
    weights = _get(table, "weights", dict, p, "rewards")
    try:
        return configure_suite("generic" if rewards is None else rewards, options=options, weights=weights)
    except (KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if exc.args else exc
        raise TaskFileError(f"{p}: [task].rewards / [rewards]: {msg}") from None


def _suite(rewards: Any, where: str) -> Any:
    from samstar_env.rewards import RewardSuite, preset

    if rewards is None:
        # A new sample has no task preset: the balanced one, every physics criterion once.
        return preset("generic")
    if isinstance(rewards, RewardSuite):
        return rewards
    if isinstance(rewards, str):
        try:
            return preset(rewards)
        except ValueError as exc:
            raise ValueError(f"{where}: rewards: {exc}") from None
    if isinstance(rewards, (str, bytes)) or not isinstance(rewards, Sequence):
        raise TypeError(f"{where}: rewards must be a RewardSuite or a list of reward names/callables, got {rewards!r}")
    try:
        return RewardSuite(list(rewards))
    except KeyError as exc:
        raise ValueError(f"{where}: rewards: {exc.args[0] if exc.args else exc}") from None


def _prior_from_mapping(data: Mapping[str, Any], where: str) -> Any:
    from samstar_env.data.micrograph import PhysicsPrior, SizeComponent

    known = {f.name for f in fields(PhysicsPrior)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TaskFileError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    if "diameter_range_nm" not in data:
        raise TaskFileError(f"{where}: missing key 'diameter_range_nm' (e.g. [8.0, 15.0])")
    d = dict(data)
    d["diameter_range_nm"] = tuple(d["diameter_range_nm"])
    if "size_components" in d:
        try:
            d["size_components"] = tuple(SizeComponent(**c) for c in d["size_components"])
        except TypeError as exc:
            raise TaskFileError(f"{where}: size_components: {exc} (each needs weight, median_nm, sigma)") from None
    try:
        return PhysicsPrior(**d)
    except (ValueError, TypeError) as exc:
        raise TaskFileError(f"{where}: {exc}") from None


def _table(doc: Mapping[str, Any], key: str, path: Path, *, required: bool) -> dict[str, Any]:
    if key not in doc:
        if required:
            raise TaskFileError(f"{path}: missing table [{key}]")
        return {}
    if not isinstance(doc[key], dict):
        raise TaskFileError(f"{path}: {key} must be a table ([{key}]), got {type(doc[key]).__name__}")
    return dict(doc[key])


def _get(tbl: Mapping[str, Any], key: str, typ: Any, path: Path, table: str, *, required: bool = False) -> Any:
    if key not in tbl:
        if required:
            raise TaskFileError(f"{path}: missing key [{table}].{key}")
        return None
    v = tbl[key]
    if not isinstance(v, typ) or isinstance(v, bool):
        names = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
        raise TaskFileError(f"{path}: [{table}].{key} must be {names}, got {v!r}")
    return v


def _no_unknown(tbl: Mapping[str, Any], known: set[str], path: Path, table: str) -> None:
    unknown = sorted(set(tbl) - known)
    if unknown:
        raise TaskFileError(f"{path}: [{table}]: unknown key(s) {unknown}; expected some of {sorted(known)}")


# -- registration ----------------------------------------------------------------------------------
def register_envs() -> None:
    """Register the samstar ids with Gymnasium (idempotent; run on ``import samstar_env``)."""
    # The vector reward is intentional (MO-Gymnasium convention), so Gymnasium's passive checker,
    # which warns on non-scalar rewards, is off for these ids, as mo_gymnasium.make does; tests run
    # the full check_env on the scalarized env instead.
    for env_id, task in SYNTHETIC_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="samstar_env.registration:make_synthetic_env",
                vector_entry_point="samstar_env.registration:make_synthetic_vector_env",
                kwargs={"task": task},
                max_episode_steps=_DEFAULT_BUDGET,
                disable_env_checker=True,
            )
    if CUSTOM_ID not in gym.registry:
        gym.register(
            id=CUSTOM_ID,
            entry_point="samstar_env.registration:make_custom_env",
            vector_entry_point="samstar_env.registration:make_custom_vector_env",
            max_episode_steps=_DEFAULT_BUDGET,
            disable_env_checker=True,
        )


register_envs()
