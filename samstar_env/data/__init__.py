"""Micrographs, physics priors, synthetic nanomaterial generators and image loaders."""

from samstar_env.data.micrograph import (
    MODALITIES,
    SHAPE_CLASSES,
    Micrograph,
    ParticleTruth,
    PhysicsPrior,
    SizeComponent,
)

__all__ = ["MODALITIES", "SHAPE_CLASSES", "Micrograph", "ParticleTruth", "PhysicsPrior", "SizeComponent"]
