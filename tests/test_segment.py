"""samstar segment / samstar_env.segment: files, formats, pixel-size precedence."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

import samstar_env
from samstar_env.cli import main
from samstar_env.data.loaders import save_tiff_with_pixel_size
from samstar_env.params import AmgParams

# Loose thresholds so a random-weight SAM still returns masks; 4x4 points keep it fast.
PARAMS = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.9)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, random_sam):
    from samstar_env.models.checkpoint import save_checkpoint
    from tests.conftest import TEST_SAM_CONFIG

    path = tmp_path_factory.mktemp("model") / "random_sam.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, path)
    return path


@pytest.fixture
def images(tmp_path, rng):
    from imageio.v3 import imwrite

    a = tmp_path / "calibrated.tif"
    save_tiff_with_pixel_size(a, (rng.random((72, 96)) * 4000).astype(np.uint16), 0.5)
    b = tmp_path / "plain.png"
    imwrite(b, (rng.random((64, 64)) * 255).astype(np.uint8))
    return a, b


def test_cli_writes_readable_files(tmp_path, images, checkpoint):
    params = tmp_path / "best_params.json"
    params.write_text(json.dumps({"params": PARAMS.to_dict(), "rewards": {"x": 0.5}}))
    out = tmp_path / "out"
    rc = main(["segment", *map(str, images), "--params", str(params), "--model", str(checkpoint), "-o", str(out)])
    assert rc == 0
    for stem, shape, px in (("calibrated", (72, 96), 0.5), ("plain", (64, 64), None)):
        with tifffile.TiffFile(out / f"{stem}_labels.tif") as tif:
            lab = tif.asarray()
            assert lab.dtype == np.uint16 and lab.shape == shape
            if px is not None:
                assert tif.imagej_metadata["unit"] == "nm"
                num, den = tif.pages[0].tags["XResolution"].value
                assert den / num == pytest.approx(px)
        from matplotlib.image import imread

        assert imread(out / f"{stem}_overlay.png").shape[:2] == shape
        lines = (out / f"{stem}_particles.csv").read_text().splitlines()
        src = "metadata" if px is not None else "none"
        assert lines[0].startswith(f"# pixel_size_nm={px if px is not None else 'none'}, source={src}")
        rows = list(csv.DictReader(lines[1:]))
        assert len(rows) == len(np.unique(lab[lab > 0])) or len(rows) >= len(np.unique(lab[lab > 0]))
        assert {int(r["label"]) for r in rows} >= set(np.unique(lab[lab > 0]).tolist())
    summary = json.loads((out / "summary.json").read_text())
    assert [im["name"] for im in summary["images"]] == ["calibrated", "plain"]
    assert summary["params"]["points_per_side"] == 4 and summary["all"]["unit"] == "px"
    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert [r["image"] for r in rows] == ["calibrated", "plain", "ALL"]
    assert (out / "size_histogram.png").stat().st_size > 0


def test_python_api_and_pixel_size_precedence(tmp_path, images, random_sam):
    calibrated, plain = images
    # No option: the file's calibration, else pixels.
    res = samstar_env.segment([calibrated, plain], params=PARAMS, model=random_sam)
    assert [r.pixel_size_source for r in res] == ["metadata", "none"]
    assert res[0].table.pixel_size_nm == 0.5 and res[1].table.unit == "px"
    # An explicit option wins over the file (the loaders' rule; the loader warns on a mismatch).
    with pytest.warns(UserWarning, match="overrides"):
        res2 = samstar_env.segment(calibrated, params=PARAMS, model=random_sam, pixel_size_nm=2.0)
    assert res2[0].pixel_size_source == "option" and res2[0].table.pixel_size_nm == 2.0
    assert res2[0].table.header_line().startswith("# pixel_size_nm=2.0, source=option")
    r = res[0]
    np.testing.assert_array_equal(r.labels, r.masks.to_label_image().astype(np.uint16))
    assert len(r.masks) > 0 and set(r.timings_s) == {"segment", "measure", "write"} and r.files == {}
    assert r.table["area_nm2"] == pytest.approx(r.table["area_px"] * 0.25)


def test_segment_function_is_exported_in_any_import_order(random_sam, rng):
    import samstar_env.segmentation as mod  # importing the module must not shadow the function

    img = rng.random((64, 64))
    out = samstar_env.segment(img, params=PARAMS, model=random_sam)
    assert mod.segment is not None and isinstance(out[0], mod.SegmentationResult)
    assert out[0].name == "image000" and out[0].pixel_size_source == "none"


def test_missing_params_file_is_a_clear_error(tmp_path, images, checkpoint, capsys):
    rc = main(["segment", str(images[1]), "--params", str(tmp_path / "nope.json"), "--model", str(checkpoint), "-o", str(tmp_path / "o")])
    assert rc == 2 and "nope.json" in capsys.readouterr().err


def test_direct_amg_equals_engine(random_sam, rng):
    # segment/stream use a MaskEngine per new image; it must give plain AMG's masks.
    from samstar_env.engine import MaskEngine
    from samstar_env.segmentation import DirectAmg, resolve_engine

    img = (rng.random((64, 80)) * 255).astype(np.uint8)
    a = DirectAmg(random_sam).generate(img, PARAMS)
    b = MaskEngine(random_sam).generate(img, PARAMS)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_allclose(a.predicted_iou, b.predicted_iou, atol=1e-6)
    seg = resolve_engine(random_sam)
    assert isinstance(seg, MaskEngine) and seg.disk is None
    np.testing.assert_array_equal(seg.generate(img, PARAMS).masks, a.masks)


def test_large_images_are_tiled_automatically_with_rois_that_match_the_labels(tmp_path, rng, checkpoint, capsys):
    import roifile
    from scipy import ndimage as ndi

    from samstar_env.engine.maskset import MaskSet
    from tests.test_imagej_rois import _filled_part, _imagej_fill

    # The test model's input is 64 px: a 160 x 150 image is tiled (32-px tiles, 8-px halo), a 96 x 100 one is not.
    big, small = tmp_path / "big.tif", tmp_path / "small.tif"
    save_tiff_with_pixel_size(big, (rng.random((160, 150)) * 4000).astype(np.uint16), 0.5)
    save_tiff_with_pixel_size(small, (rng.random((96, 100)) * 4000).astype(np.uint16), 0.5)
    params = tmp_path / "p.json"
    params.write_text(PARAMS.to_json())
    out = tmp_path / "out"
    assert main(["segment", str(big), str(small), "--params", str(params), "--model", str(checkpoint), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "big: tiles of 32 px with a halo of 8 px, automatic" in err and "small:" not in err
    summary = json.loads((out / "summary.json").read_text())
    by_name = {im["name"]: im for im in summary["images"]}
    assert (by_name["big"]["tile_shape"], by_name["big"]["halo"]) == (32, 8) and by_name["small"]["tiling"] == "no tiles"

    labels = tifffile.imread(out / "big_labels.tif")
    rois = roifile.roiread(out / "big_rois.zip")
    ms = MaskSet.from_labels(labels)  # the labels' masks (an overlap may hide part of one)
    assert len(rois) == by_name["big"]["n_masks"] >= 10
    assert [r.name for r in rois] == [f"{k:04d}" for k in range(1, len(rois) + 1)]
    # The same image in Python (same tiles, same masks): ROI k is mask k - 1's outline in Fiji's terms.
    again = samstar_env.segment(big, params=PARAMS, model=str(checkpoint))[0]
    np.testing.assert_array_equal(again.labels, labels)
    assert "masks" not in again.masks.__dict__  # labels and table came from the crops
    for r in rois:
        mask = again.masks.full(int(r.name) - 1)
        inside = _imagej_fill(r.coordinates(), labels.shape)
        # One 8-connected part of the mask, holes filled: the largest (random weights give ragged masks).
        np.testing.assert_array_equal(inside, _filled_part(mask, inside))
        parts, n = ndi.label(mask, structure=np.ones((3, 3), bool))
        assert inside.sum() >= max(ndi.binary_fill_holes(parts == j).sum() for j in range(1, n + 1)) - 1
    assert len(ms) <= len(rois)

    # --tile-shape 0 turns it off; an explicit tile takes a quarter-tile halo by default.
    assert main(["segment", str(big), "--params", str(params), "--model", str(checkpoint), "-o", str(tmp_path / "o2"),
                 "--tile-shape", "0", "--no-rois"]) == 0
    assert "tiles of" not in capsys.readouterr().err and not (tmp_path / "o2" / "big_rois.zip").exists()
    res = samstar_env.segment(big, params=PARAMS, model=str(checkpoint), tile_shape=80)
    assert (res[0].params.tile_shape, res[0].params.halo) == (80, 20)
    with pytest.raises(Exception, match="--tile-shape 16 is smaller than the halo 40"):
        samstar_env.segment(big, params=PARAMS, model=str(checkpoint), tile_shape=16, halo=40)


def test_particle_table_reads_crops_only_and_flags_the_image_border():
    from samstar_env.engine.maskset import MaskCrops, MaskSet
    from samstar_env.particles import measure_particles
    from samstar_env.segmentation import overlay_rgb

    h, w = 40, 50
    boxes = [(0, 10, 5, 20), (35, 10, 40, 20), (10, 0, 20, 4), (10, 46, 20, 50), (15, 20, 25, 30)]
    crops = MaskCrops(np.array([b[:2] for b in boxes]), np.array([(b[2] - b[0], b[3] - b[1]) for b in boxes]),
                      tuple(np.ones((b[2] - b[0], b[3] - b[1]), bool) for b in boxes))
    n = len(boxes)
    ms = MaskSet(crops=crops, boxes_xywh=np.zeros((n, 4)), predicted_iou=np.ones(n, np.float32),
                 stability_score=np.ones(n, np.float32), point_coords=np.zeros((n, 2)),
                 crop_boxes_xywh=np.zeros((n, 4)), image_shape=(h, w))
    table = measure_particles(ms, np.zeros((h, w)))
    overlay_rgb(np.zeros((h, w)), ms)
    assert "masks" not in ms.__dict__  # neither built the (N, H, W) stack
    assert table["touches_border"].tolist() == [1, 1, 1, 1, 0]
    assert table["area_px"].tolist() == [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    dense = measure_particles(ms.masks, np.zeros((h, w)))  # the dense form gives the same table
    for c in table.columns:
        np.testing.assert_array_equal(table[c], dense[c])


def test_segment_outputs_come_from_the_crops(tmp_path):
    """labels, overlay, table and ROI set of a crop-built MaskSet (as the engine hands out): no (N, H, W) stack."""
    import roifile
    from matplotlib import colormaps
    from matplotlib.image import imread
    from skimage.segmentation import find_boundaries

    from samstar_env.data.micrograph import Micrograph
    from samstar_env.engine.maskset import MaskSet
    from samstar_env.segmentation import overlay_rgb, segment_one
    from tests.test_particles import _crop_built, _random_dense

    rng = np.random.default_rng(5)
    h, w = 48, 56
    dense = _random_dense(rng, 14, h, w)

    class CropEngine:
        def __init__(self):
            self.made = []

        def generate(self, image, params=None):
            self.made.append(_crop_built(dense, rng))
            return self.made[-1]

    engine = CropEngine()
    micrograph = Micrograph(image=rng.random((h, w)).astype(np.float32), name="m", pixel_size_nm=0.5)
    res = segment_one(micrograph, engine, PARAMS, pixel_size_source="metadata", out_dir=tmp_path, stem="m")
    ms = engine.made[0]
    assert res.masks is ms and "masks" not in ms.__dict__
    assert sorted(res.files) == ["labels", "overlay", "rois", "table"]
    assert res.files["rois"] == tmp_path / "m_rois.zip"
    present = [i for i in range(len(dense)) if dense[i].any()]
    assert [r.name for r in roifile.roiread(res.files["rois"])] == [f"{i + 1:04d}" for i in present]
    np.testing.assert_array_equal(tifffile.imread(res.files["labels"]), MaskSet.from_masks(dense).to_label_image())
    assert res.table["label"].tolist() == [i + 1 for i in present]

    # The overlay equals each mask's inner outline found on the full frame, painted in mask order.
    grey = np.clip(np.rint(micrograph.image.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    ref = np.repeat(grey[:, :, None], 3, axis=2)
    for i in present:
        ref[find_boundaries(dense[i], mode="inner")] = (np.asarray(colormaps["tab20"](i % 20)[:3]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(overlay_rgb(micrograph.image, ms), ref)
    assert "masks" not in ms.__dict__
    assert imread(res.files["overlay"]).shape[:2] == (h, w)

    # --no-rois / rois=False: no ROI set.
    (tmp_path / "b").mkdir()
    res2 = segment_one(micrograph, engine, PARAMS, pixel_size_source="metadata", out_dir=tmp_path / "b", stem="m", rois=False)
    assert "rois" not in res2.files and not (tmp_path / "b" / "m_rois.zip").exists()
    assert "masks" not in engine.made[1].__dict__
