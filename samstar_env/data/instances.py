"""Amodal instance masks kept as crops at their boxes: memory follows the particles, not the frame.

A dense (N, H, W) stack of a 4096² synthetic perovskite frame (15,142 particles) would take 237 GB;
each particle's crop takes its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from samstar_env.errors import InputError

# Bound of :meth:`SparseInstances.to_dense` unless told otherwise (1 GiB of booleans).
DENSE_MAX_BYTES = 1 << 30


def _frozen(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class SparseInstances:
    """N binary masks of an image, each a bool crop at its (row, column) origin.

    Parameters
    ----------
    origins : ndarray of int64, shape (N, 2)
        Top-left (row, column) of each crop in the image.
    crops : tuple of ndarray of bool
        The masks on their boxes (an empty mask: shape (0, 0)).
    image_shape : (int, int)
        (H, W) of the image.

    Examples
    --------
    >>> dense = np.zeros((2, 6, 8), bool); dense[0, 1:3, 2:5] = True; dense[1, 5, 7] = True
    >>> inst = SparseInstances.from_dense(dense)
    >>> len(inst), inst.areas.tolist(), inst.boxes.tolist()
    (2, [6, 1], [[1, 2, 3, 5], [5, 7, 6, 8]])
    >>> bool((inst.to_dense() == dense).all())
    True
    """

    origins: np.ndarray
    crops: tuple[np.ndarray, ...]
    image_shape: tuple[int, int]

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_shape)
        object.__setattr__(self, "image_shape", (h, w))
        origins = np.asarray(self.origins, np.int64).reshape(-1, 2)
        crops = tuple(_frozen(np.asarray(c, bool)) for c in self.crops)
        if len(origins) != len(crops):
            raise InputError(f"SparseInstances: {len(origins)} origins for {len(crops)} crops; expected one per mask")
        for i, (c, (r, col)) in enumerate(zip(crops, origins, strict=True)):
            if c.ndim != 2 or r < 0 or col < 0 or r + c.shape[0] > h or col + c.shape[1] > w:
                raise InputError(f"SparseInstances: mask {i} (crop {c.shape} at {(int(r), int(col))}) lies outside the {h} x {w} image")
        object.__setattr__(self, "origins", _frozen(origins))
        object.__setattr__(self, "crops", crops)

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> SparseInstances:
        """Each mask of a (N, H, W) array cropped to its tight box."""
        masks = np.asarray(masks, bool)
        if masks.ndim != 3:
            raise InputError(f"SparseInstances.from_dense: expected (N, H, W) masks, got shape {masks.shape}")
        origins, crops = np.zeros((len(masks), 2), np.int64), []
        for i, m in enumerate(masks):
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            if not len(rows):
                crops.append(np.zeros((0, 0), bool))
                continue
            origins[i] = (rows[0], cols[0])
            crops.append(m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())
        return cls(origins, tuple(crops), masks.shape[1:])

    @cached_property
    def areas(self) -> np.ndarray:
        """Pixels per mask (int64)."""
        return _frozen(np.array([np.count_nonzero(c) for c in self.crops], np.int64))

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) int64 boxes (r0, c0, r1, c1), half-open."""
        shapes = np.array([c.shape for c in self.crops], np.int64).reshape(-1, 2)
        return np.concatenate([self.origins, self.origins + shapes], axis=1)

    @property
    def nbytes(self) -> int:
        """Bytes held by the crops."""
        return int(sum(c.nbytes for c in self.crops))

    def crop(self, i: int) -> tuple[tuple[int, int], np.ndarray]:
        """Mask ``i``: its (row, column) origin and its read-only crop."""
        r, c = self.origins[int(i)]
        return (int(r), int(c)), self.crops[int(i)]

    def window(self, i: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """Mask ``i`` on rows ``r0:r1`` and columns ``c0:c1`` of the image (a new bool array)."""
        (r, c), crop = self.crop(i)
        out = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), bool)
        y0, y1 = max(r0, r), min(r1, r + crop.shape[0])
        x0, x1 = max(c0, c), min(c1, c + crop.shape[1])
        if y0 < y1 and x0 < x1:
            out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = crop[y0 - r : y1 - r, x0 - c : x1 - c]
        return out

    def full(self, i: int) -> np.ndarray:
        """Mask ``i`` as a new (H, W) bool array."""
        return self.window(i, 0, 0, *self.image_shape)

    def to_dense(self, *, max_bytes: int = DENSE_MAX_BYTES) -> np.ndarray:
        """The (N, H, W) bool stack; refused above ``max_bytes`` (it grows with N x H x W)."""
        h, w = self.image_shape
        need = len(self) * h * w
        if need > max_bytes:
            raise MemoryError(f"SparseInstances.to_dense: {len(self)} masks of {h} x {w} need {need / 2**30:.1f} GiB, "
                              f"over max_bytes={max_bytes / 2**30:.1f} GiB; read masks one at a time with crop() or window()")
        out = np.zeros((len(self), h, w), bool)
        for i, ((r, c), crop) in enumerate(zip(self.origins, self.crops, strict=True)):
            out[i, r : r + crop.shape[0], c : c + crop.shape[1]] = crop
        return out
