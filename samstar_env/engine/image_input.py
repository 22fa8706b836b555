"""Turn whatever image a caller has into the (H, W, 3) uint8 array SamAutomaticMaskGenerator expects.

Rules, in order:

- a :class:`~samstar_env.data.Micrograph` -> ``Micrograph.to_rgb_uint8()``;
- a uint8 ``(H, W, 3)`` array passes through untouched (not even copied), so that the engine sees
  exactly the pixels ``SamAutomaticMaskGenerator.generate`` would see for the same array;
- anything else ((H, W), (H, W, 1), (H, W, 3), (H, W, 4); bool, uint8, uint16, other integers,
  float) goes through :func:`samstar_env.data.normalize.normalize_image` (grey float32 in [0, 1]:
  uint8 / 255, other integers and floats min-max scaled, colour to BT.601 luma, alpha dropped) and
  is then quantized and replicated on three channels exactly as ``Micrograph.to_rgb_uint8`` does;
- NaN/Inf pixels, an empty array or another shape raise ``ValueError``; other dtypes ``TypeError``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.data.normalize import normalize_image


def _grey_to_rgb_uint8(grey: np.ndarray) -> np.ndarray:
    # The same quantization as Micrograph.to_rgb_uint8, so an array and the Micrograph made from it
    # give identical SAM inputs (and share cache entries).
    g = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def to_sam_image(image: Any, *, what: str = "image") -> np.ndarray:
    """Convert an image to SAM's input: (H, W, 3) uint8.

    Parameters
    ----------
    image : Micrograph or array-like
        See the module docstring for the accepted shapes and dtypes.
    what : str
        Name used in error messages.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        The input itself for a uint8 (H, W, 3) array.

    Examples
    --------
    >>> to_sam_image(np.array([[0.0, 0.5], [1.0, 1.0]])).shape
    (2, 2, 3)
    >>> rgb = np.zeros((4, 4, 3), np.uint8)
    >>> to_sam_image(rgb) is rgb
    True
    """
    if isinstance(image, Micrograph):
        return image.to_rgb_uint8()
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        if min(image.shape[:2]) == 0:
            raise ValueError(f"{what}: empty image (shape {image.shape})")
        return image
    arr = np.asarray(image)
    if arr.dtype == object:
        raise TypeError(f"{what}: expected a numeric array or a Micrograph, got {type(image).__name__}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{what}: unsupported shape {arr.shape}; expected (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
    return _grey_to_rgb_uint8(normalize_image(arr, what=what))


def image_fingerprint(rgb: np.ndarray) -> str:
    """sha256 of a SAM input image (shape and pixels): the image part of every cache key."""
    h = hashlib.sha256()
    h.update(f"{rgb.shape}|{rgb.dtype}".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()
