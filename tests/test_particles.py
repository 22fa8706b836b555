"""The particle table equals skimage.measure.regionprops on drawn shapes."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from skimage.draw import disk, polygon
from skimage.measure import regionprops

from samstar_env.engine.maskset import MaskSet
from samstar_env.particles import COLUMN_NAMES, measure_particles, min_feret_diameter, save_size_histogram


def _ref(mask: np.ndarray, image: np.ndarray):
    return regionprops(mask.astype(np.uint8), intensity_image=image)[0]


def _caliper_sweep(mask: np.ndarray) -> np.ndarray:
    """Independent reference: widths of skimage's convex-hull outline at 0.005-degree steps."""
    from skimage.measure import find_contours

    hull = np.pad(_ref(mask, mask.astype(float)).image_convex, 2).astype(float)
    pts = np.vstack(find_contours(hull, 0.5, fully_connected="high"))
    ang = np.linspace(0, np.pi, 36001)
    proj = pts @ np.stack([np.cos(ang), np.sin(ang)])
    return proj.max(axis=0) - proj.min(axis=0)


@pytest.fixture
def image(rng) -> np.ndarray:
    return rng.random((80, 100))


def test_disk_matches_regionprops(image):
    m = np.zeros((80, 100), bool)
    m[disk((40, 50), 20)] = True
    t = measure_particles(m[None], image)
    ref = _ref(m, image)
    assert len(t) == 1 and t["label"][0] == 1
    assert t["area_px"][0] == ref.area
    assert t["equivalent_diameter_px"][0] == pytest.approx(ref.equivalent_diameter_area)
    assert t["equivalent_diameter_px"][0] == pytest.approx(40.0, abs=0.5)
    assert t["perimeter_px"][0] == pytest.approx(ref.perimeter)
    assert t["circularity"][0] == pytest.approx(4 * math.pi * ref.area / ref.perimeter**2)
    assert t["circularity"][0] == pytest.approx(1.0, abs=0.06)  # skimage's perimeter: 0.946 at r=20
    assert t["aspect_ratio"][0] == pytest.approx(1.0, abs=0.01)
    assert t["solidity"][0] == pytest.approx(ref.solidity)
    assert t["feret_max_px"][0] == pytest.approx(ref.feret_diameter_max)
    # skimage's disk(r=20) is 39 px across; its pixel-edge outline spans 39 to 41.4 px by direction
    assert 39.0 <= t["feret_min_px"][0] <= t["feret_max_px"][0] <= 42.0
    assert t["feret_min_px"][0] == pytest.approx(_caliper_sweep(m).min(), abs=1e-3)
    assert (t["centroid_y_px"][0], t["centroid_x_px"][0]) == pytest.approx(ref.centroid)
    assert t["mean_intensity"][0] == pytest.approx(ref.intensity_mean)
    assert t["touches_border"][0] == 0


def test_rectangle_feret_and_aspect_ratio(image):
    m = np.zeros((80, 100), bool)
    m[20:30, 30:70] = True  # 10 x 40 px
    t = measure_particles(m[None], image)
    ref = _ref(m, image)
    assert t["feret_max_px"][0] == pytest.approx(ref.feret_diameter_max)
    assert t["feret_max_px"][0] == pytest.approx(math.hypot(40, 10), abs=0.5)  # diagonal (corners cut)
    assert t["feret_min_px"][0] == pytest.approx(10.0)  # short side
    assert t["aspect_ratio"][0] == pytest.approx(ref.axis_major_length / ref.axis_minor_length)
    assert t["aspect_ratio"][0] == pytest.approx(4.0, rel=0.02)
    assert t["solidity"][0] == pytest.approx(1.0)
    assert t["perimeter_px"][0] == pytest.approx(ref.perimeter)
    assert (t["centroid_x_px"][0], t["centroid_y_px"][0]) == pytest.approx((49.5, 24.5))


def test_rotated_rectangle_min_feret():
    # A 40 x 10 rectangle rotated by 30 degrees: calipers still find the short side.
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    corners = np.array([[0, 0], [40, 0], [40, 10], [0, 10]], float) @ np.array([[c, s], [-s, c]])
    assert min_feret_diameter(corners) == pytest.approx(10.0)
    m = np.zeros((100, 100), bool)
    rr, cc = polygon(corners[:, 1] + 30, corners[:, 0] + 20, m.shape)
    m[rr, cc] = True
    t = measure_particles(m[None])
    # rasterized: the pixel-edge outline adds about a pixel's projected width (cos 30 + sin 30 = 1.37 px)
    assert 10.0 <= t["feret_min_px"][0] <= 12.0
    assert t["feret_min_px"][0] == pytest.approx(_caliper_sweep(m).min(), abs=1e-3)
    assert t["feret_max_px"][0] == pytest.approx(regionprops(m.astype(np.uint8))[0].feret_diameter_max)
    assert math.isnan(t["mean_intensity"][0])  # no image given


def test_nm_conversion_and_units(image):
    m = np.zeros((80, 100), bool)
    m[disk((40, 50), 12)] = True
    px = measure_particles(m[None], image)
    nm = measure_particles(m[None], image, pixel_size_nm=0.25, pixel_size_source="metadata")
    assert np.isnan(px["area_nm2"][0]) and px.unit == "px" and px.pixel_size_source == "none"
    assert nm["area_nm2"][0] == pytest.approx(nm["area_px"][0] * 0.0625)
    for col in ("equivalent_diameter", "perimeter", "feret_max", "feret_min"):
        assert nm[f"{col}_nm"][0] == pytest.approx(nm[f"{col}_px"][0] * 0.25)
    assert nm.unit == "nm" and nm.diameters[0] == nm["equivalent_diameter_nm"][0]
    assert nm.header_line().startswith("# pixel_size_nm=0.25, source=metadata")


def test_touches_border_flag():
    h, w = 40, 50
    masks = np.zeros((5, h, w), bool)
    masks[0, 10:20, 10:20] = True  # inside
    masks[1, 0:5, 20:30] = True  # top
    masks[2, 30:40, 20:30] = True  # bottom
    masks[3, 10:20, 0:3] = True  # left
    masks[4, 10:20, 45:50] = True  # right
    t = measure_particles(masks)
    assert t["touches_border"].tolist() == [0, 1, 1, 1, 1]


def test_overlapping_masks_measured_each_on_its_own():
    masks = np.zeros((3, 60, 60), bool)
    masks[0][disk((30, 30), 20)] = True  # aggregate
    masks[1][disk((30, 30), 6)] = True  # particle on top of it
    # mask 2 empty: dropped; labels keep the MaskSet index
    ms = MaskSet.from_masks(masks)
    t = measure_particles(ms)
    assert t["label"].tolist() == [1, 2]
    assert t["area_px"].tolist() == [masks[0].sum(), masks[1].sum()]  # not the visible (label-image) area


def test_csv_header_and_round_trip(tmp_path, image):
    m = np.zeros((2, 80, 100), bool)
    m[0][disk((40, 50), 10)] = True
    m[1, 0:10, 0:20] = True
    t = measure_particles(m, image)  # uncalibrated
    path = t.to_csv(tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "# pixel_size_nm=none, source=none (sizes in px; _nm columns are empty)"
    rows = list(csv.DictReader(lines[1:]))
    assert tuple(rows[0]) == COLUMN_NAMES
    assert rows[0]["area_nm2"] == "" and float(rows[0]["area_px"]) == t["area_px"][0]
    assert [r["touches_border"] for r in rows] == ["0", "1"]
    s = t.summary()
    assert s.count == 2 and s.unit == "px"
    assert s.median_diameter == pytest.approx(np.median(t["equivalent_diameter_px"]))
    png = save_size_histogram(t.diameters, tmp_path / "h.png", unit="px")
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3


def test_empty_input():
    t = measure_particles(np.zeros((0, 10, 10), bool))
    assert len(t) == 0 and t.summary().count == 0 and math.isnan(t.summary().mean_diameter)
