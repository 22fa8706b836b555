"""Amodal instance masks kept as crops at their boxes: memory follows the particles, not the frame.

A dense (N, H, W) stack of a 4096² synthetic perovskite frame (15,302 particles) would take 239 GiB;
the crops at their boxes take about 18 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from samstar_env.errors import InputError

# Bound of :meth:`SparseInstances.to_dense` unless told otherwise (1 GiB of booleans).
DENSE_MAX_BYTES = 1 << 30


def _frozen(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _tight(origin: tuple[int, int], crop: np.ndarray) -> tuple[tuple[int, int], np.ndarray]:
    """The crop cut to its pixels' bounding box (an empty mask: shape (0, 0) at (0, 0))."""
    rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
    if not len(rows):
        return (0, 0), np.zeros((0, 0), bool)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (origin[0] + r0, origin[1] + c0), crop[r0:r1, c0:c1]


@dataclass(frozen=True, eq=False, repr=False)
class SparseInstances:
    """N binary masks of an image, each a bool crop at its (row, column) origin.

    The value :class:`~samstar_env.data.Micrograph` holds as its amodal ``instances``: mask ``i``
    belongs to label ``i + 1``. Memory is the crops' area, not N x H x W. Read-only, like the
    Micrograph's arrays (the crops are read-only views), and picklable.

    Parameters
    ----------
    origins : ndarray of int, shape (N, 2)
        Top-left (row, column) of each crop in the image.
    crops : sequence of ndarray of bool, each 2-D
        The masks on their boxes (an empty mask: shape (0, 0)). A crop need not be tight: pixels
        outside it are False, whatever its margin.
    image_shape : (int, int)
        (H, W) of the image; every crop must lie inside it.

    Raises
    ------
    InputError
        When origins and crops differ in number, or a crop is not 2-D or sticks out of the image.

    Examples
    --------
    >>> dense = np.zeros((2, 6, 8), bool); dense[0, 1:3, 2:5] = True; dense[1, 5, 7] = True
    >>> inst = SparseInstances.from_dense(dense)
    >>> inst
    SparseInstances(2 masks of a 6 x 8 image, 7 bytes of crops)
    >>> len(inst), inst.image_shape, inst.areas.tolist(), inst.boxes.tolist()
    (2, (6, 8), [6, 1], [[1, 2, 3, 5], [5, 7, 6, 8]])
    >>> bool((inst.to_dense() == dense).all())
    True
    """

    origins: np.ndarray
    crops: tuple[np.ndarray, ...]
    image_shape: tuple[int, int]

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_shape)
        if h < 0 or w < 0:
            raise InputError(f"SparseInstances: image_shape must be (H, W) >= 0, got {self.image_shape!r}")
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

    def __repr__(self) -> str:
        h, w = self.image_shape
        return f"SparseInstances({len(self)} masks of a {h} x {w} image, {self.nbytes} bytes of crops)"

    def __reduce__(self) -> tuple[Any, ...]:
        # Through the constructor: the crops come back read-only and validated.
        return (type(self), (self.origins, self.crops, self.image_shape))

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> SparseInstances:
        """Each mask of an (N, H, W) stack cut to its tight box.

        Parameters
        ----------
        masks : array_like of bool, shape (N, H, W)

        Returns
        -------
        SparseInstances
            Crops are copies (the stack can be freed); an all-False mask has a (0, 0) crop at (0, 0).

        Examples
        --------
        >>> m = np.zeros((1, 4, 4), bool); m[0, 1:3, 2] = True
        >>> inst = SparseInstances.from_dense(m)
        >>> inst.crop(0)[0], inst.crop(0)[1].shape
        ((1, 2), (2, 1))
        """
        masks = np.asarray(masks, bool)
        if masks.ndim != 3:
            raise InputError(f"SparseInstances.from_dense: expected (N, H, W) masks, got shape {masks.shape}")
        origins, crops = np.zeros((len(masks), 2), np.int64), []
        for i, m in enumerate(masks):
            origins[i], crop = _tight((0, 0), m)
            crops.append(crop.copy())
        return cls(origins, tuple(crops), masks.shape[1:])

    @cached_property
    def areas(self) -> np.ndarray:
        """Pixels per mask, int64 of shape (N,) (read-only).

        Examples
        --------
        >>> SparseInstances([(0, 0)], [np.eye(3, dtype=bool)], (4, 4)).areas.tolist()
        [3]
        """
        return _frozen(np.array([np.count_nonzero(c) for c in self.crops], np.int64))

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) int64 boxes (r0, c0, r1, c1) of the crops, half-open.

        Tight (the masks' bounding boxes) for instances from :meth:`from_dense` and from the synthetic
        generators; an empty mask has (0, 0, 0, 0) there.

        Examples
        --------
        >>> SparseInstances([(1, 2)], [np.ones((2, 3), bool)], (4, 8)).boxes.tolist()
        [[1, 2, 3, 5]]
        """
        shapes = np.array([c.shape for c in self.crops], np.int64).reshape(-1, 2)
        return np.concatenate([self.origins, self.origins + shapes], axis=1)

    @property
    def nbytes(self) -> int:
        """Bytes held by the crops (what the masks cost in memory, the origins aside)."""
        return int(sum(c.nbytes for c in self.crops))

    def crop(self, i: int) -> tuple[tuple[int, int], np.ndarray]:
        """Mask ``i``: its (row, column) origin and its read-only crop.

        Examples
        --------
        >>> inst = SparseInstances([(1, 2)], [np.ones((2, 3), bool)], (4, 8))
        >>> origin, c = inst.crop(0); origin, c.shape, c.flags.writeable
        ((1, 2), (2, 3), False)
        """
        r, c = self.origins[int(i)]
        return (int(r), int(c)), self.crops[int(i)]

    def window(self, i: int, r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
        """Mask ``i`` on rows ``r0:r1`` and columns ``c0:c1`` of the image, as a new bool array.

        The window may stick out of the image (pixels there are False), so tiles with a halo can read
        it as they are; its shape is always ``(r1 - r0, c1 - c0)`` (0 where that is negative).

        Examples
        --------
        >>> inst = SparseInstances([(1, 2)], [np.ones((2, 3), bool)], (4, 8))
        >>> inst.window(0, 0, 0, 2, 4).astype(int).tolist()
        [[0, 0, 0, 0], [0, 0, 1, 1]]
        """
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
        """The (N, H, W) bool stack, refused above ``max_bytes`` (it grows with N x H x W).

        Raises
        ------
        MemoryError
            Naming the bytes the stack would need, when that is over ``max_bytes``.

        Examples
        --------
        >>> inst = SparseInstances([(1, 2)], [np.ones((2, 3), bool)], (4, 8))
        >>> inst.to_dense().shape
        (1, 4, 8)
        >>> inst.to_dense(max_bytes=16)
        Traceback (most recent call last):
        ...
        MemoryError: SparseInstances.to_dense: 1 masks of 4 x 8 need 32 bytes (0.0 GiB), over max_bytes=16; ...
        """
        h, w = self.image_shape
        need = len(self) * h * w
        if need > max_bytes:
            raise MemoryError(f"SparseInstances.to_dense: {len(self)} masks of {h} x {w} need {need} bytes ({need / 2**30:.1f} GiB), "
                              f"over max_bytes={max_bytes}; read masks one at a time with crop() or window()")
        out = np.zeros((len(self), h, w), bool)
        for i, ((r, c), crop) in enumerate(zip(self.origins, self.crops, strict=True)):
            out[i, r : r + crop.shape[0], c : c + crop.shape[1]] = crop
        return out

    def equals(self, other: object) -> bool:
        """Whether ``other`` is a SparseInstances of the same image with the same masks, in order.

        Compares pixels, not how they are cropped: a crop with a False margin equals its tight one.

        Examples
        --------
        >>> a = SparseInstances([(1, 1)], [np.pad(np.ones((1, 1), bool), 1)], (4, 4))
        >>> b = SparseInstances([(2, 2)], [np.ones((1, 1), bool)], (4, 4))
        >>> a.equals(b), a.equals(SparseInstances([(0, 0)], [np.ones((1, 1), bool)], (4, 4)))
        (True, False)
        """
        if not isinstance(other, SparseInstances) or other.image_shape != self.image_shape or len(other) != len(self):
            return False
        if not np.array_equal(self.areas, other.areas):
            return False
        for i in range(len(self)):
            (oa, ca), (ob, cb) = _tight(*self.crop(i)), _tight(*other.crop(i))
            if oa != ob or not np.array_equal(ca, cb):
                return False
        return True
