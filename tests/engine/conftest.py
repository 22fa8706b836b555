"""Engine fixtures: a random SAM that gives localized, stable masks, a blob image, and a record comparer.

The plain random SAM gives near-constant small logits (every mask is the whole image, stability ~0),
so comparisons against AMG would be trivial; ``structured_sam`` fixes that without leaving
segment_anything's code (see :mod:`samstar_env.engine.testing`).
"""

from __future__ import annotations

import numpy as np
import pytest
from segment_anything import SamAutomaticMaskGenerator

from samstar_env.engine.testing import structure_random_sam


def _blob_image(h: int = 128, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w), 40.0)
    for _ in range(25):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 14)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(150, 250)
    img = (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


@pytest.fixture(scope="session")
def blob_image() -> np.ndarray:
    """128x160 (non-square) uint8 RGB image of bright discs on a dark, noisy background."""
    return _blob_image()


@pytest.fixture(scope="session")
def structured_sam(random_sam):
    """random_sam made to give localized, stable masks (see samstar_env.engine.testing)."""
    return structure_random_sam(random_sam, _blob_image())


def amg_reference(model, image: np.ndarray, params) -> list[dict]:
    """SamAutomaticMaskGenerator's records (binary masks); [] where AMG itself raises on an empty result."""
    kwargs = params.to_kwargs()
    kwargs["output_mode"] = "binary_mask"
    try:
        return SamAutomaticMaskGenerator(model, **kwargs).generate(image)
    except IndexError:
        # AMG's cross-crop NMS calls box_area on a (0,) tensor when no crop kept a mask.
        return []


def assert_same_records(got: list[dict], ref: list[dict]) -> None:
    """The exactness contract: same count and order, identical masks and geometry, scores to 1e-6."""
    assert len(got) == len(ref), f"{len(got)} masks vs AMG's {len(ref)}"
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert np.array_equal(g["segmentation"], r["segmentation"]), f"mask {i} differs"
        for k in ("area", "bbox", "point_coords", "crop_box"):
            assert g[k] == r[k], f"mask {i}: {k} {g[k]} != {r[k]}"
        for k in ("predicted_iou", "stability_score"):
            assert np.isclose(g[k], r[k], rtol=0, atol=1e-6, equal_nan=True), f"mask {i}: {k} {g[k]} != {r[k]}"


@pytest.fixture(scope="session")
def amg_ref():
    """:func:`amg_reference` (fixtures, because the tests folders are not packages)."""
    return amg_reference


@pytest.fixture(scope="session")
def same_records():
    """:func:`assert_same_records`."""
    return assert_same_records
