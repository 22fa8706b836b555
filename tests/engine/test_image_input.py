"""Image conversion to SAM's (H, W, 3) uint8 input."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.data import Micrograph
from samstar_env.engine import MaskEngine, to_sam_image
from samstar_env.params import AmgParams


def test_uint8_rgb_passes_through_untouched():
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    assert to_sam_image(rgb) is rgb


def test_micrograph_uses_to_rgb_uint8():
    m = Micrograph(image=np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5))
    assert np.array_equal(to_sam_image(m), m.to_rgb_uint8())


@pytest.mark.parametrize(
    ("arr", "expected_grey"),
    [
        (np.array([[0, 128], [255, 7]], np.uint8), [[0, 128], [255, 7]]),
        (np.array([[100, 300], [200, 100]], np.uint16), [[0, 255], [128, 0]]),
        (np.array([[-1.0, 1.0], [0.0, 1.0]]), [[0, 255], [128, 255]]),
        (np.array([[False, True], [True, False]]), [[0, 255], [255, 0]]),
        (np.zeros((2, 2), np.float32), [[0, 0], [0, 0]]),
    ],
)
def test_grey_arrays_follow_normalize_image(arr, expected_grey):
    out = to_sam_image(arr)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert np.array_equal(out[:, :, 0], np.array(expected_grey)) and np.array_equal(out[:, :, 0], out[:, :, 2])


def test_rgba_and_single_channel():
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = 255
    assert np.array_equal(to_sam_image(rgba), np.full((3, 3, 3), 90, np.uint8))
    assert to_sam_image(np.ones((3, 3, 1), np.uint16)).shape == (3, 3, 3)


def test_micrograph_and_its_array_share_cache_entries(random_sam):
    grey = np.random.default_rng(0).random((48, 40)).astype(np.float32)
    grey[0, :2] = (0.0, 1.0)  # min-max scaling of a float array is then the identity
    engine = MaskEngine(random_sam)
    p = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    a = engine.generate(Micrograph(image=grey), p)
    b = engine.generate(grey, p)
    assert np.array_equal(a.masks, b.masks) and engine.stats.proposal_misses == 1


@pytest.mark.parametrize(
    ("arr", "exc", "match"),
    [
        (np.array([[0.0, np.nan]]), ValueError, "NaN or Inf"),
        (np.array([[0.0, np.inf]], np.float32), ValueError, "NaN or Inf"),
        (np.zeros((4, 4, 2)), ValueError, "unsupported shape"),
        (np.zeros((2, 3, 4, 3)), ValueError, "unsupported shape"),
        (np.zeros(5), ValueError, "unsupported shape"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
        (np.array([["a", "b"]]), TypeError, "dtype"),
    ],
)
def test_bad_images_raise_clear_errors(arr, exc, match):
    with pytest.raises(exc, match=match):
        to_sam_image(arr)


def test_array_input_hashed_once_until_changed_in_place(structured_sam, blob_image, monkeypatch):
    import samstar_env.engine.engine as engine_module

    calls = []
    real = engine_module.image_fingerprint
    monkeypatch.setattr(engine_module, "image_fingerprint", lambda rgb: calls.append(1) or real(rgb))
    engine = MaskEngine(structured_sam)
    img = blob_image.copy()
    p = AmgParams(points_per_side=4)
    engine.generate(img, p)
    engine.generate(img, p.replace(pred_iou_thresh=0.5))
    assert len(calls) == 1  # the same, unchanged array: its memoized hash
    img[:40] = 255 - img[:40]  # changed in place: hashed again, and decoded as a new image
    misses = engine.stats.proposal_misses
    engine.generate(img, p)
    assert len(calls) == 2 and engine.stats.proposal_misses == misses + 1
    engine.generate(img.copy(), p)  # another object with equal pixels: hashed, then a cache hit
    assert len(calls) == 3 and engine.stats.proposal_misses == misses + 1
