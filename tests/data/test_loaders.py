"""Loaders: real EMPS data, calibrated TIFFs, every pixel type, and each kind of bad input."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from samstar_env.data import Micrograph, load_folder, load_image
from samstar_env.data.loaders import list_folder, read_array, save_tiff_with_pixel_size, unit_to_nm

# ------------------------------------------------------------------------------------------- emps-dev


@pytest.mark.data
def test_emps_folder_layout_detected_and_sorted(emps_dev: Path) -> None:
    ms = load_folder(emps_dev)
    ids = sorted(p.stem for p in (emps_dev / "images").glob("*.png"))
    assert [m.name for m in ms] == ids
    assert all(m.labels is not None and m.labels.shape == m.shape for m in ms)
    assert all(m.pixel_size_nm is None for m in ms)  # figure crops: the README gives no calibration


@pytest.mark.data
def test_emps_particle_counts_match_index(emps_dev: Path) -> None:
    with open(emps_dev / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:3]
    for row in rows:
        m = load_image(emps_dev / "images" / f"{row['id']}.png", labels=emps_dev / "segmaps" / f"{row['id']}.png")
        n = len(np.unique(m.labels[m.labels > 0]))
        assert n == int(row["n_particles"]), row["id"]


@pytest.mark.data
def test_emps_rgb_to_grey_is_exact(emps_dev: Path) -> None:
    path = sorted((emps_dev / "images").glob("*.png"))[0]
    m = load_image(path)
    rgb = iio.imread(path)
    assert m.original.shape == rgb.shape and m.original.ndim == 3
    # EMPS stores grey as RGB: one channel is taken as is, then 8-bit / 255.
    np.testing.assert_array_equal(m.image, rgb[:, :, 0].astype(np.float32) / np.float32(255))
    assert m.image.dtype == np.float32


@pytest.mark.data
def test_emps_labels_are_uint16_instance_ids(emps_dev: Path) -> None:
    seg = sorted((emps_dev / "segmaps").glob("*.png"))[0]
    m = load_folder(emps_dev, pattern=seg.name)[0]
    raw = iio.imread(seg)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(m.labels, raw.astype(np.int32))
    assert m.labels.dtype == np.int32 and m.metadata["labels_source"] == str(seg)


# ------------------------------------------------------------------------------------- calibrated TIFFs


def _ramp16(h: int = 48, w: int = 64) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 7 + 300).astype(np.uint16)


def test_16bit_tiff_round_trip_with_pixel_size(tmp_path: Path) -> None:
    arr = _ramp16()
    p = tmp_path / "cal.tif"
    save_tiff_with_pixel_size(p, arr, 0.1234567)
    m = load_image(p, modality="haadf")
    assert m.pixel_size_nm == pytest.approx(0.1234567, rel=1e-6)
    assert m.metadata["pixel_size_source"] == "tiff:imagej"
    np.testing.assert_array_equal(m.original, arr)
    assert m.original.dtype == np.uint16
    # 16-bit is scaled by its own min and max (normalize_image's rule).
    ref = (arr.astype(np.float64) - arr.min()) / (arr.max() - arr.min())
    np.testing.assert_allclose(m.image, ref.astype(np.float32))
    assert m.image.min() == 0.0 and m.image.max() == 1.0
    assert m.modality == "haadf" and m.name == "cal"


def test_tiff_saved_by_us_reads_as_imagej_in_tifffile(tmp_path: Path) -> None:
    p = tmp_path / "ij.tif"
    save_tiff_with_pixel_size(p, _ramp16(), 0.5)
    with tifffile.TiffFile(p) as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "nm"
        assert tif.pages[0].resolution == pytest.approx((2.0, 2.0))


@pytest.mark.parametrize(
    ("unit", "px_per_unit", "expected_nm"),
    [("nm", 4.0, 0.25), ("micron", 2000.0, 0.5), ("\\u00B5m", 1000.0, 1.0), ("um", 500.0, 2.0),
     ("A", 2.0, 0.05), ("cm", 1e7, 1.0)],
)
def test_imagej_tiff_written_by_tifffile(tmp_path: Path, unit: str, px_per_unit: float, expected_nm: float) -> None:
    p = tmp_path / "fiji.tif"
    tifffile.imwrite(p, _ramp16(), imagej=True, resolution=(px_per_unit, px_per_unit), metadata={"unit": unit})
    assert load_image(p).pixel_size_nm == pytest.approx(expected_nm, rel=1e-6)


def test_baseline_tiff_resolution_in_centimetres(tmp_path: Path) -> None:
    p = tmp_path / "cm.tif"
    tifffile.imwrite(p, _ramp16(), resolution=(2e7, 2e7), resolutionunit="CENTIMETER")
    m = load_image(p)
    assert m.pixel_size_nm == pytest.approx(0.5)
    assert m.metadata["pixel_size_source"] == "tiff:resolution"


def test_fei_sem_tiff_pixel_width(tmp_path: Path) -> None:
    # FEI/Thermo SEMs store an INI text in tag 34682 with the pixel width in metres, beside a 96 dpi.
    ini = "[User]\nDate=01/01/2020\n[Scan]\nPixelWidth=1.5e-09\nPixelHeight=1.5e-09\n"
    tifffile.imwrite(tmp_path / "sem.tif", _ramp16(), resolution=(96, 96), resolutionunit="INCH",
                     extratags=[(34682, "s", 0, ini, True)])
    m = load_image(tmp_path / "sem.tif", modality="sem")
    assert m.pixel_size_nm == pytest.approx(1.5) and m.metadata["pixel_size_source"] == "tiff:fei"


def test_inch_dpi_and_uncalibrated_tiffs_give_no_pixel_size(tmp_path: Path) -> None:
    # 72 dpi is what image editors write by default: not a calibration.
    tifffile.imwrite(tmp_path / "dpi.tif", _ramp16(), resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "plain.tif", _ramp16())
    tifffile.imwrite(tmp_path / "pix.tif", _ramp16(), imagej=True, metadata={"unit": "pixel"})
    assert [m.pixel_size_nm for m in load_folder(tmp_path)] == [None, None, None]


def test_explicit_pixel_size_overrides_file_and_warns(tmp_path: Path) -> None:
    p = tmp_path / "cal.tif"
    save_tiff_with_pixel_size(p, _ramp16(), 0.5)
    with pytest.warns(UserWarning, match=r"overrides the file's calibration of 0\.5 nm"):
        m = load_image(p, pixel_size_nm=0.2)
    assert m.pixel_size_nm == 0.2
    assert m.metadata["pixel_size_source"] == "argument"
    assert m.metadata["file_pixel_size_nm"] == pytest.approx(0.5)


def test_pixel_size_argument_used_when_file_has_none(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.eye(8, dtype=np.uint8) * 200)
    assert load_image(tmp_path / "a.png").pixel_size_nm is None
    m = load_folder(tmp_path, pixel_size_nm=1.5)[0]
    assert m.pixel_size_nm == 1.5 and m.metadata["pixel_size_source"] == "argument"


def test_unit_table() -> None:
    assert unit_to_nm("µm") == unit_to_nm("μm") == unit_to_nm("micron") == 1000.0
    assert unit_to_nm("Å") == unit_to_nm("angstrom") == 0.1
    assert unit_to_nm("pixel") is None and unit_to_nm(None) is None


# ------------------------------------------------------------------------------------------ pixel types


def test_8bit_png_divided_by_255(tmp_path: Path) -> None:
    arr = np.array([[0, 51], [102, 255]], np.uint8)
    iio.imwrite(tmp_path / "g.png", arr)
    m = load_image(tmp_path / "g.png")
    np.testing.assert_array_equal(m.image, arr.astype(np.float32) / np.float32(255))
    assert m.original.dtype == np.uint8


def test_16bit_png(tmp_path: Path) -> None:
    arr = _ramp16(8, 9)
    iio.imwrite(tmp_path / "g16.png", arr)
    m = load_image(tmp_path / "g16.png")
    assert m.original.dtype == np.uint16 and m.image.min() == 0.0 and m.image.max() == 1.0


def test_float_tiff_min_max_scaled(tmp_path: Path) -> None:
    arr = np.array([[-2.0, 0.0], [2.0, 6.0]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", arr)
    np.testing.assert_allclose(load_image(tmp_path / "f.tif").image, [[0.0, 0.25], [0.5, 1.0]])


def test_rgba_alpha_dropped_and_colour_to_luma(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    iio.imwrite(tmp_path / "c.png", rgba)
    m = load_image(tmp_path / "c.png")
    assert m.original.shape == (4, 5, 4)
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    np.testing.assert_array_equal(m.image, np.full((4, 5), luma / 255, np.float32))


def test_grey_alpha_png_and_rgb_tiff(tmp_path: Path) -> None:
    g = (np.arange(20).reshape(4, 5) * 10).astype(np.uint8)
    iio.imwrite(tmp_path / "la.png", np.stack([g, np.full_like(g, 255)], axis=-1))
    np.testing.assert_array_equal(load_image(tmp_path / "la.png").image, g / np.float32(255))
    tifffile.imwrite(tmp_path / "rgb.tif", np.repeat(g[..., None], 3, axis=2), photometric="rgb")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.tif").image, g / np.float32(255))


def test_jpeg(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "j.jpeg", np.full((16, 16), 128, np.uint8))
    m = load_image(tmp_path / "j.jpeg")
    assert m.shape == (16, 16) and abs(float(m.image.mean()) - 128 / 255) < 0.01


def test_original_is_read_only(tmp_path: Path) -> None:
    save_tiff_with_pixel_size(tmp_path / "a.tif", _ramp16(), None)
    m = load_image(tmp_path / "a.tif")
    assert isinstance(m, Micrograph) and not m.original.flags.writeable


# ------------------------------------------------------------------------------------------- labels


def test_labels_dir_matched_by_stem(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    lab = np.zeros((10, 12), np.uint16)
    lab[2:5, 2:5], lab[6:9, 7:11] = 1, 2
    for stem in ("b", "a"):
        iio.imwrite(tmp_path / "img" / f"{stem}.png", np.full((10, 12), 9, np.uint8))
    iio.imwrite(tmp_path / "lab" / "a.png", lab)
    ms = load_folder(tmp_path / "img", labels_dir=tmp_path / "lab")
    assert [m.name for m in ms] == ["a", "b"]
    np.testing.assert_array_equal(ms[0].labels, lab)
    assert ms[1].labels is None


def test_label_array_argument(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((6, 7), np.uint8))
    lab = np.zeros((6, 7), np.int64)
    lab[1:3, 1:3] = 5
    assert load_image(tmp_path / "a.png", labels=lab).labels.max() == 5


# ---------------------------------------------------------------------------------------- bad input


def test_truncated_png(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "ok.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png: cannot read as a PNG image .*truncated.*expected a valid"):
        load_image(tmp_path / "cut.png")


def test_random_bytes_png(tmp_path: Path) -> None:
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match=r"noise\.png: cannot read as a PNG image"):
        load_image(tmp_path / "noise.png")


def test_corrupt_tiff(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    with pytest.raises(ValueError, match=r"bad\.tif: cannot read as a TIF image"):
        load_image(tmp_path / "bad.tif")


@pytest.mark.parametrize("name", ["scan.bmp", "notes.txt", "noext"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"data")
    with pytest.raises(ValueError, match=r"unsupported file type .*expected one of \.png, \.jpg"):
        load_image(tmp_path / name)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: file is empty \(0 bytes\); expected a PNG image"):
        load_image(tmp_path / "empty.png")


def test_zero_size_image(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):  # tifffile itself warns that such a TIFF is nonconformant
        tifffile.imwrite(tmp_path / "void.tif", np.zeros((0, 5), np.uint16))
    with pytest.raises(ValueError, match=r"void\.tif.*empty image"):
        load_image(tmp_path / "void.tif")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_float_tiff(tmp_path: Path, bad: float) -> None:
    arr = np.ones((8, 8), np.float32)
    arr[3, 4] = bad
    tifffile.imwrite(tmp_path / "nan.tif", arr)
    with pytest.raises(ValueError, match=r"nan\.tif: 1 NaN or Inf pixel\(s\); expected finite values"):
        load_image(tmp_path / "nan.tif")


def test_label_shape_mismatch(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((10, 12), np.uint8))
    iio.imwrite(tmp_path / "a_lab.png", np.zeros((10, 11), np.uint16))
    with pytest.raises(ValueError, match=r"a_lab\.png: label image shape \(10, 11\) does not match image .*a\.png of shape \(10, 12\)"):
        load_image(tmp_path / "a.png", labels=tmp_path / "a_lab.png")
    with pytest.raises(ValueError, match=r"a\.png: label array shape \(3, 3\) does not match image shape \(10, 12\)"):
        load_image(tmp_path / "a.png", labels=np.zeros((3, 3), np.int32))


def test_label_shape_mismatch_in_emps_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "segmaps").mkdir()
    iio.imwrite(tmp_path / "images" / "x.png", np.zeros((10, 12), np.uint8))
    iio.imwrite(tmp_path / "segmaps" / "x.png", np.zeros((12, 10), np.uint16))
    with pytest.raises(ValueError, match=r"segmaps/x\.png: label image shape \(12, 10\) does not match"):
        load_folder(tmp_path)


def test_colour_label_image(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    iio.imwrite(tmp_path / "l.png", np.dstack([np.eye(4, dtype=np.uint8) * 9, np.zeros((4, 4, 2), np.uint8)]))
    with pytest.raises(ValueError, match=r"l\.png: colour label image; expected a grey integer"):
        load_image(tmp_path / "a.png", labels=tmp_path / "l.png")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"labels folder not found"):
        load_folder(tmp_path, labels_dir=tmp_path / "missing")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"no images with extension png/jpg/jpeg/tif"):
        load_folder(tmp_path)
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"no images matching '\*\.tif'"):
        load_folder(tmp_path, pattern="*.tif")


def test_labels_dir_matching_nothing(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    iio.imwrite(tmp_path / "lab" / "zzz.png", np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match=r"no label image matches any image .*expected label files named like the images \(e\.g\. a\.png\)"):
        load_folder(tmp_path, labels_dir=tmp_path / "lab")


def test_file_given_to_load_folder_and_folder_to_load_image(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png: is a file; expected a folder"):
        load_folder(tmp_path / "a.png")
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(ValueError, match=r"d\.tif: is a folder; expected an image file"):
        load_image(tmp_path / "d.tif")


def test_stack_tiff_rejected(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint16), imagej=True)
    with pytest.raises(ValueError, match=r"stack\.tif: .*a stack of shape \(5, 8, 8\).*expected a single 2-D image"):
        load_image(tmp_path / "stack.tif")


def test_bad_pixel_size_and_modality(tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png: pixel_size_nm must be a positive number, got -1"):
        load_image(tmp_path / "a.png", pixel_size_nm=-1)
    with pytest.raises(ValueError, match=r"a\.png: modality must be one of"):
        load_image(tmp_path / "a.png", modality="xray")


def test_list_folder_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for n in ("b.TIF", "a.png", ".hidden.png", "c.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p, lab in list_folder(tmp_path)] == ["a.png", "b.TIF"]


# ---------------------------------------------------------------------------------------- EM formats


def test_em_format_without_rosettasciio_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scan.dm4").write_bytes(b"\x00" * 64)
    # None in sys.modules makes `import rsciio...` raise ImportError, as if the package were absent.
    monkeypatch.setitem(sys.modules, "rsciio", None)
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", None)
    with pytest.raises(ImportError, match=r'scan\.dm4: reading \.dm4 files needs RosettaSciIO.*pip install "samstar\[em\]"'):
        load_image(tmp_path / "scan.dm4")


def _write_mrc(path: Path, data: np.ndarray, *, pixel_size_a: float) -> None:
    """A minimal MRC2014 file, header built from RosettaSciIO's own header layout."""
    from rsciio.mrc._api import get_std_dtype_list

    hdr = np.zeros(1, dtype=get_std_dtype_list("<"))
    ny, nx = data.shape
    hdr["NX"], hdr["NY"], hdr["NZ"], hdr["MODE"] = nx, ny, 1, 2  # mode 2: float32
    hdr["MX"], hdr["MY"], hdr["MZ"] = nx, ny, 1
    hdr["Xlen"], hdr["Ylen"], hdr["Zlen"] = nx * pixel_size_a, ny * pixel_size_a, pixel_size_a
    hdr["MAPC"], hdr["MAPR"], hdr["MAPS"] = 1, 2, 3
    hdr["CMAP"] = b"MAP "
    assert hdr.nbytes == 1024
    path.write_bytes(hdr.tobytes() + np.ascontiguousarray(data, "<f4").tobytes())


def test_mrc_through_rosettasciio(tmp_path: Path) -> None:
    pytest.importorskip("rsciio", reason="the em extra (rosettasciio) is not installed")
    data = np.random.default_rng(0).random((12, 16)).astype(np.float32)
    _write_mrc(tmp_path / "tomo.mrc", data, pixel_size_a=2.5)
    m = load_image(tmp_path / "tomo.mrc", modality="bf-tem")
    np.testing.assert_array_equal(m.original, data)
    assert m.pixel_size_nm == pytest.approx(0.25)
    assert m.metadata["pixel_size_source"] == "rsciio"


def test_read_array_reports_calibration(tmp_path: Path) -> None:
    save_tiff_with_pixel_size(tmp_path / "a.tif", np.zeros((3, 3), np.float64), 2.0)
    arr, info = read_array(tmp_path / "a.tif")
    assert arr.dtype == np.float32 and info["file_pixel_size_nm"] == pytest.approx(2.0)


def test_save_tiff_int32_labels_lossless_and_too_large_rejected(tmp_path: Path) -> None:
    lab = np.zeros((5, 6), np.int32)
    lab[1:3, 1:4] = 40000
    save_tiff_with_pixel_size(tmp_path / "lab.tif", lab, 0.3)
    back = tifffile.imread(tmp_path / "lab.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, lab)
    lab[0, 0] = 70000
    with pytest.raises(TypeError, match=r"lab2\.tif: ImageJ TIFF cannot store dtype int32 with values in \[0, 70000\]"):
        save_tiff_with_pixel_size(tmp_path / "lab2.tif", lab, 0.3)
