"""Shared geometry against a plain per-mask reference, lazy measurement, and pinned reward values.

``mask_geometry`` measures shape features lazily, on box crops, with shortcuts (hulls from the row
ends only, one batched eigen-solve, ...). These tests hold it to a plain per-mask reference on the
full frame with independent routines (scipy's exact distance transform, the hull of every pixel,
moments from the pixel coordinates), check that each preset measures only what its rewards read,
and pin every reward's value on a drawn scene so that a speed-up cannot move a reward unnoticed.

When a reward's definition changes on purpose, regenerate the pinned table with
``python tests/rewards/test_geometry_values.py`` and paste its output over ``PINNED``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from reward_shapes import draw_disk, draw_square, maskset
from scipy import ndimage as ndi
from skimage import measure

from samstar_env.data import synthetic
from samstar_env.data.micrograph import Micrograph, PhysicsPrior, SizeComponent
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards import get_reward, list_rewards, mask_geometry, preset
from samstar_env.rewards.geometry import BACKGROUND_AREA_FRACTION, MAX_ASPECT_RATIO, SHAPE_FEATURES

S = (128, 128)
TOL = 1e-9


def scene_masks() -> list[np.ndarray]:
    """Masks covering every case the geometry distinguishes (order matters: it is the mask order)."""
    d = [
        draw_disk(S, (20, 20), 9),
        draw_square(S, (22, 60), 18, 30.0),  # rotated cube
        draw_disk(S, (20, 96), 6) | draw_disk(S, (20, 108), 6),  # two merged particles
        draw_disk(S, (60, 0), 8),  # cut by the left border
        draw_square(S, (64, 64), 24),  # axis-aligned cube
        draw_disk(S, (64, 64), 5),  # nested in the cube (a duplicate)
        draw_disk(S, (100, 30), 3),  # small particle
        draw_disk(S, (100, 100), 12) & ~draw_disk(S, (100, 100), 6),  # annulus: non-convex, with a hole
    ]
    line = np.zeros(S, bool)
    line[110, 50:80] = True  # one pixel wide
    pixel = np.zeros(S, bool)
    pixel[120, 120] = True
    ell = np.zeros(S, bool)
    ell[40:60, 100:106] = True
    ell[54:60, 100:120] = True  # L-shape
    corner = np.zeros(S, bool)
    corner[118:, :6] = True  # in the bottom-left corner
    return [*d, line, pixel, ell, corner, np.zeros(S, bool), np.ones(S, bool)]


def scene() -> tuple[MaskSet, Micrograph]:
    masks = scene_masks()
    img = np.full(S, 0.15, np.float32)
    for m in masks[:8]:
        img[m] = 0.85
    # Deterministic texture (no random stream, so the pinned values do not hang on a generator).
    rr, cc = np.mgrid[: S[0], : S[1]]
    img += (0.04 * np.sin(rr * 0.9) * np.cos(cc * 1.3)).astype(np.float32)
    return maskset(*masks), Micrograph(np.clip(img, 0, 1).astype(np.float32), pixel_size_nm=1.0, modality="haadf")


PRIORS = {
    "sphere": PhysicsPrior((8.0, 30.0), shape="sphere", modality="haadf", aspect_ratio_max=1.4),
    "cube": PhysicsPrior((8.0, 30.0), shape="cube", modality="haadf", aspect_ratio_max=1.3),
    "irregular": PhysicsPrior((2.0, 40.0), shape="irregular", modality="haadf", small_max_nm=8.0,
                              size_components=(SizeComponent(0.7, 5.0, 0.3), SizeComponent(0.3, 24.0, 0.3))),
}
PRESET_PRIOR = {"perovskite": "cube", "ito": "sphere", "auco": "irregular", "generic": "sphere"}


# --- reference: one mask at a time on the full frame -----------------------------------------
def reference_geometry(m: np.ndarray) -> dict[str, float]:
    """Every per-mask field for one (H, W) mask, the plain way (shape fields of an invalid mask: 0)."""
    h, w = m.shape
    rr, cc = np.nonzero(m)
    a = float(rr.size)
    out = {"area_px": a, "equivalent_diameter_px": np.sqrt(4.0 * a / np.pi),
           "is_background": a > BACKGROUND_AREA_FRACTION * h * w,
           "touches_border": bool(a and (rr.min() == 0 or cc.min() == 0 or rr.max() == h - 1 or cc.max() == w - 1)),
           "centroid_r": rr.mean() if a else 0.0, "centroid_c": cc.mean() if a else 0.0}
    out.update(dict.fromkeys(SHAPE_FEATURES, 0.0))
    if a == 0 or out["is_background"]:
        return out
    p = measure.perimeter_crofton(m, directions=4)
    hull = cv2.convexHull(np.stack([cc, rr], axis=1).astype(np.int32))  # every pixel, no shortcut
    corners = (hull.reshape(-1, 1, 2) + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int32)[None]).reshape(-1, 2)
    _, (rw, rh), _ = cv2.minAreaRect(corners)
    x, y = cc - cc.mean(), rr - rr.mean()
    cov = np.array([[np.mean(x * x), np.mean(x * y)], [np.mean(x * y), np.mean(y * y)]]) + np.eye(2) / 12.0
    ev = np.linalg.eigvalsh(cov)
    out.update(
        perimeter_px=p,
        circularity=min(1.0, 4 * np.pi * a / p**2) if p > 0 else 0.0,
        solidity=min(1.0, a / (cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + np.pi / 4)),
        inscribed_ratio=ndi.distance_transform_edt(np.pad(m, 1)).max() / np.sqrt(a / np.pi),  # exact EDT
        aspect_ratio=min(MAX_ASPECT_RATIO, np.sqrt(ev[1] / ev[0])),
        rect_fill=min(1.0, a / max(rw * rh, 1.0)),
        rect_aspect=max(rw, rh) / max(min(rw, rh), 1.0),
    )
    return out


def _mask_sets() -> dict[str, MaskSet]:
    sets = {"scene": scene()[0], "empty": MaskSet.empty(S)}
    from reward_corruptions import merge_neighbours, split_particles

    for task in ("perovskite", "ito", "auco"):
        m = synthetic.generate(task, 1, size=(192, 192))
        sets[f"{task}-gt"] = MaskSet.from_labels(m.labels)
        sets[f"{task}-merged"] = merge_neighbours(m)
        sets[f"{task}-split"] = split_particles(m)
    return sets


@pytest.fixture(scope="module")
def mask_sets() -> dict[str, MaskSet]:
    return _mask_sets()


@pytest.mark.parametrize("name", ["scene", "empty", "perovskite-gt", "perovskite-merged", "ito-gt", "ito-split",
                                  "auco-gt", "auco-split"])
def test_geometry_matches_per_mask_reference(mask_sets, name):
    ms = mask_sets[name]
    g = mask_geometry(ms)
    ref = [reference_geometry(np.asarray(m)) for m in ms.masks]
    assert g.n == len(ms)
    for field in ("area_px", "equivalent_diameter_px", "is_background", "touches_border", *SHAPE_FEATURES):
        want = np.array([r[field] for r in ref], float).reshape(-1)
        np.testing.assert_allclose(np.asarray(getattr(g, field), float), want, rtol=0, atol=TOL, err_msg=field)
    want_c = np.array([[r["centroid_r"], r["centroid_c"]] for r in ref]).reshape(-1, 2)
    np.testing.assert_allclose(g.centroid_rc, want_c, rtol=0, atol=TOL)
    h, w = ms.image_shape
    dense = np.asarray(ms.masks).reshape(len(ms), h * w)
    assert np.array_equal(g.flat_pixels.toarray(), dense)


def test_shape_features_are_deterministic(mask_sets):
    # OpenCV's precise distance transform varies in its last float32 bit with its thread split;
    # the geometry snaps it to the exact value, so repeated measurements agree bit for bit.
    ms = mask_sets["perovskite-merged"]
    runs = [mask_geometry(dataclasses.replace(ms)) for _ in range(3)]
    for field in SHAPE_FEATURES:
        assert all(np.array_equal(getattr(r, field), getattr(runs[0], field)) for r in runs[1:]), field


@pytest.mark.parametrize(("task", "unread"), [
    ("auco", set(SHAPE_FEATURES)),  # no shape reward in the AuCo preset
    ("perovskite", {"perimeter_px", "circularity"}),  # cubes: squareness, not circularity
    ("ito", {"rect_fill", "rect_aspect"}),  # spheres: circularity, not squareness
])
def test_presets_measure_only_what_they_read(task, unread):
    ms, img = scene()
    preset(task).evaluate(ms, img, PRIORS[PRESET_PRIOR[task]])
    g = mask_geometry(ms)
    measured = {f for f in SHAPE_FEATURES if f in vars(g)}
    assert measured == set(SHAPE_FEATURES) - unread


# --- pinned values ----------------------------------------------------------------------------
def compute_values() -> dict[str, list[float]]:
    """Every registered reward (but latency) under each prior, and each preset under its task's prior,
    each on a fresh MaskSet so that every reward measures what it needs by itself."""
    ms, img = scene()
    out: dict[str, list[float]] = {}
    names = [n for n in list_rewards() if n != "latency"]
    for shape, prior in PRIORS.items():
        out[f"rewards/{shape}"] = [float(get_reward(n)(dataclasses.replace(ms), img, prior)) for n in names]
    for task, shape in PRESET_PRIOR.items():
        fresh = dataclasses.replace(ms)
        out[f"preset/{task}"] = [float(fn(fresh, img, PRIORS[shape])) for fn in preset(task).functions]
    return out


# Recorded with the eager geometry (every feature of every mask measured up front), before it
# became lazy; the lazy geometry reproduces them to the last bit. Rewards version 3 changed
# aggregate_coverage (fragments on an aggregate cost) and small_particle_detection (F2, not recall).
PINNED: dict[str, list[float]] = {
    'rewards/sphere': [0.7956785913336644, 0.5833333333333334, 0.48212679801149083, 0.5902270744754124, 0.2857142857142857, 0.24469680737090208, 0.7857142857142857, 0.49869575695727236, 0.5902270744754124, 0.6931311986250398, 0.6428571428571429, 0.6666666666666666, 0.4630215149217403],
    'rewards/cube': [0.7956785913336644, 0.5833333333333334, 0.48212679801149083, 0.5902270744754124, 0.2857142857142857, 0.24469680737090208, 0.7857142857142857, 0.49869575695727236, 0.46009157705236275, 0.6931311986250398, 0.6428571428571429, 0.6666666666666666, 0.46009157705236275],
    'rewards/irregular': [0.7962835207979947, 0.5833333333333334, 0.48212679801149083, 0.5902270744754124, 0.2857142857142857, 0.24469680737090208, 0.7857142857142857, 0.49869575695727236, 0.5833333333333334, 0.49363271033161293, 0.7857142857142857, 0.625, 0.4688813906604956],
    'preset/perovskite': [0.49869575695727236, 0.46009157705236275, 0.7857142857142857, 0.6428571428571429, 0.2857142857142857, 0.24469680737090208],
    'preset/ito': [0.7857142857142857, 0.6931311986250398, 0.48212679801149083, 0.49869575695727236, 0.5902270744754124, 0.2857142857142857],
    'preset/auco': [0.0, 0.632853727094202, 0.49363271033161293, 0.2857142857142857, 0.3002386139641042, 0.48212679801149083],
    'preset/generic': [0.6428571428571429, 0.5902270744754124, 0.49869575695727236, 0.7857142857142857, 0.24469680737090208, 0.2857142857142857, 0.48212679801149083],
}


def test_reward_values_are_pinned():
    values = compute_values()
    assert values.keys() == PINNED.keys()
    for key, want in PINNED.items():
        np.testing.assert_allclose(values[key], want, rtol=0, atol=TOL, err_msg=key)


if __name__ == "__main__":
    for key, vals in compute_values().items():
        print(f"    {key!r}: [{', '.join(repr(v) for v in vals)}],")
