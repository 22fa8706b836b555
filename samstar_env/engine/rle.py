"""Run-length encoding of box-cropped masks: how the engine stores every proposal.

A cached proposal is its mask cropped to its box; masks of smooth logits change value a few times
per row, so run lengths take a fraction of the crop's bits (and far less than full-size masks).
"""

from __future__ import annotations

import numpy as np


def encode_mask(crop: np.ndarray) -> np.ndarray:
    """Run lengths of a box-cropped mask: row-major, alternating, starting with a (possibly empty) run of False.

    Smooth masks have a few runs per row, so this takes a fraction of the bits of the crop
    (measured with samstar-tiny at 512²: see ``benchmarks/bench_engine.py``, bytes per proposal).

    Examples
    --------
    >>> encode_mask(np.array([[True, True, False], [False, True, True]])).tolist()
    [0, 2, 2, 2]
    >>> decode_mask(np.array([0, 2, 2, 2], np.uint32), np.array([0, 0, 2, 1])).astype(int).tolist()
    [[1, 1, 0], [0, 1, 1]]
    """
    flat = np.ascontiguousarray(crop, dtype=bool).reshape(-1)
    if flat.size == 0:
        return np.zeros(1, np.uint32)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.uint32)


def decode_mask(runs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_mask` for the box ``box`` (xyxy, inclusive)."""
    h, w = int(box[3] - box[1] + 1), int(box[2] - box[0] + 1)
    values = (np.arange(len(runs)) % 2).astype(bool)
    return np.repeat(values, runs.astype(np.int64)).reshape(h, w)
