"""Read real micrographs (and their label images) from disk into :class:`Micrograph` values.

Formats
-------
- ``.png``, ``.jpg``, ``.jpeg`` through imageio's Pillow plugin; ``.tif``, ``.tiff`` through tifffile.
  8/16-bit, float, grey, grey+alpha, RGB and RGBA are accepted; every image goes through
  :func:`samstar_env.data.normalize.normalize_image` (the one conversion rule), and the array as read
  is kept in ``Micrograph.original``.
- ``.dm3``, ``.dm4``, ``.emd``, ``.ser``, ``.mrc`` through RosettaSciIO (``pip install "samstar[em]"``).

Pixel size (precedence)
-----------------------
1. the ``pixel_size_nm`` argument, when given: an explicit calibration from the user always wins,
   because it is the only way to correct a file whose stored calibration is wrong or stale;
2. otherwise the file's own calibration: TIFF ImageJ metadata (``unit`` + XResolution), baseline TIFF
   XResolution with ResolutionUnit = centimetre, FEI/Thermo SEM metadata, or the RosettaSciIO axes of
   an EM file; lengths in m, cm, mm, um, nm, A and pm are converted to nm;
3. otherwise ``None`` (sizes are then reported in pixels).

``Micrograph.metadata`` records where the value came from (``pixel_size_source``) and what the file
said (``file_pixel_size_nm``); a warning is issued when an explicit argument contradicts the file.
Baseline TIFF resolution in *inches* is ignored: it is the print density image editors write by
default (72 or 96 dpi), never a microscope calibration.

Labels
------
An instance label image (0 = background, one integer id per particle) is matched to an image by file
stem. A folder holding ``images/`` and ``segmaps/`` (the EMPS layout) is recognised automatically;
otherwise pass ``labels_dir``.
"""

from __future__ import annotations

import fnmatch
import importlib
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import MODALITIES, Micrograph
from samstar_env.data.normalize import normalize_image
from samstar_env.errors import InputError, MissingExtraError, MissingFileError

PIL_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
# Extension -> RosettaSciIO plugin module. EMD needs h5py as well (rosettasciio's ``hdf5`` extra).
EM_READERS: dict[str, str] = {
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".ser": "rsciio.tia",
    ".mrc": "rsciio.mrc",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = PIL_EXTENSIONS + TIFF_EXTENSIONS + tuple(EM_READERS)

EM_EXTRA_HINT = 'pip install "samstar[em]"'

# Length units -> nanometres. Keys are lower-cased; ImageJ writes the micro sign escaped as "\u00b5m".
_NM_PER_UNIT: dict[str, float] = {
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "\\u00b5m": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometre": 1e3,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0,
    "a": 0.1, "å": 0.1, "\\u00c5": 0.1, "angstrom": 0.1, "angstroms": 0.1,
    "pm": 1e-3, "picometer": 1e-3,
    "inch": 2.54e7, "in": 2.54e7,
}
# TIFF ResolutionUnit values: 1 none, 2 inch, 3 centimetre.
_TIFF_RESUNIT_CM = 3


def unit_to_nm(unit: str | None) -> float | None:
    """Nanometres per ``unit`` (``"um"``, ``"µm"``, ``"micron"``, ``"A"``...), or ``None`` if not a length.

    Examples
    --------
    >>> unit_to_nm("µm"), unit_to_nm("A"), unit_to_nm("pixel")
    (1000.0, 0.1, None)
    """
    if unit is None:
        return None
    return _NM_PER_UNIT.get(str(unit).strip().lower())


# --------------------------------------------------------------------------------------------- readers


def _read_pil(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import imageio.v3 as iio

    # The Pillow plugin is named explicitly: imageio's fallback search would otherwise answer a
    # corrupt file with "install imageio[pyav]", which sends users the wrong way.
    arr = np.asarray(iio.imread(path, plugin="pillow"))
    return arr, {}


def _tiff_pixel_size(tif: Any) -> tuple[float | None, float | None, str | None]:
    """(x, y) pixel size in nm and the source tag, from an open ``tifffile.TiffFile``."""
    page = tif.pages[0]
    ij = tif.imagej_metadata or {}
    xres, yres = (float(v) for v in page.resolution) if "XResolution" in page.tags else (0.0, 0.0)
    if ij and xres > 0:
        # ImageJ stores pixels per `unit` in XResolution whatever ResolutionUnit says.
        per_unit = unit_to_nm(ij.get("unit"))
        if per_unit is not None:
            return per_unit / xres, per_unit / (yres or xres), "tiff:imagej"
    if xres > 0 and int(page.resolutionunit) == _TIFF_RESUNIT_CM:
        return 1e7 / xres, 1e7 / (yres or xres), "tiff:resolution"
    fei = getattr(tif, "fei_metadata", None) or {}
    width_m = (fei.get("Scan") or {}).get("PixelWidth") or (fei.get("EScan") or {}).get("PixelWidth")
    if width_m:
        height_m = (fei.get("Scan") or {}).get("PixelHeight") or width_m
        return float(width_m) * 1e9, float(height_m) * 1e9, "tiff:fei"
    return None, None, None


def _read_tiff(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("no image data")
        series = tif.series[0]
        arr = np.asarray(series.asarray())
        axes = series.axes
        px_x, px_y, source = _tiff_pixel_size(tif)
    # Drop singleton axes (ImageJ writes e.g. TZCYX), keep colour samples last.
    keep = [i for i, a in enumerate(axes) if arr.shape[i] > 1 or a in "YX"]
    arr = arr.reshape([arr.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes and axes.index("S") != len(axes) - 1:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if len(axes.replace("S", "")) > 2:
        raise ValueError(f"a stack of shape {arr.shape} (axes {axes}); expected a single 2-D image")
    info: dict[str, Any] = {}
    if px_x is not None:
        info = {"file_pixel_size_nm": px_x, "file_pixel_size_y_nm": px_y, "pixel_size_source": source}
    return arr, info


def _import_em_reader(module: str, path: Path) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "rosettasciio"
        raise MissingExtraError(
            f"{path}: reading {path.suffix} files needs RosettaSciIO (module {missing!r} is missing); "
            f'install the em extra: {EM_EXTRA_HINT} (EMD files also need h5py: pip install "rosettasciio[hdf5]")'
        ) from exc


def _read_em(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    reader = _import_em_reader(EM_READERS[path.suffix.lower()], path)
    signals = reader.file_reader(str(path))
    # Velox EMD files hold spectra and several images: take the first 2-D image.
    for sig in signals:
        data = np.asarray(sig["data"])
        if np.squeeze(data).ndim == 2:
            break
    else:
        shapes = [np.shape(s["data"]) for s in signals]
        raise ValueError(f"no 2-D image among the signals in the file (shapes {shapes})")
    data = np.squeeze(data)
    info: dict[str, Any] = {"em_title": str(sig.get("metadata", {}).get("General", {}).get("title", ""))}
    axes = [a for a in sig.get("axes", []) if int(a.get("size", 0)) > 1]
    if len(axes) == 2 and not _mrc_uncalibrated(sig):
        scales = [unit_to_nm(a.get("units")) for a in axes]
        if all(s is not None for s in scales):
            y_nm, x_nm = (float(a["scale"]) * s for a, s in zip(axes, scales, strict=True))  # type: ignore[operator]
            if x_nm > 0 and y_nm > 0 and math.isfinite(x_nm):
                info.update(file_pixel_size_nm=x_nm, file_pixel_size_y_nm=y_nm, pixel_size_source="rsciio")
    return data, info


def _mrc_uncalibrated(sig: Mapping[str, Any]) -> bool:
    # RosettaSciIO reports 1 nm per pixel when an MRC header has no cell size (MX = 0): not a calibration.
    hdr = sig.get("original_metadata", {}).get("std_header")
    return bool(hdr) and (float(hdr.get("Xlen", 0)) <= 0 or float(hdr.get("MX", 0)) <= 0)


def read_array(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one image file as stored, with any calibration found in it.

    Parameters
    ----------
    path : str or Path
        A file with one of :data:`SUPPORTED_EXTENSIONS`.

    Returns
    -------
    array : ndarray
        (H, W) or (H, W, 3|4), dtype as stored (grey + alpha is reduced to its grey channel).
    info : dict
        ``file_pixel_size_nm`` (x), ``file_pixel_size_y_nm`` and ``pixel_size_source`` when the file
        carries a calibration.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unsupported extension, an empty (0-byte) or corrupt file, or not a single 2-D image.
    ImportError
        An EM format without RosettaSciIO installed (the message names the ``em`` extra).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
    >>> save_tiff_with_pixel_size(p, np.zeros((4, 6), np.uint16), 0.25)
    >>> arr, info = read_array(p)
    >>> arr.shape, info["file_pixel_size_nm"]
    ((4, 6), 0.25)
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected one of "
            + ", ".join(SUPPORTED_EXTENSIONS)
        )
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; expected an image file (use load_folder for folders)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes); expected a {ext[1:].upper()} image")
    fmt = ext[1:].upper()
    try:
        if ext in PIL_EXTENSIONS:
            arr, info = _read_pil(path)
        elif ext in TIFF_EXTENSIONS:
            arr, info = _read_tiff(path)
        else:
            arr, info = _read_em(path)
    except ImportError:
        raise
    except Exception as exc:
        # Readers fail on bad bytes with anything from OSError to struct.error: report it as bad input.
        raise InputError(
            f"{path}: cannot read as a {fmt} image ({type(exc).__name__}: {exc}); expected a valid, "
            f"complete {fmt} file holding one 2-D image"
        ) from exc
    if arr.ndim == 3 and arr.shape[2] == 2:
        arr = arr[:, :, 0]  # grey + alpha: the alpha channel carries no intensity, as for RGBA.
    return arr, info


def _read_labels(path: Path, image_shape: tuple[int, int], image_path: Path | str) -> np.ndarray:
    arr, _ = read_array(path)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[:, :, :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise InputError(
                f"{path}: colour label image; expected a grey integer instance-label image (0 = background)"
            )
        arr = rgb[:, :, 0]
    if arr.ndim != 2:
        raise InputError(f"{path}: label image of shape {arr.shape}; expected a 2-D instance-label image")
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
            raise InputError(f"{path}: label image holds non-integer values; expected integer instance ids")
    elif arr.dtype.kind not in "biu":
        raise InputError(f"{path}: label image has dtype {arr.dtype}; expected integer instance ids")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max):
        raise InputError(f"{path}: label ids outside [0, 2**31); expected non-negative instance ids")
    if arr.shape != image_shape:
        raise InputError(
            f"{path}: label image shape {arr.shape} does not match image {image_path} of shape "
            f"{image_shape}; expected the same (H, W)"
        )
    return arr.astype(np.int32)


# -------------------------------------------------------------------------------------------- public


def load_image(
    path: str | Path,
    *,
    pixel_size_nm: float | None = None,
    modality: str = "unknown",
    labels: np.ndarray | str | Path | None = None,
    name: str | None = None,
) -> Micrograph:
    """Load one micrograph, normalized to grey float32 in [0, 1].

    Parameters
    ----------
    path : str or Path
        png, jpg/jpeg, tif/tiff, or (with the ``em`` extra) dm3, dm4, emd, ser, mrc.
    pixel_size_nm : float, optional
        Calibration; overrides the file's own (see the module docstring for the precedence).
    modality : str
        ``haadf``, ``bf-tem``, ``sem``, ``fluorescence`` or ``unknown``.
    labels : ndarray or path, optional
        Instance label image (0 = background) of the same (H, W), as an array or a file.
    name : str, optional
        Micrograph name; the file stem by default.

    Returns
    -------
    Micrograph
        ``original`` holds the array as read; ``metadata["source"]`` the path.

    Raises
    ------
    FileNotFoundError, ValueError, ImportError
        See :func:`read_array`; also NaN/Inf pixels, an empty image, or labels of another shape.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grain.tif"
    >>> save_tiff_with_pixel_size(p, np.arange(12, dtype=np.uint16).reshape(3, 4), 0.5)
    >>> m = load_image(p, modality="haadf")
    >>> m.name, m.shape, m.pixel_size_nm, float(m.image.max())
    ('grain', (3, 4), 0.5, 1.0)
    """
    path = Path(path)
    if modality not in MODALITIES:
        raise InputError(f"{path}: modality must be one of {MODALITIES}, got {modality!r}")
    original, info = read_array(path)
    image = normalize_image(original, what=str(path))
    meta: dict[str, Any] = {"source": str(path), "original_dtype": str(original.dtype), **info}

    file_px = info.get("file_pixel_size_nm")
    if file_px is not None and not (math.isfinite(file_px) and file_px > 0):
        file_px = None
    if file_px is not None and not math.isclose(file_px, info.get("file_pixel_size_y_nm", file_px), rel_tol=0.01):
        warnings.warn(
            f"{path}: anisotropic pixels ({file_px:.4g} x {info['file_pixel_size_y_nm']:.4g} nm); using the x size",
            stacklevel=2,
        )
    px: float | None = file_px
    if pixel_size_nm is not None:
        arg_px = float(pixel_size_nm)
        if not (math.isfinite(arg_px) and arg_px > 0):
            raise InputError(f"{path}: pixel_size_nm must be a positive number, got {pixel_size_nm!r}")
        if file_px is not None and not math.isclose(arg_px, file_px, rel_tol=0.01):
            warnings.warn(
                f"{path}: pixel_size_nm={arg_px:.4g} overrides the file's calibration of {file_px:.4g} nm",
                stacklevel=2,
            )
        px = arg_px
        meta["pixel_size_source"] = "argument"
    else:
        meta.setdefault("pixel_size_source", None)

    lab: np.ndarray | None = None
    if labels is not None:
        if isinstance(labels, (str, Path)):
            meta["labels_source"] = str(labels)
            lab = _read_labels(Path(labels), image.shape, path)
        else:
            lab = np.asarray(labels)
            if lab.shape != image.shape:
                raise InputError(
                    f"{path}: label array shape {lab.shape} does not match image shape {image.shape}; "
                    "expected the same (H, W)"
                )
    return Micrograph(
        image=image,
        name=name if name is not None else path.stem,
        pixel_size_nm=px,
        modality=modality,
        labels=lab,
        original=original,
        metadata=meta,
    )


def list_folder(
    path: str | Path, *, pattern: str | None = None, labels_dir: str | Path | None = None
) -> list[tuple[Path, Path | None]]:
    """The (image, label-or-None) file pairs :func:`load_folder` would load, sorted by file name.

    Parameters
    ----------
    path : str or Path
        A folder of images, or an EMPS-style folder holding ``images/`` and ``segmaps/``.
    pattern : str, optional
        Shell pattern on file names (e.g. ``"*.tif"``); default: every supported extension.
    labels_dir : str or Path, optional
        Folder of label images matched by file stem; default ``segmaps/`` in the EMPS layout, else none.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("b.tif", "a.tif", "notes.txt"):
    ...     (d / n).write_bytes(b"x")
    1
    1
    1
    >>> [p.name for p, _ in list_folder(d)]
    ['a.tif', 'b.tif']
    """
    root = Path(path)
    if not root.exists():
        raise MissingFileError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: is a file; expected a folder of images (use load_image for one file)")
    image_dir = root
    if labels_dir is None and (root / "images").is_dir() and (root / "segmaps").is_dir():
        image_dir, labels_dir = root / "images", root / "segmaps"
    lab_root = Path(labels_dir) if labels_dir is not None else None
    if lab_root is not None and not lab_root.is_dir():
        raise MissingFileError(f"{lab_root}: labels folder not found")

    def candidates(folder: Path) -> list[Path]:
        # Hidden files (".DS_Store", macOS "._x.png" forks) are never images.
        return sorted(
            (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in SUPPORTED_EXTENSIONS),
            key=lambda p: p.name,
        )

    images = candidates(image_dir)
    if pattern is not None:
        images = [p for p in images if fnmatch.fnmatch(p.name, pattern)]
    if not images:
        what = f"matching {pattern!r}" if pattern else "with extension " + "/".join(e[1:] for e in SUPPORTED_EXTENSIONS)
        raise MissingFileError(f"{image_dir}: no images {what}; expected at least one image file")
    if lab_root is None:
        return [(p, None) for p in images]
    by_stem: dict[str, Path] = {}
    for p in candidates(lab_root):
        by_stem.setdefault(p.stem, p)
    pairs = [(p, by_stem.get(p.stem)) for p in images]
    if all(lab is None for _, lab in pairs):
        raise InputError(
            f"{lab_root}: no label image matches any image in {image_dir}; expected label files named like "
            f"the images (e.g. {images[0].stem}.png)"
        )
    return pairs


def load_folder(
    path: str | Path,
    *,
    pattern: str | None = None,
    pixel_size_nm: float | None = None,
    modality: str = "unknown",
    labels_dir: str | Path | None = None,
) -> list[Micrograph]:
    """Load every image of a folder (not recursive), sorted by file name.

    Parameters
    ----------
    path : str or Path
        A folder of images, or an EMPS-style folder with ``images/`` and ``segmaps/`` (labels attached).
    pattern : str, optional
        Shell pattern on file names, e.g. ``"*.tif"``.
    pixel_size_nm : float, optional
        Calibration for every image; overrides the files' own.
    modality : str
        Modality of every image.
    labels_dir : str or Path, optional
        Folder of label images matched by stem; images without one get ``labels=None``.

    Returns
    -------
    list of Micrograph

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for i in (2, 1):
    ...     save_tiff_with_pixel_size(d / f"m{i}.tif", np.eye(4, dtype=np.uint8) * i, 1.0)
    >>> [m.name for m in load_folder(d)]
    ['m1', 'm2']
    """
    return [
        load_image(img, pixel_size_nm=pixel_size_nm, modality=modality, labels=lab)
        for img, lab in list_folder(path, pattern=pattern, labels_dir=labels_dir)
    ]


def save_tiff_with_pixel_size(path: str | Path, array: np.ndarray, pixel_size_nm: float | None) -> None:
    """Write an ImageJ-compatible TIFF whose calibration Fiji, tifffile and :func:`load_image` read back.

    Parameters
    ----------
    path : str or Path
        Output file (``.tif``).
    array : ndarray
        (H, W) grey or (H, W, 3) RGB uint8. ImageJ stores uint8, uint16, int16 and float32;
        float64/float16 are written as float32, bool as uint8 (0/1), and other integers (e.g. int32
        label images) as uint16/int16 when their values fit, else ``TypeError``.
    pixel_size_nm : float or None
        Pixel size, stored as XResolution/YResolution in pixels per nm with ImageJ ``unit=nm``;
        ``None`` writes no calibration.

    Examples
    --------
    >>> import tempfile, pathlib, tifffile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.tif"
    >>> save_tiff_with_pixel_size(p, np.zeros((2, 3), np.float64), 0.2)
    >>> tifffile.TiffFile(p).imagej_metadata["unit"]
    'nm'
    """
    import tifffile

    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.uint16, np.int16) and arr.size:
        # Label images are often int32/int64: store them losslessly in ImageJ's 16-bit types when they fit.
        for target in (np.uint16, np.int16):
            info = np.iinfo(target)
            if info.min <= arr.min() and arr.max() <= info.max:
                arr = arr.astype(target)
                break
    if arr.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        raise TypeError(
            f"{path}: ImageJ TIFF cannot store dtype {arr.dtype} with values in [{arr.min()}, {arr.max()}]; "
            "expected uint8, uint16, int16 or float, or integers that fit 16 bits"
        )
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and (arr.shape[2] != 3 or arr.dtype != np.uint8)):
        raise InputError(f"{path}: cannot save shape {arr.shape} {arr.dtype}; expected non-empty (H, W) or (H, W, 3) uint8")
    kwargs: dict[str, Any] = {}
    if pixel_size_nm is not None:
        px = float(pixel_size_nm)
        if not (math.isfinite(px) and px > 0):
            raise InputError(f"{path}: pixel_size_nm must be a positive number, got {pixel_size_nm!r}")
        kwargs = {"resolution": (1.0 / px, 1.0 / px), "metadata": {"unit": "nm"}}
    tifffile.imwrite(Path(path), arr, imagej=True, photometric="rgb" if arr.ndim == 3 else "minisblack", **kwargs)
