"""One pass over full-resolution logits: every threshold count, the binary mask's box and its runs.

AMG thresholds each batch's upsampled logits several times: ``calculate_stability_score`` compares
them with ``mask_threshold + offset`` and ``mask_threshold - offset`` and sums each comparison, then
``masks > mask_threshold`` gives the binary mask, ``batched_mask_to_box`` its box and the RLE its
pixels. The engine needs all of that for *every* proposal and *every* offset of its grid (the next
call may keep what this one drops), which done AMG's way is ``2 * len(offsets) + 1`` passes over
the largest array of the whole run (measured: 4 offsets took 20 s of a 34 s cold call).

:func:`scan_logits` reads each logit once and returns the integer counts ``(x > t).sum()`` for every
threshold, the xyxy box of ``x > mask_threshold`` and that mask cropped to its box in the stored
form (:mod:`samstar_env.engine.rle`: run lengths or packed bits, whichever is smaller; the box is
read again for that, once to count runs and once to write).
The counts are exact integers, so the stability scores built from them by :func:`stability_from_counts`
(``int32 / int32`` in torch, as ``calculate_stability_score`` divides) are bit-identical to AMG's.
Thresholds are compared in float32, as torch compares a float32 tensor with a Python scalar.

Two implementations give the same numbers: a compiled kernel (numba, one pass, used on CPU tensors)
and a torch one (segment_anything's own helpers, one pass per threshold; used for CUDA tensors, where
memory bandwidth makes it cheap, and wherever numba is missing).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box

from samstar_env.engine.rle import encode_mask, packed_size

try:  # numba is a dependency; the torch path keeps the engine exact without it (e.g. a new Python).
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised by forcing the torch backend in tests
    numba = None

# SAMSTAR_SCAN_BACKEND=torch forces the portable path (tests compare the two).
_FORCED = os.environ.get("SAMSTAR_SCAN_BACKEND", "").strip().lower() or None


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan_logits` extracts from a batch of logits.

    Parameters
    ----------
    counts : ndarray of int64, shape (M, K)
        ``(logits[m] > thresholds[k]).sum()``.
    boxes : ndarray of int64, shape (M, 4)
        ``batched_mask_to_box(logits > mask_threshold)`` (xyxy, inclusive; zeros for an empty mask).
    data : ndarray of uint8
        The binary masks, each cropped to its box and stored as :func:`~samstar_env.engine.rle.encode_mask`
        stores it, concatenated.
    sizes : ndarray of int64, shape (M,)
        Bytes of each mask in ``data`` (multiples of 4).
    is_runs : ndarray of bool, shape (M,)
        Whether each mask is stored as run lengths (else packed bits).
    """

    counts: np.ndarray
    boxes: np.ndarray
    data: np.ndarray
    sizes: np.ndarray
    is_runs: np.ndarray

    def mask_data(self, i: int) -> np.ndarray:
        """The stored bytes of mask ``i``."""
        start = int(self.sizes[:i].sum())
        return self.data[start : start + int(self.sizes[i])]


def float32_thresholds(mask_threshold: float, offsets: Sequence[float]) -> tuple[np.ndarray, dict[float, tuple[int, int]]]:
    """The sorted float32 thresholds a scan needs, and per offset the columns of (threshold + o, threshold - o).

    ``mask_threshold + offset`` is formed in Python floats and then rounded to float32, exactly as
    ``calculate_stability_score``'s comparison with a float32 tensor rounds it.
    """
    values = {np.float32(mask_threshold)}
    for o in offsets:
        values.add(np.float32(mask_threshold + float(o)))
        values.add(np.float32(mask_threshold - float(o)))
    thr = np.array(sorted(values), dtype=np.float32)
    col = {float(v): i for i, v in enumerate(thr)}
    pairs = {float(o): (col[float(np.float32(mask_threshold + float(o)))], col[float(np.float32(mask_threshold - float(o)))])
             for o in offsets}
    return thr, pairs


def stability_from_counts(counts: np.ndarray, pairs: dict[float, tuple[int, int]]) -> dict[float, np.ndarray]:
    """Stability scores per offset from scan counts, divided as ``calculate_stability_score`` divides."""
    out = {}
    for o, (hi, lo) in pairs.items():
        inter = torch.from_numpy(np.ascontiguousarray(counts[:, hi]).astype(np.int32))
        union = torch.from_numpy(np.ascontiguousarray(counts[:, lo]).astype(np.int32))
        out[o] = (inter / union).numpy()
    return out


def backend_for(logits: torch.Tensor) -> str:
    """``"numba"`` for CPU tensors when numba is importable, else ``"torch"``."""
    if _FORCED in ("numba", "torch"):
        if _FORCED == "numba" and numba is None:
            raise RuntimeError("SAMSTAR_SCAN_BACKEND=numba but numba is not installed (pip install numba)")
        return _FORCED
    return "numba" if numba is not None and logits.device.type == "cpu" else "torch"


def scan_logits(
    logits: torch.Tensor, *, thresholds: np.ndarray, mask_threshold: float, backend: str | None = None
) -> ScanResult:
    """Counts, boxes and packed masks of a batch of logits in one pass.

    Parameters
    ----------
    logits : torch.Tensor, shape (M, H, W)
        Full-resolution mask logits (float32).
    thresholds : ndarray of float32, shape (K,)
        From :func:`float32_thresholds`; must contain ``mask_threshold``.
    mask_threshold : float
        The model's binarization threshold.
    backend : {"numba", "torch"}, optional
        Default: :func:`backend_for`.

    Returns
    -------
    ScanResult

    Examples
    --------
    >>> x = torch.tensor([[[-1.0, 0.7], [2.0, 0.2]]])
    >>> thr, pairs = float32_thresholds(0.0, [0.5])
    >>> r = scan_logits(x, thresholds=thr, mask_threshold=0.0, backend="torch")
    >>> r.counts.tolist(), r.boxes.tolist()
    ([[3, 3, 2]], [[0, 0, 1, 1]])
    """
    backend = backend or backend_for(logits)
    thr = np.asarray(thresholds, dtype=np.float32)
    bin_col = int(np.flatnonzero(thr == np.float32(mask_threshold))[0])
    if logits.shape[0] == 0:
        return ScanResult(np.zeros((0, len(thr)), np.int64), np.zeros((0, 4), np.int64), np.zeros(0, np.uint8),
                          np.zeros(0, np.int64), np.zeros(0, bool))
    if backend == "numba":
        x = logits.detach().contiguous().numpy()
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        counts, boxes = _scan_kernel(x, thr, bin_col)
        n_runs = _run_counts(x, thr[bin_col], boxes)
        area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
        sizes, is_runs = packed_size(n_runs, area)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        data = np.zeros(int(offsets[-1]), np.uint8)
        _run_fill(x, thr[bin_col], boxes, offsets // 4, data.view(np.uint32), is_runs)
        _pack_kernel(x, thr[bin_col], boxes, offsets, data, is_runs)
        return ScanResult(counts, boxes, data, sizes, is_runs)
    if backend != "torch":
        raise ValueError(f"scan_logits: backend must be 'numba' or 'torch', got {backend!r}")
    # AMG's own reductions, one comparison per threshold (int16 row sums then int32, as
    # calculate_stability_score sums).
    counts = torch.stack(
        [(logits > float(t)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32) for t in thr], dim=1
    ).cpu().numpy().astype(np.int64)
    binary = logits > float(thr[bin_col])
    boxes_t = batched_mask_to_box(binary)
    boxes = boxes_t.cpu().numpy().astype(np.int64, copy=False)
    binary_np = binary.cpu().numpy()
    enc = [encode_mask(m[int(b[1]) : int(b[3]) + 1, int(b[0]) : int(b[2]) + 1]) for m, b in zip(binary_np, boxes, strict=True)]
    return ScanResult(counts, boxes, np.concatenate([d for d, _ in enc]), np.array([len(d) for d, _ in enc], np.int64),
                      np.array([r for _, r in enc], bool))


if numba is not None:

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_kernel(x, thr, bin_col):  # pragma: no cover - compiled
        m, h, w = x.shape
        k = thr.shape[0]
        counts = np.zeros((m, k), np.int64)
        boxes = np.zeros((m, 4), np.int64)
        tb = thr[bin_col]
        for i in prange(m):
            c = np.zeros(k, np.int64)
            x0, y0, x1, y1 = w, h, -1, -1
            for r in range(h):
                row = x[i, r]
                # One row (a few kB) stays in L1 while every threshold reads it: each inner loop
                # vectorizes, and the large array is read from memory once.
                for j in range(k):
                    t = thr[j]
                    s = 0
                    for q in range(w):
                        s += row[q] > t
                    c[j] += s
                first = -1
                for q in range(w):
                    if row[q] > tb:
                        first = q
                        break
                if first >= 0:
                    last = first
                    for q in range(w - 1, first, -1):
                        if row[q] > tb:
                            last = q
                            break
                    if y0 > r:
                        y0 = r
                    y1 = r
                    if x0 > first:
                        x0 = first
                    if x1 < last:
                        x1 = last
            for j in range(k):
                counts[i, j] = c[j]
            if x1 >= 0:
                boxes[i, 0] = x0
                boxes[i, 1] = y0
                boxes[i, 2] = x1
                boxes[i, 3] = y1
        return counts, boxes

    @njit(parallel=True, cache=True, nogil=True)
    def _run_counts(x, tb, boxes):  # pragma: no cover - compiled
        # Runs of rle.mask_runs' layout: 1 + the value changes along the row-major crop, counting
        # one before the first pixel when it is True. Branch-free, so the inner loop vectorizes.
        out = np.zeros(boxes.shape[0], np.int64)
        for i in prange(boxes.shape[0]):
            x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            k = 1
            prev = False
            for r in range(y0, y1 + 1):
                row = x[i, r]
                k += (row[x0] > tb) != prev
                s = 0
                for q in range(x0 + 1, x1 + 1):
                    s += (row[q] > tb) != (row[q - 1] > tb)
                k += s
                prev = row[x1] > tb
            out[i] = k
        return out

    @njit(parallel=True, cache=True, nogil=True)
    def _run_fill(x, tb, boxes, offsets, out, is_runs):  # pragma: no cover - compiled
        for i in prange(boxes.shape[0]):
            if not is_runs[i]:
                continue
            x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            j = offsets[i]
            run = 0
            prev = False
            for r in range(y0, y1 + 1):
                row = x[i, r]
                for q in range(x0, x1 + 1):
                    v = row[q] > tb
                    if v != prev:
                        out[j] = run
                        j += 1
                        run = 0
                        prev = v
                    run += 1
            out[j] = run

    @njit(parallel=True, cache=True, nogil=True)
    def _pack_kernel(x, tb, boxes, offsets, out, is_runs):  # pragma: no cover - compiled
        # np.packbits of the box crop: row-major, most significant bit first, zero-padded at the end.
        for i in prange(boxes.shape[0]):
            if is_runs[i]:
                continue
            x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            base = offsets[i]
            acc = 0
            n = 0
            for r in range(y0, y1 + 1):
                row = x[i, r]
                for q in range(x0, x1 + 1):
                    acc = (acc << 1) | (row[q] > tb)
                    n += 1
                    if n & 7 == 0:
                        out[base + (n >> 3) - 1] = acc
                        acc = 0
            if n & 7:
                out[base + (n >> 3)] = acc << (8 - (n & 7))

else:  # pragma: no cover
    _scan_kernel = _run_counts = _run_fill = _pack_kernel = None
