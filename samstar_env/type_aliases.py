"""Shared type aliases and the Protocols at samstar's seams (like stable-baselines3's common/type_aliases.py).

Layer 0 (DESIGN.md § Layers): it names only values of its own layer (:class:`~samstar_env.params.AmgParams`,
:class:`~samstar_env.data.micrograph.Micrograph`, :class:`~samstar_env.data.micrograph.PhysicsPrior`).
What a segmenter returns and what a problem's evaluation is belong to higher layers, so the Protocols
are generic in them: ``Segmenter[MaskSet]`` is what :class:`~samstar_env.engine.MaskEngine` and the
direct AMG path (:class:`samstar_env.segmentation.DirectAmg`) both offer, ``RewardSuiteLike[MaskSet]``
what :class:`~samstar_env.rewards.RewardSuite` offers, ``ProblemLike[Evaluation]`` what
:class:`~samstar_env.problem.TuningProblem` offers. Any object with the same methods fits (a
user's segmenter, a stub in a test); nothing needs to inherit from them.

Examples
--------
>>> class Nothing:
...     def generate(self, image, params):
...         return []
>>> isinstance(Nothing(), Segmenter)
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from gymnasium import spaces

    from samstar_env.data.micrograph import Micrograph, PhysicsPrior
    from samstar_env.params import AmgParams, ParamSpace

PathLike = str | os.PathLike
ArrayLike = np.ndarray | list | tuple
RewardVector = np.ndarray  # float32, shape (k,), every entry in [0, 1], higher is better

MasksT = TypeVar("MasksT")
MasksT_co = TypeVar("MasksT_co", covariant=True)
MasksT_contra = TypeVar("MasksT_contra", contravariant=True)
EvaluationT_co = TypeVar("EvaluationT_co", covariant=True)


@runtime_checkable
class Segmenter(Protocol[MasksT_co]):
    """Segments one micrograph with one AMG configuration.

    :class:`~samstar_env.engine.MaskEngine` (exact, cached) and the direct
    ``SamAutomaticMaskGenerator`` path both offer it; their masks are a
    :class:`~samstar_env.engine.MaskSet`. Optional extras a caller may look for with ``getattr``:
    ``stats`` (cache counters), ``missing_units`` and ``expected_decode_seconds`` (the decode cache).
    """

    def generate(self, image: Micrograph, params: AmgParams) -> MasksT_co: ...


@runtime_checkable
class DecodeCache(Protocol):
    """A segmenter with a decode cache it can be asked about (:class:`~samstar_env.engine.MaskEngine` is one).

    ``missing_units(image, params)`` lists the decode units (crop/grid pieces) not cached yet, each
    with its ``n_points``; ``expected_decode_seconds(units)`` estimates their cold cost (``None``
    when unknown).
    """

    def missing_units(self, image: Micrograph, params: AmgParams) -> Sequence[Any]: ...

    def expected_decode_seconds(self, units: Sequence[Any]) -> float | None: ...


class RewardFn(Protocol[MasksT_contra]):
    """A physics reward: ``f(masks, image, prior, **options) -> float in [0, 1]`` (higher is better)."""

    def __call__(self, masks: MasksT_contra, image: Micrograph, prior: PhysicsPrior, /) -> float: ...


class RewardSuiteLike(Protocol[MasksT_contra]):
    """What the problem, the env and the tuner need of a reward suite (:class:`~samstar_env.rewards.RewardSuite`)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def reward_space(self) -> spaces.Box: ...

    def evaluate_with_details(
        self, masks: MasksT_contra, image: Micrograph, prior: PhysicsPrior, *, params: AmgParams | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]: ...

    def scalarize(self, vector: np.ndarray | Sequence[float]) -> Any: ...


class ProblemLike(Protocol[EvaluationT_co]):
    """What an agent needs of a problem (:class:`~samstar_env.problem.TuningProblem` has it)."""

    @property
    def search_space(self) -> ParamSpace: ...

    @property
    def reward_names(self) -> tuple[str, ...]: ...

    def evaluate(self, params: AmgParams) -> EvaluationT_co: ...
