"""The particle table equals skimage.measure.regionprops on drawn shapes."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from skimage.draw import disk, polygon
from skimage.measure import regionprops

from samstar_env.engine.maskset import MaskSet
from samstar_env.particles import (
    COLUMN_NAMES,
    columns_json,
    measure_particles,
    min_feret_diameter,
    save_size_histogram,
)


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


# -- the table from crops: equal to regionprops on the full frame, and never the (N, H, W) stack ----
def _random_dense(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Noisy rectangles, ellipses (some cut by the frame), single pixels and empty masks."""
    from skimage.draw import ellipse

    out = np.zeros((n, h, w), bool)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            r0, c0 = rng.integers(0, h - 1), rng.integers(0, w - 1)
            r1, c1 = rng.integers(r0 + 1, h + 1), rng.integers(c0 + 1, w + 1)
            out[i, r0:r1, c0:c1] = rng.random((r1 - r0, c1 - c0)) < 0.75
        elif kind == 1:
            rr, cc = ellipse(rng.uniform(-4, h + 4), rng.uniform(-4, w + 4), rng.uniform(1, 12), rng.uniform(1, 12),
                             shape=(h, w), rotation=rng.uniform(0, 3))
            out[i, rr, cc] = True
        elif kind == 2:
            out[i, rng.integers(h), rng.integers(w)] = True
    return out  # kind 3 (and an ellipse wholly outside the frame) stays empty


def _annotations(dense: np.ndarray) -> dict:
    ms = MaskSet.from_masks(dense)
    return {k: getattr(ms, k) for k in ("boxes_xywh", "predicted_iou", "stability_score", "point_coords", "crop_boxes_xywh")}


def _crop_built(dense: np.ndarray, rng: np.random.Generator) -> MaskSet:
    """The same masks the way the engine hands them out: each on a window (here up to 2 px larger than
    its tight box, clipped to the frame), stored in the engine's encoded form, no dense array."""
    from samstar_env.engine.maskset import MaskCrops
    from samstar_env.engine.rle import encode_mask

    tight = MaskCrops.from_dense(dense)
    h, w = dense.shape[1:]
    origins, shapes, sources = [], [], []
    for i in range(len(dense)):
        (r, c), (hh, ww) = tight.origins_rc[i], tight.shapes_hw[i]
        if hh:
            r, c, r1, c1 = max(r - rng.integers(3), 0), max(c - rng.integers(3), 0), min(r + hh + rng.integers(3), h), min(c + ww + rng.integers(3), w)
            hh, ww = r1 - r, c1 - c
        crop = dense[i, r : r + hh, c : c + ww]
        origins.append((r, c))
        shapes.append((hh, ww))
        sources.append(encode_mask(crop) if crop.size else crop)
    return MaskSet(crops=MaskCrops(np.array(origins).reshape(-1, 2), np.array(shapes).reshape(-1, 2), tuple(sources)),
                   image_shape=(h, w), **_annotations(dense))


def _full_frame_reference(dense: np.ndarray, image: np.ndarray | None) -> dict[str, list[float]]:
    """The pixel columns measured by regionprops on each mask's full frame (what the table meant before crops)."""
    from samstar_env.particles import _feret_min_px

    h, w = dense.shape[1:]
    img = np.full((h, w), np.nan) if image is None else image
    out: dict[str, list[float]] = {c: [] for c in COLUMN_NAMES if not c.endswith(("_nm", "_nm2"))}
    for i, m in enumerate(dense):
        if not m.any():
            continue
        r = _ref(m, img)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        major, minor = r.axis_major_length, r.axis_minor_length
        vals = {
            "label": i + 1, "area_px": r.area, "equivalent_diameter_px": r.equivalent_diameter_area,
            "perimeter_px": r.perimeter,
            "circularity": 4 * math.pi * r.area / r.perimeter**2 if r.perimeter > 0 else math.nan,
            "aspect_ratio": major / minor if minor > 0 else math.inf, "solidity": r.solidity,
            "feret_max_px": r.feret_diameter_max, "feret_min_px": _feret_min_px(r),
            "centroid_x_px": r.centroid[1], "centroid_y_px": r.centroid[0], "mean_intensity": r.intensity_mean,
            "touches_border": float(rows[0] == 0 or cols[0] == 0 or rows[-1] == h - 1 or cols[-1] == w - 1),
        }
        for c in out:
            out[c].append(float(vals[c]))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_table_from_crops_equals_the_full_frame_measurement(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(12, 70)), int(rng.integers(12, 70))
    dense = _random_dense(rng, int(rng.integers(4, 20)), h, w)
    image = rng.random((h, w)) if seed % 3 else None
    px = 0.37 if seed % 2 else None
    lazy = _crop_built(dense, rng)
    tables = [measure_particles(m, image, pixel_size_nm=px)
              for m in (dense, MaskSet.from_dense(dense, **_annotations(dense)), lazy)]
    assert "masks" not in lazy.__dict__  # measured from its crops
    ref = _full_frame_reference(dense, image)
    for c, values in ref.items():
        # Centroids are offset-added (crop + origin): equal to the full frame's up to rounding.
        np.testing.assert_allclose(tables[0][c], values, rtol=1e-12, atol=1e-12, err_msg=c)
    for t in tables[1:]:  # the three inputs give the very same table
        assert (t.pixel_size_nm, t.pixel_size_source) == (tables[0].pixel_size_nm, tables[0].pixel_size_source)
        for c in COLUMN_NAMES:
            np.testing.assert_array_equal(t[c], tables[0][c], err_msg=c)


def test_border_flag_from_crops_is_about_the_image_frame_only():
    from samstar_env.engine.maskset import MaskCrops

    h, w = 40, 64
    # (mask box r0, c0, r1, c1, stored window r0, c0, r1, c1): top, bottom, left, right, two interior ones.
    cases = [
        ((0, 10, 5, 20), (0, 9, 6, 21)),
        ((33, 10, 40, 20), (32, 10, 40, 20)),
        ((10, 0, 20, 4), (10, 0, 20, 4)),
        ((10, 58, 20, 64), (9, 57, 21, 64)),
        ((15, 20, 25, 32), (15, 20, 25, 32)),  # ends on column 32: an inner tile border, not the frame's
        ((1, 1, 39, 63), (0, 0, 40, 64)),  # its stored window is the whole frame, the mask 1 px inside
    ]
    crops = []
    for (r0, c0, r1, c1), (wr0, wc0, wr1, wc1) in cases:
        crop = np.zeros((wr1 - wr0, wc1 - wc0), bool)
        crop[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0] = True
        crops.append(crop)
    n = len(cases)
    ms = MaskSet(
        crops=MaskCrops(np.array([c[1][:2] for c in cases]), np.array([x.shape for x in crops]), tuple(crops)),
        boxes_xywh=np.zeros((n, 4)), predicted_iou=np.ones(n, np.float32), stability_score=np.ones(n, np.float32),
        point_coords=np.zeros((n, 2)), crop_boxes_xywh=np.zeros((n, 4)), image_shape=(h, w),
    )
    t = measure_particles(ms, np.zeros((h, w)))
    assert "masks" not in ms.__dict__
    assert t["touches_border"].tolist() == [1, 1, 1, 1, 0, 0]
    assert t.rows()[0]["touches_border"] == 1 and isinstance(t.rows()[0]["touches_border"], int)
    assert any(c["name"] == "touches_border" and "first/last row or column" in c["definition"] for c in json.loads(columns_json()))
