"""A tuning task: the images to tune on, the physics prior, the rewards, the search space and the model.

A :class:`Task` is a value that names everything an evaluation needs and nothing about how it is
run; :func:`make_task` builds the registered synthetic tasks (``perovskite``, ``ito``, ``auco``) from
their frozen seed splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError
from samstar_env.params import SAM2_FIELDS, ParamSpace


@dataclass(frozen=True, eq=False)
class Task:
    """Everything one evaluation needs, as a picklable value.

    Parameters
    ----------
    name : str
        Task name (``perovskite``, ``ito``, ``auco`` or a user name).
    images : tuple of Micrograph
        Images an evaluation segments; their rewards are averaged.
    prior : PhysicsPrior
        What is known about the sample before segmenting.
    rewards : RewardSuite
        The ordered physics rewards (``samstar_env.rewards.RewardSuite``).
    space : ParamSpace
        The tuned AMG parameters.
    model : str, Path or torch.nn.Module
        A registered model name or a checkpoint path, loaded lazily by the problem; or an
        in-memory ``segment_anything`` Sam (e.g. a small random model in tests), which is pickled
        with the task.
    test_images : tuple of Micrograph
        Held-out images for judging a chosen operating point (never used while tuning).
    """

    name: str
    images: tuple[Micrograph, ...]
    prior: PhysicsPrior
    rewards: Any
    space: ParamSpace = field(default_factory=ParamSpace.default)
    model: str | Path | Any = DEFAULT_MODEL
    test_images: tuple[Micrograph, ...] = ()

    def __post_init__(self) -> None:
        if len(self.images) == 0:
            raise ValueError(f"Task {self.name!r}: needs at least one image to tune on")
        for im in (*self.images, *self.test_images):
            if not isinstance(im, Micrograph):
                raise TypeError(f"Task {self.name!r}: images must be Micrograph values, got {type(im).__name__}")
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "test_images", tuple(self.test_images))

    def replace(self, **changes: Any) -> Task:
        """A copy with some fields changed."""
        return replace(self, **changes)


def make_task(
    name: str,
    *,
    n_images: int = 1,
    n_test_images: int = 4,
    size: tuple[int, int] = (512, 512),
    model: str | Path = DEFAULT_MODEL,
    space: ParamSpace | None = None,
    rewards: Sequence[Any] | Any | None = None,
    backbone: str | None = None,
) -> Task:
    """Build a registered synthetic task from its frozen ``tune`` and ``test`` seed splits.

    Parameters
    ----------
    name : str
        ``perovskite``, ``ito`` or ``auco``.
    n_images : int
        How many ``tune`` images an evaluation averages over (the first seeds of the split).
    n_test_images : int
        How many ``test`` images are attached for held-out ground-truth scoring.
    size : (int, int)
        Image size in pixels.
    model : str or Path
        Model name or checkpoint path.
    space : ParamSpace, optional
        Search space (default: ``ParamSpace.default()``).
    rewards : RewardSuite, list of names/callables, optional
        Default: the task's preset (``samstar_env.rewards.preset(name)``).
    backbone : {"sam1", "sam2"}, optional
        ``"sam2"`` tunes SAM 2's generator: the space gains SAM 2's own dimensions
        (:meth:`ParamSpace.for_backbone`) and ``model`` must be a SAM 2 checkpoint. Default: SAM 2 for an
        in-memory SAM 2 model, else SAM 1 (a SAM 2 checkpoint given by path is recognized when it loads:
        ``tune``, ``bench`` and ``cache warm`` then adapt the space, see :func:`adapt_to_backbone`).
    """
    from samstar_env.data.synthetic import TASKS, generate, prior, split_seeds
    from samstar_env.rewards import RewardSuite, preset

    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; expected one of {TASKS} (or a task .toml file)")
    tune = split_seeds(name, "tune")
    test = split_seeds(name, "test")
    if not 1 <= n_images <= len(tune):
        raise InputError(f"n_images={n_images} out of range; task {name!r} has {len(tune)} tune images")
    if not 0 <= n_test_images <= len(test):
        raise InputError(f"n_test_images={n_test_images} out of range; task {name!r} has {len(test)} test images")
    if rewards is None:
        suite = preset(name)
    elif isinstance(rewards, RewardSuite):
        suite = rewards
    else:
        suite = RewardSuite(list(rewards))
    return Task(
        name=name,
        images=tuple(generate(name, seed=s, size=size) for s in tune[:n_images]),
        prior=prior(name),
        rewards=suite,
        space=(space or ParamSpace.default()).for_backbone(resolve_backbone(backbone, model, space)),
        model=model,
        test_images=tuple(generate(name, seed=s, size=size) for s in test[:n_test_images]),
    )


def resolve_backbone(backbone: str | None, model: Any, space: ParamSpace | None = None) -> str:
    """``"sam1"`` or ``"sam2"``: the one asked for (checked against the model where that is known), else
    the in-memory model's or the space's (a space of :class:`~samstar_env.params.Sam2AmgParams`), else SAM 1.

    >>> resolve_backbone(None, "samstar-tiny")
    'sam1'
    """
    from samstar_env.models.sam2_models import is_sam2_model
    from samstar_env.params import BACKBONES

    if backbone is None:
        backbone = "sam2" if is_sam2_model(model) or (space is not None and space.backbone == "sam2") else "sam1"
    if backbone not in BACKBONES:
        raise InputError(f"backbone={backbone!r}; expected one of {BACKBONES}")
    if backbone == "sam2" and isinstance(model, (str, Path)) and str(model) == DEFAULT_MODEL:
        raise InputError(f"backbone 'sam2' needs a SAM 2 checkpoint (model=<path to sam2.1_hiera_*.pt>); "
                         f"{DEFAULT_MODEL} is a SAM 1 model")
    return backbone


def adapt_to_backbone(task: Task, backbone: str) -> Task:
    """The task with its space for ``backbone`` (the loaded model's: ``MaskEngine.backbone``).

    On a SAM 2 model, a space that tunes none of SAM 2's own parameters gains them (all three); a SAM 2
    space on a SAM 1 model is an error that says so.
    """
    if backbone == "sam1":
        if task.space.backbone == "sam2":
            raise InputError(f"task {task.name!r}: its space tunes SAM 2's parameters but {task.model!r} is a SAM 1 "
                             "model; pass a SAM 2 checkpoint or drop backbone = 'sam2'")
        return task
    if set(task.space.names) & set(SAM2_FIELDS):
        return task  # SAM 2's dimensions chosen already (a task file's [space])
    return task.replace(space=task.space.for_backbone(backbone))


def tile_task(task: Task, *, input_size: int | None, tile_shape: int | None = None, halo: int | None = None,
              source: str = "--tile-shape") -> tuple[Task, str]:
    """The task with its space's fixed parameters tiled as a run chooses, and a line saying how.

    The choice is :func:`~samstar_env.engine.tiles.choose_tiling`'s for the task's largest image (an
    explicit ``tile_shape``, else the tiling its space's base carries, else automatic tiles above
    twice the model's ``input_size``). Smaller images of the task are cut by the same tiles, or
    left whole when one tile covers them. A space that tunes ``tile_shape`` decides per action.
    """
    from samstar_env.engine.tiles import choose_tiling

    images = (*task.images, *task.test_images)
    largest = max((im.shape for im in images), key=lambda s: s[0] * s[1])
    params, line = choose_tiling(task.space.base, largest, input_size=input_size, tile_shape=tile_shape, halo=halo, source=source)
    if "tile_shape" in task.space.names:
        line = "tiles chosen by the tuner (tile_shape is a tuned dimension)"
    return task.replace(space=task.space.with_tiling(params.tile_shape, params.halo)), line
