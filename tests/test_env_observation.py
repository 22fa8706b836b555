"""Observation descriptors against drawn images with known answers (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.data.polarity import otsu_threshold, particle_split
from samstar_env.observation import (
    IMAGE_FEATURE_HIGH,
    IMAGE_FEATURE_LOW,
    IMAGE_FEATURE_NAMES,
    characteristic_diameter_px,
    describe_image,
    noise_sigma,
    thumbnail,
)


def disks(radius: float, *, n: int = 40, size: int = 256, seed: int = 0, bright: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    for cy, cx in rng.uniform(radius, size - radius, (n, 2)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1.0
    img = 0.15 + 0.6 * img
    return (img if bright else 1.0 - img).astype(np.float32)


@pytest.mark.parametrize("radius", [4.0, 8.0, 16.0])
def test_log_scale_finds_disk_diameter(radius):
    d = characteristic_diameter_px(disks(radius, n=max(10, int(2000 / radius**2))))
    # Scales are sampled at sqrt(2) steps: the answer is within one step of the true diameter.
    assert 2 * radius / np.sqrt(2) <= d <= 2 * radius * np.sqrt(2)


def test_descriptors_dark_particles_and_calibration():
    img = disks(8.0, bright=False)
    prior = PhysicsPrior(diameter_range_nm=(6.0, 10.0), modality="bf-tem")
    d = describe_image(Micrograph(img, pixel_size_nm=0.5), prior)
    assert d.polarity == -1.0
    assert 0.02 < d.foreground_fraction < 0.5  # the dark phase, not the background
    assert d.has_pixel_size == 1.0
    assert d.log2_scale_nm == pytest.approx(d.log2_scale_px + np.log2(0.5), abs=1e-6)
    assert abs(d.log2_scale_vs_prior) < 1.0  # 16 px x 0.5 nm = 8 nm, inside the prior's range
    # Unknown modality: polarity estimated from the image (particles are the minority phase).
    assert describe_image(Micrograph(img), None).polarity == -1.0
    assert describe_image(Micrograph(disks(8.0)), None).polarity == 1.0


def test_descriptors_are_bounded_and_ordered():
    d = describe_image(Micrograph(disks(6.0), name="x"))
    arr = d.to_array()
    assert arr.dtype == np.float32 and arr.shape == (len(IMAGE_FEATURE_NAMES),) == IMAGE_FEATURE_LOW.shape
    assert (arr >= IMAGE_FEATURE_LOW).all() and (arr <= IMAGE_FEATURE_HIGH).all()
    assert list(d.to_dict()) == list(IMAGE_FEATURE_NAMES)
    assert d.q01 <= d.q25 <= d.q50 <= d.q75 <= d.q99
    assert d.has_pixel_size == 0.0 and d.log2_scale_nm == 0.0
    # Constant image: everything still finite and in bounds.
    flat = describe_image(Micrograph(np.full((32, 32), 0.5, np.float32))).to_array()
    assert np.isfinite(flat).all() and (flat >= IMAGE_FEATURE_LOW).all() and (flat <= IMAGE_FEATURE_HIGH).all()


def test_noise_and_otsu_reference_values():
    rng = np.random.default_rng(1)
    assert noise_sigma(0.5 + 0.05 * rng.standard_normal((256, 256))) == pytest.approx(0.05, rel=0.05)
    assert noise_sigma(np.tile(np.linspace(0, 1, 64), (64, 1))) == pytest.approx(0.0, abs=1e-9)
    two = np.r_[np.full(500, 0.2), np.full(500, 0.8)]
    assert 0.2 < otsu_threshold(two) < 0.8
    assert otsu_threshold(np.full((8, 8), 0.5)) is None  # flat: no split


def test_thumbnail_area_average():
    img = np.zeros((100, 60), np.float32)
    img[:50] = 1.0
    t = thumbnail(Micrograph(img), 10)
    assert t.shape == (10, 10, 1) and t.dtype == np.uint8
    assert (t[:5] == 255).all() and (t[5:] == 0).all()
    assert thumbnail(Micrograph(np.ones((4, 4), np.float32)), 8).shape == (8, 8, 1)


@pytest.mark.parametrize("bright", [True, False])
def test_observation_and_rewards_share_one_polarity_rule(bright):
    from samstar_env.rewards.geometry import image_features

    img = disks(6.0, bright=bright)
    prior = PhysicsPrior(diameter_range_nm=(8.0, 16.0))  # unknown modality: polarity estimated from the image
    im = Micrograph(img, pixel_size_nm=1.0)
    split = particle_split(im, prior)
    assert split.polarity == ("bright" if bright else "dark")
    assert image_features(im, prior).polarity == split.polarity
    d = describe_image(im, prior)
    assert d.polarity == (1.0 if bright else -1.0)
    assert d.foreground_fraction == pytest.approx(split.particle_fraction(), abs=1e-6)
