"""Shared type aliases and Protocols (one module, like stable-baselines3's common/type_aliases.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from samstar_env.data.micrograph import Micrograph, PhysicsPrior
    from samstar_env.engine.maskset import MaskSet

PathLike = str | os.PathLike
ArrayLike = np.ndarray | list | tuple
RewardVector = np.ndarray  # float32, shape (k,), every entry in [0, 1], higher is better


class RewardFn(Protocol):
    """A physics reward: ``f(masks, image, prior, **options) -> float in [0, 1]`` (higher is better)."""

    def __call__(self, masks: MaskSet, image: Micrograph, prior: PhysicsPrior, /) -> float: ...
