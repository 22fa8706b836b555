"""ImageJ ROI sets: one polygon per mask, named by its label, enclosing the mask's pixels in ImageJ's convention."""

from __future__ import annotations

import numpy as np
import pytest
import roifile
from matplotlib.path import Path as MplPath
from scipy import ndimage as ndi

from samstar_env.engine.maskset import MaskSet
from samstar_env.imagej_rois import mask_outline, write_imagej_rois
from tests.test_particles import _crop_built, _random_dense


def _imagej_fill(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels ImageJ puts in a polygon ROI: those whose centre (x + 0.5, y + 0.5) lies inside
    (ij.process.PolygonFiller: pixel (0, 0) is the square between the corners (0, 0) and (1, 1))."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    return MplPath(xy).contains_points(centres).reshape(shape)


def _filled_part(mask: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The 8-connected part of ``mask`` that ``inside`` covers, holes filled (it must cover exactly one)."""
    parts, _ = ndi.label(mask, structure=np.ones((3, 3), bool))
    ids = np.unique(parts[inside & mask])
    assert len(ids) == 1 and ids[0] > 0
    return ndi.binary_fill_holes(parts == ids[0])


@pytest.mark.parametrize("seed", range(4))
def test_roi_set_reads_back_one_polygon_per_mask_in_label_order(tmp_path, seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 70)), int(rng.integers(20, 70))
    dense = _random_dense(rng, 17, h, w)  # some empty: no label, no ROI
    ms = _crop_built(dense, rng)
    path = write_imagej_rois(ms, tmp_path / "x_rois.zip")
    assert "masks" not in ms.__dict__  # traced on the crops
    rois = roifile.roiread(path)  # a list for a zip
    present = [i for i in range(len(dense)) if dense[i].any()]
    assert len(rois) == len(present)
    assert [r.name for r in rois] == [f"{i + 1:04d}" for i in present]  # label i + 1 of the label TIFF, in order
    labels = ms.to_label_image()
    for r, i in zip(rois, present, strict=True):
        assert r.roitype == roifile.ROI_TYPE.POLYGON
        xy = r.coordinates().astype(np.float64)
        rows, cols = np.flatnonzero(dense[i].any(axis=1)), np.flatnonzero(dense[i].any(axis=0))
        # Inside the mask's box in ImageJ's pixel-corner coordinates: x in [c0, c1], y in [r0, r1].
        assert cols[0] <= xy[:, 0].min() and xy[:, 0].max() <= cols[-1] + 1
        assert rows[0] <= xy[:, 1].min() and xy[:, 1].max() <= rows[-1] + 1
        inside = _imagej_fill(xy, (h, w))
        np.testing.assert_array_equal(inside, _filled_part(dense[i], inside))  # Fiji's ROI = the mask's pixels
        assert (labels[inside & dense[i]] > 0).all()
        np.testing.assert_allclose(xy, mask_outline(ms, i), atol=1e-4)  # float32 on disk


def test_a_rectangle_a_pixel_a_ring_and_two_parts():
    h, w = 30, 40
    m = np.zeros((5, h, w), bool)
    m[0, 2:5, 3:7] = True  # rectangle
    m[1, 29, 39] = True  # single pixel in the corner of the frame
    m[2, 10:20, 10:20] = True
    m[2, 13:17, 13:17] = False  # a ring: its hole is filled in the ROI
    m[3, 0:3, 25:28] = True
    m[3, 20:28, 25:38] = True  # two parts: the larger one is traced
    m[4, 22:24, 2:4] = True
    m[4, 24:26, 4:6] = True  # two blocks touching at a corner: one 8-connected part
    ms = MaskSet.from_masks(m)
    for i, expect in enumerate(
        [m[0], m[1], ndi.binary_fill_holes(m[2]), np.pad(m[3, 20:, :], ((20, 0), (0, 0))), m[4]]
    ):
        xy = mask_outline(ms, i)
        np.testing.assert_array_equal(_imagej_fill(xy, (h, w)), expect, err_msg=str(i))
    assert mask_outline(ms, 0).tolist() == [[6.5, 5.0], [3.5, 5.0], [3.0, 4.5], [3.0, 2.5], [3.5, 2.0], [6.5, 2.0], [7.0, 2.5], [7.0, 4.5]]
    assert mask_outline(ms, 1).tolist() == [[39.5, 30.0], [39.0, 29.5], [39.5, 29.0], [40.0, 29.5]]


def test_empty_sets_write_an_empty_zip(tmp_path):
    import zipfile

    path = write_imagej_rois(MaskSet.empty((8, 8)), tmp_path / "e.zip")
    assert zipfile.ZipFile(path).namelist() == []
    m = np.zeros((1, 8, 8), bool)
    m[0, 1, 1] = True
    path.write_bytes(b"stale")  # an old file is replaced, not appended to
    write_imagej_rois(MaskSet.from_masks(m), path)
    assert [r.name for r in roifile.roiread(path)] == ["0001"]
