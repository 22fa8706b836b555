"""One documented conversion from any image array to samstar's grey float32 in [0, 1].

Rules (used by the loaders, the engine and the CLI alike):

- shape: (H, W) grey; (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped). Colour is converted to grey
  with ITU-R BT.601 luma weights, except when all three channels are equal (grey saved as RGB, as in
  EMPS), where one channel is taken exactly;
- ``bool``: False -> 0, True -> 1;
- ``uint8``: divided by 255, so 8-bit images keep the exact values SAM would see;
- other integers (``uint16``, ``int16``, ``int32``...) and floats: scaled by their own minimum and
  maximum (detectors rarely fill the 16-bit range, and float images have arbitrary units); a
  constant image becomes all zeros;
- NaN or Inf anywhere, an empty array or another shape raise ``ValueError`` naming ``what``.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])


def to_grey(image: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Reduce (H, W), (H, W, 3) or (H, W, 4) to (H, W), keeping the dtype's value range."""
    arr = np.asarray(image)
    if arr.size == 0 or arr.ndim < 2 or min(arr.shape[:2]) == 0:
        raise ValueError(f"{what}: empty image (shape {arr.shape}); expected a non-empty (H, W) or (H, W, 3|4) array")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"{what}: unsupported shape {arr.shape}; expected (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
    rgb = arr[:, :, :3]
    if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]):
        return rgb[:, :, 0]
    grey = rgb.astype(np.float64) @ _LUMA
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(np.rint(grey), np.iinfo(arr.dtype).min, np.iinfo(arr.dtype).max).astype(arr.dtype)
    return grey


def normalize_image(image: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Convert an image array to grey float32 in [0, 1] by the module's rules.

    Parameters
    ----------
    image : ndarray
        (H, W), (H, W, 3) or (H, W, 4); bool, integer or float.
    what : str
        Name used in error messages (usually the file path).

    Returns
    -------
    ndarray of float32, shape (H, W)

    Examples
    --------
    >>> normalize_image(np.array([[0, 255]], np.uint8)).tolist()
    [[0.0, 1.0]]
    >>> normalize_image(np.array([[100, 300]], np.uint16)).tolist()
    [[0.0, 1.0]]
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what}: unsupported dtype {arr.dtype}; expected bool, integer or float pixels")
    grey = to_grey(arr, what=what)
    if grey.dtype.kind == "f" and not np.isfinite(grey).all():
        bad = int((~np.isfinite(grey)).sum())
        raise ValueError(f"{what}: {bad} NaN or Inf pixel(s); expected finite values")
    if grey.dtype == np.bool_:
        return grey.astype(np.float32)
    if grey.dtype == np.uint8:
        return (grey.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    g = grey.astype(np.float64)
    lo, hi = float(g.min()), float(g.max())
    if hi <= lo:
        return np.zeros(g.shape, np.float32)
    return ((g - lo) / (hi - lo)).astype(np.float32)
