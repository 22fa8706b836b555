"""The task registry: names, knobs, priors, seed splits and :func:`generate`.

Splits (frozen; the same seed numbers for every task, which draw different scenes per task):

========  ========================  =====================================================
split     seeds                     use
========  ========================  =====================================================
tune      0 .. 15 (16 images)       what tuners may look at (rewards, GT metrics while tuning)
test      1000 .. 1015 (16 images)  held-out GT evaluation of tuned parameters; never tune on it
train     100000 .. 199999          model training (samstar-tiny); disjoint from both above
policy    200000 .. 200999          amortized-policy training pools (``samstar train-policy``);
                                    disjoint from all three above, so a policy never trains on
                                    an image the model was trained on or a tuner tuned on
========  ========================  =====================================================

Changing a generator's output for a given seed changes every benchmark number, so do it only with a
bump of :data:`GENERATOR_VERSION` (recorded in each micrograph's metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.data.synthetic import auco, ito, perovskite
from samstar_env.data.synthetic.common import ground_truth, knobs_dict, make_knobs

GENERATOR_VERSION = 1

SPLITS: dict[str, range] = {
    "tune": range(0, 16),
    "test": range(1000, 1016),
    "train": range(100_000, 200_000),
    "policy": range(200_000, 201_000),
}


@dataclass(frozen=True)
class TaskSpec:
    """One synthetic task: its knob dataclass, renderer, prior and modality."""

    name: str
    knobs_cls: type
    render: Callable[..., tuple[np.ndarray, list]]
    prior: Callable[[Any], PhysicsPrior]
    modality: str


_SPECS: dict[str, TaskSpec] = {
    "perovskite": TaskSpec("perovskite", perovskite.PerovskiteKnobs, perovskite.render, perovskite.prior, perovskite.MODALITY),
    "ito": TaskSpec("ito", ito.ItoKnobs, ito.render, ito.prior, ito.MODALITY),
    "auco": TaskSpec("auco", auco.AuCoKnobs, auco.render, auco.prior, auco.MODALITY),
}

TASKS: tuple[str, ...] = tuple(_SPECS)


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; ``ValueError`` naming the valid tasks otherwise."""
    try:
        return _SPECS[task]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {task!r}; valid tasks: {list(TASKS)}") from None


def knob_defaults(task: str) -> dict[str, Any]:
    """Default knob values of ``task`` (name -> value)."""
    return knobs_dict(task_spec(task).knobs_cls())


def prior(task: str, **knobs: Any) -> PhysicsPrior:
    """The :class:`PhysicsPrior` of ``task``: what a microscopist knows before segmenting.

    It comes from the synthesis recipe (the generator's size-distribution knobs) and the microscope
    calibration, never from a generated image. Pass the same knobs as to :func:`generate` when a
    non-default recipe was used.

    Examples
    --------
    >>> p = prior("perovskite")
    >>> p.shape, p.modality, p.pixel_size_nm
    ('cube', 'haadf', 0.5)
    """
    spec = task_spec(task)
    return spec.prior(make_knobs(spec.knobs_cls, task, knobs))


def split_seeds(task: str, split: str) -> tuple[int, ...]:
    """The frozen seeds of ``split`` (``"tune"``, ``"test"``, ``"train"`` or ``"policy"``) for ``task``.

    Examples
    --------
    >>> split_seeds("ito", "tune")[:3], len(split_seeds("ito", "test"))
    ((0, 1, 2), 16)
    """
    task_spec(task)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
    return _seeds(split)


@cache
def _seeds(split: str) -> tuple[int, ...]:
    return tuple(SPLITS[split])


def generate(task: str, seed: int, size: tuple[int, int] = (512, 512), **knobs: Any) -> Micrograph:
    """Render a synthetic micrograph of ``task`` with exact ground truth.

    Parameters
    ----------
    task : str
        ``"perovskite"``, ``"ito"`` or ``"auco"`` (see :data:`TASKS`).
    seed : int
        Non-negative; the only source of randomness (``numpy.random.default_rng(seed)``).
    size : (int, int)
        (H, W) in pixels.
    **knobs
        Physics knobs of the task, documented in :class:`~samstar_env.data.synthetic.perovskite.PerovskiteKnobs`,
        :class:`~samstar_env.data.synthetic.ito.ItoKnobs` and :class:`~samstar_env.data.synthetic.auco.AuCoKnobs`.

    Returns
    -------
    Micrograph
        ``image`` float32 in [0, 1]; ``labels`` the visible instances; ``instances`` the amodal masks
        (:class:`~samstar_env.data.instances.SparseInstances`, each on its tight box: ``instances.crop(i)``
        is label ``i + 1``), in stacking order (bottom first); ``particles`` the per-particle
        table. Particles with fewer than ``common.MIN_VISIBLE_PX`` visible pixels or less than
        ``common.MIN_VISIBLE_FRACTION`` of their in-frame area visible are removed from the scene
        (and so are neither drawn nor listed).

    Examples
    --------
    >>> m = generate("auco", 0, size=(128, 128))
    >>> m.image.shape, m.modality, int(m.labels.max()) == len(m.particles)
    ((128, 128), 'haadf', True)
    """
    spec = task_spec(task)
    k = make_knobs(spec.knobs_cls, task, knobs)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        shape = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if len(size) != 2 or min(shape) < 16 or max(shape) > 8192:
        raise ValueError(f"size must be (H, W) with 16 <= H, W <= 8192, got {size!r}")
    rng = np.random.default_rng(int(seed))
    image, sprites = spec.render(k, rng, shape)
    labels, instances, particles = ground_truth(sprites, shape)
    return Micrograph(
        image=image,
        name=f"{task}-{int(seed):06d}",
        pixel_size_nm=k.pixel_size_nm,
        modality=spec.modality,
        labels=labels,
        instances=instances,
        particles=particles,
        metadata={
            "task": task,
            "seed": int(seed),
            "size": shape,
            "knobs": knobs_dict(k),
            "generator_version": GENERATOR_VERSION,
            "source": "synthetic",
        },
    )
