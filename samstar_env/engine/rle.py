"""How the engine stores a mask: its box crop, run-length encoded or bit-packed, whichever is smaller.

A cached proposal is its mask cropped to its box. A smooth mask changes value a few times per row,
so its run lengths (uint32, row-major, alternating, starting with a possibly empty run of False)
take a fraction of the crop's bits; a speckled one (samstar-tiny v3's masks carry a patch-grid
pattern) has short runs, and ``np.packbits`` of the crop is smaller. Each mask is stored the
smaller way, as bytes padded to a multiple of 4 (so run lengths can be viewed in place), with a
flag saying which.
"""

from __future__ import annotations

import numpy as np


def mask_runs(crop: np.ndarray) -> np.ndarray:
    """Run lengths of a box-cropped mask (row-major, alternating, starting with a run of False).

    Examples
    --------
    >>> mask_runs(np.array([[True, True, False], [False, True, True]])).tolist()
    [0, 2, 2, 2]
    """
    flat = np.ascontiguousarray(crop, dtype=bool).reshape(-1)
    if flat.size == 0:
        return np.zeros(1, np.uint32)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def packed_size(n_runs: int | np.ndarray, area: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, as run lengths?) of masks with ``n_runs`` runs in boxes of ``area`` pixels: the smaller form."""
    runs_b = 4 * np.asarray(n_runs, np.int64)
    bits_b = (np.asarray(area, np.int64) + 7) // 8
    use_runs = runs_b < bits_b
    size = np.where(use_runs, runs_b, (bits_b + 3) // 4 * 4)
    return size, use_runs


def encode_mask(crop: np.ndarray) -> tuple[np.ndarray, bool]:
    """A box-cropped mask as stored: (uint8 bytes, whether they are run lengths).

    Examples
    --------
    >>> crop = np.zeros((100, 100), bool); crop[20:80, 10:90] = True
    >>> data, is_runs = encode_mask(crop)
    >>> bool(is_runs), len(data), bool((decode_mask(data, np.array([0, 0, 99, 99]), is_runs) == crop).all())
    (True, 484, True)
    """
    runs = mask_runs(crop)
    size, use_runs = packed_size(len(runs), crop.size)
    if bool(use_runs):
        return runs.view(np.uint8).copy(), True
    out = np.zeros(int(size), np.uint8)
    bits = np.packbits(np.ascontiguousarray(crop, dtype=bool).reshape(-1))
    out[: len(bits)] = bits
    return out, False


def decode_mask(data: np.ndarray, box: np.ndarray, is_runs: bool) -> np.ndarray:
    """Inverse of :func:`encode_mask` for the box ``box`` (xyxy, inclusive)."""
    h, w = int(box[3] - box[1] + 1), int(box[2] - box[0] + 1)
    if is_runs:
        runs = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint32) if data.ctypes.data % 4 else data.view(np.uint32)
        values = (np.arange(len(runs)) % 2).astype(bool)
        return np.repeat(values, runs.astype(np.int64)).reshape(h, w)
    return np.unpackbits(data, count=h * w).reshape(h, w).view(bool)
