"""The frozen image pools an amortized policy trains on and is judged on.

A registered task's pool is the first ``n_train`` seeds of its ``policy`` split (200000..., disjoint
from the ``tune`` and ``test`` splits and from samstar-tiny's ``train`` split) as the training images and
the first ``n_test`` seeds of its ``test`` split as the held-out images, on the policy's default space
(:meth:`~samstar_env.params.ParamSpace.policy_default`). A task file's pool is its own images: the last
``n_test`` are held out, the rest train; its ``[space]`` is kept when the file has one.
"""

from __future__ import annotations

from typing import Any

from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError
from samstar_env.params import ParamSpace
from samstar_env.task import Task
from samstar_env.task_file import is_task_file

POOL_TRAIN = 64
"""Training images of a registered task's pool (seeds of the ``policy`` split)."""
POOL_TEST = 16
"""Held-out images of a registered task's pool (the whole ``test`` split)."""


def policy_pool(
    spec: str,
    *,
    n_train: int = POOL_TRAIN,
    n_test: int = POOL_TEST,
    size: int = 512,
    model: str | None = None,
    space: ParamSpace | None = None,
) -> Task:
    """The pool of ``spec`` as a :class:`~samstar_env.task.Task`: ``images`` train, ``test_images`` are held out.

    Parameters
    ----------
    spec : str
        ``perovskite``, ``ito``, ``auco`` or a task ``.toml`` file.
    n_train, n_test : int
        Pool sizes (registered tasks: at most 1000 and 16; a task file: ``n_test`` of its images are
        held out, default capped at a fifth of them, and ``n_train`` caps the rest).
    size : int
        Side of the synthetic images (registered tasks).
    model : str, optional
        Model name or checkpoint path (default: the task's).
    space : ParamSpace, optional
        Default: :meth:`ParamSpace.policy_default` (a task file's own ``[space]`` when it has one).

    Examples
    --------
    >>> pool = policy_pool("ito", n_train=2, n_test=1, size=64)
    >>> [im.metadata["seed"] for im in pool.images], [im.metadata["seed"] for im in pool.test_images]
    ([200000, 200001], [1000])
    """
    if n_train < 1 or n_test < 0:
        raise InputError(f"policy pool: needs n_train >= 1 and n_test >= 0, got n_train={n_train}, n_test={n_test}")
    if is_task_file(spec):
        return _file_pool(spec, n_train=n_train, n_test=n_test, model=model, space=space)
    from samstar_env.data.synthetic import TASKS, generate, prior, split_seeds
    from samstar_env.rewards import preset

    if spec not in TASKS:
        raise InputError(f"unknown task {spec!r}; expected one of {TASKS} (or a task .toml file)")
    train, test = split_seeds(spec, "policy"), split_seeds(spec, "test")
    if n_train > len(train) or n_test > len(test):
        raise InputError(f"policy pool: {spec!r} has {len(train)} policy-split and {len(test)} test seeds; asked for {n_train} and {n_test}")
    shape = (int(size), int(size))
    return Task(
        name=spec,
        images=tuple(generate(spec, seed=s, size=shape) for s in train[:n_train]),
        prior=prior(spec),
        rewards=preset(spec),
        space=space or ParamSpace.policy_default(),
        model=model or DEFAULT_MODEL,
        test_images=tuple(generate(spec, seed=s, size=shape) for s in test[:n_test]),
    )


def _file_pool(spec: str, *, n_train: int, n_test: int, model: str | None, space: ParamSpace | None) -> Task:
    from samstar_env import _toml
    from samstar_env.task_file import task_from_toml

    task, _ = task_from_toml(spec)
    with open(spec, "rb") as fh:
        has_space = "space" in _toml.load(fh)
    images = task.images
    held = min(n_test, len(images) // 5) if n_test == POOL_TEST else n_test
    if len(images) - held < 1:
        raise InputError(f"policy pool: {spec} has {len(images)} image(s); holding out {held} leaves none to train on")
    train = images[: len(images) - held][:n_train]
    chosen = space if space is not None else (task.space if has_space else ParamSpace.policy_default())
    out = task.replace(images=train, test_images=images[len(images) - held:], space=chosen)
    return out.replace(model=model) if model else out


def describe_pool(pool: Task) -> dict[str, Any]:
    """A JSON-ready summary of a pool (names and counts of its images)."""
    return {
        "task": pool.name,
        "train_images": [im.name for im in pool.images],
        "test_images": [im.name for im in pool.test_images],
    }
