"""Fixtures for the reward tests (helpers live in reward_shapes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.data.micrograph import Micrograph, PhysicsPrior


@pytest.fixture
def blank128() -> Micrograph:
    return Micrograph(np.zeros((128, 128), np.float32), pixel_size_nm=1.0, modality="haadf")


@pytest.fixture
def sphere_prior() -> PhysicsPrior:
    return PhysicsPrior((10.0, 30.0), shape="sphere", modality="haadf", pixel_size_nm=1.0, aspect_ratio_max=1.4)


@pytest.fixture
def cube_prior() -> PhysicsPrior:
    return PhysicsPrior((10.0, 30.0), shape="cube", modality="haadf", pixel_size_nm=1.0, aspect_ratio_max=1.3)
