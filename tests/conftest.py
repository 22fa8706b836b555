"""Shared fixtures: a session-scoped, randomly initialized small SAM for plumbing tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# The suite never reads or fills the user's decode cache; tests of the disk cache set their own.
os.environ["SAMSTAR_CACHE"] = "off"

from samstar_env.data.paths import data_root  # noqa: E402
from samstar_env.models.tiny import TinySamConfig, build_tiny_sam  # noqa: E402

# Small enough that a full AMG call on a 96x96 image takes well under a second on 2 CPU cores.
TEST_SAM_CONFIG = TinySamConfig(
    img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
    global_attn_indexes=(1,), prompt_dim=32, decoder_heads=2, decoder_mlp_dim=64,
)


@pytest.fixture(scope="session")
def random_sam():
    """A random-weight SAM (real segment_anything modules, 64-px input), seed 0."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return build_tiny_sam(TEST_SAM_CONFIG, seed=0)


@pytest.fixture
def emps_dev() -> Path:
    """Path to emps-dev; skips with a reason when the data are absent (e.g. outside contributors)."""
    root = data_root()
    if root is None or not (root / "emps-dev").is_dir():
        pytest.skip("EMPS data not found: set SAMSTAR_DATA to the folder holding emps-dev/")
    return root / "emps-dev"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
