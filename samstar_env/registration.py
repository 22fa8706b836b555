"""Gymnasium registration of the samstar tasks and their env factories (synthetic, custom, task file).

Registered on ``import samstar_env`` (string entry points, versioned ids; bump ``-vN`` when reward
semantics change):

* ``samstar/Perovskite-v4``, ``samstar/ITO-v4``, ``samstar/AuCo-v4``: the synthetic tasks' frozen
  ``tune`` split with their reward presets and the shipped ``samstar-tiny`` model;
* ``samstar/Custom-v4``: images, prior, rewards and model passed as keyword arguments.

The ``-v0`` ids (rewards version 1: per-mask rewards as plain means over masks), the ``-v1`` ids
(the full default space, whose crop layer 2 and crop overlaps cannot be decoded ahead) and the
``-v2`` ids (no mask budget: an action keeping 13,000 masks took up to 20 s to score) and the ``-v3``
ids (rewards version 2: ``small_particle_detection`` as recall alone, ``aggregate_coverage`` blind to
fragments) are superseded; ``gym.make`` of one raises Gymnasium's ``DeprecatedEnv`` naming the ``-v4`` id. Their
default space is :data:`~samstar_env.params.ENV_DIMENSIONS`: ``samstar cache warm TASK`` decodes
every crop and grid it reaches, after which every step is a replay.

All ids take :class:`~samstar_env.env.SamStarEnv`'s options as keyword arguments too (``mode``,
``budget``, ``obs_mode``, ...), and ``model``, ``space`` and ``rewards`` overrides, e.g.::

    gym.make("samstar/Perovskite-v4", model="sam_vit_b.pth", size=(256, 256), mode="contextual")

``gym.make_vec(id, n)`` gives a synchronous vector env with ``(n, k)`` vector rewards; for
stable-baselines3 scalarize each sub-env:
``gym.make_vec(id, n, vectorization_mode="sync", wrappers=[ScalarizeReward])``.

A task file (:func:`make_env_from_toml`; its format and parser are in :mod:`samstar_env.task_file`)
builds a ``Custom``-style env from a TOML file that names the images, the prior, the rewards, the
space and the env options.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from samstar_env.defaults import DEFAULT_MODEL, ENV_EPISODE_BUDGET
from samstar_env.task_file import build_custom_task, check_env_options, task_from_toml

# Ids -> synthetic task names. The registered ids are frozen; a change of reward semantics gets a new -vN.
SYNTHETIC_IDS: dict[str, str] = {
    "samstar/Perovskite-v4": "perovskite",
    "samstar/ITO-v4": "ito",
    "samstar/AuCo-v4": "auco",
}
CUSTOM_ID = "samstar/Custom-v4"


# -- entry points ----------------------------------------------------------------------------------
def make_synthetic_env(
    task: str,
    *,
    model: Any = None,
    size: Sequence[int] = (512, 512),
    n_images: int | None = None,
    space: Any = None,
    rewards: Any = None,
    backbone: str | None = None,
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
    backbone : {"sam1", "sam2"}, optional
        ``"sam2"`` for a SAM 2 checkpoint: the action space gains SAM 2's ``mask_threshold``,
        ``use_m2m`` and ``multimask_output`` (:meth:`ParamSpace.for_backbone`). Default: the
        in-memory model's, else SAM 1.
    **env_options
        :class:`SamStarEnv` options (``mode``, ``budget``, ``obs_mode``, ...).
    """
    from samstar_env.env import SamStarEnv
    from samstar_env.params import ParamSpace
    from samstar_env.task import make_task

    check_env_options(env_options, f"make_synthetic_env({task!r})")
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
        backbone=backbone,
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
    backbone: str | None = None,
    **env_options: Any,
) -> Any:
    """Entry point of ``samstar/Custom-v4``: a :class:`SamStarEnv` on the user's images.

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
    backbone : {"sam1", "sam2"}, optional
        As for the synthetic ids.
    **env_options
        :class:`SamStarEnv` options.
    """
    from samstar_env.env import SamStarEnv

    check_env_options(env_options, CUSTOM_ID)
    task = build_custom_task(
        images=images, prior=prior, rewards=rewards, model=model, pixel_size_nm=pixel_size_nm,
        modality=modality, space=space, name=name, where=CUSTOM_ID, backbone=backbone,
    )  # fmt: skip
    return SamStarEnv(task, **env_options)


def make_synthetic_vector_env(num_envs: int = 1, *, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """Vector entry point of the synthetic ids (``gym.make_vec``): rewards of shape ``(num_envs, k)``."""
    return _vector_env(make_synthetic_env, num_envs, max_episode_steps, kwargs)


def make_custom_vector_env(num_envs: int = 1, *, max_episode_steps: int | None = None, **kwargs: Any) -> Any:
    """Vector entry point of ``samstar/Custom-v4`` (``gym.make_vec``)."""
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
def make_env_from_toml(path: str | Path, **overrides: Any) -> Any:
    """A :class:`~samstar_env.env.SamStarEnv` for a task file (format: :mod:`samstar_env.task_file`).

    Parameters
    ----------
    path : str or Path
        The ``.toml`` task file.
    **overrides
        :class:`SamStarEnv` options that take precedence over the file's ``[env]`` table.

    Raises
    ------
    samstar_env.errors.TaskFileError
        A wrong key or value in the file, naming the file and the key.

    Examples
    --------
    Skipped when the docs are tested: it needs a task file and its image folder on disk.

    >>> env = make_env_from_toml("my_sample.toml", budget=20)     # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                             # doctest: +SKIP
    """
    from samstar_env.env import SamStarEnv

    task, env_opts = task_from_toml(path)
    check_env_options(overrides, "make_env_from_toml")
    return SamStarEnv(task, **{**env_opts, **overrides})


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
                max_episode_steps=ENV_EPISODE_BUDGET,
                disable_env_checker=True,
            )
    if CUSTOM_ID not in gym.registry:
        gym.register(
            id=CUSTOM_ID,
            entry_point="samstar_env.registration:make_custom_env",
            vector_entry_point="samstar_env.registration:make_custom_vector_env",
            max_episode_steps=ENV_EPISODE_BUDGET,
            disable_env_checker=True,
        )


register_envs()
