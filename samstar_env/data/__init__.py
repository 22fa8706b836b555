"""Micrographs, physics priors, synthetic nanomaterial generators and image loaders."""

from samstar_env.data.loaders import load_folder, load_image
from samstar_env.data.micrograph import (
    MODALITIES,
    SHAPE_CLASSES,
    Micrograph,
    ParticleTruth,
    PhysicsPrior,
    SizeComponent,
)

__all__ = ["MODALITIES", "SHAPE_CLASSES", "Micrograph", "ParticleTruth", "PhysicsPrior", "SizeComponent"]
__all__ += ["load_image", "load_folder"]

from samstar_env.data.synthetic import TASKS, generate, prior, split_seeds  # noqa: E402

__all__ += ["TASKS", "generate", "prior", "split_seeds"]
