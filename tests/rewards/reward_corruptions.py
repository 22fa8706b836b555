"""Ground-truth masks of a synthetic micrograph and controlled corruptions of them.

Each corruption mimics one failure of plain SAM named in the SAM* paper; the rewards must score the
clean ground truth above it. All are deterministic (seeded).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from samstar_env.data.micrograph import Micrograph
from samstar_env.engine.maskset import MaskSet


def gt_masks(m: Micrograph) -> np.ndarray:
    """(N, H, W) visible ground-truth masks."""
    return MaskSet.from_labels(m.labels).masks.copy()


def merge_neighbours(m: Micrograph, *, fraction: float = 0.5, seed: int = 0) -> MaskSet:
    """Merge touching ground-truth particles pairwise (dense-cluster failure)."""
    masks = gt_masks(m)
    rng = np.random.default_rng(seed)
    lab = m.labels
    n = masks.shape[0]
    used = np.zeros(n, bool)
    out = []
    for i in rng.permutation(n):
        if used[i]:
            continue
        ring = ndi.binary_dilation(masks[i], iterations=2) & ~masks[i]
        nb = [j - 1 for j in np.unique(lab[ring]) if j > 0 and not used[j - 1] and j - 1 != i]
        if nb and rng.random() < fraction:
            j = nb[0]
            out.append(masks[i] | masks[j])
            used[i] = used[j] = True
        else:
            out.append(masks[i])
            used[i] = True
    return MaskSet.from_masks(np.array(out))


def split_particles(m: Micrograph, *, fraction: float = 0.5, seed: int = 0) -> MaskSet:
    """Cut particles in two through their centroid (over-segmentation)."""
    masks = gt_masks(m)
    rng = np.random.default_rng(seed)
    out = []
    rr, cc = np.mgrid[: masks.shape[1], : masks.shape[2]]
    for mk in masks:
        if rng.random() < fraction and mk.sum() >= 8:
            r0, c0 = np.argwhere(mk).mean(axis=0)
            a = rng.uniform(0, np.pi)
            side = (rr - r0) * np.cos(a) + (cc - c0) * np.sin(a) > 0
            for part in (mk & side, mk & ~side):
                if part.any():
                    out.append(part)
        else:
            out.append(mk)
    return MaskSet.from_masks(np.array(out))


def drop_small(m: Micrograph, *, quantile: float = 0.5) -> MaskSet:
    """Drop the particles below the area quantile (small particles missed)."""
    masks = gt_masks(m)
    a = masks.sum(axis=(1, 2))
    return MaskSet.from_masks(masks[a >= np.quantile(a, quantile)])


def add_duplicates(m: Micrograph, *, fraction: float = 0.5, seed: int = 0) -> MaskSet:
    """Add an eroded copy of some particles (the same particle returned twice)."""
    masks = gt_masks(m)
    rng = np.random.default_rng(seed)
    extra = []
    for mk in masks:
        if rng.random() < fraction:
            e = ndi.binary_erosion(mk, iterations=1)
            extra.append(e if e.sum() > 0 else mk)
    return MaskSet.from_masks(np.concatenate([masks, np.array(extra).reshape(-1, *masks.shape[1:])]))


def add_background_blob(m: Micrograph) -> MaskSet:
    """Add one mask covering the whole support (everything that is not a particle)."""
    masks = gt_masks(m)
    bg = m.labels == 0
    return MaskSet.from_masks(np.concatenate([masks, bg[None]]))


def add_background_fragments(m: Micrograph, *, n: int = 20, seed: int = 0) -> MaskSet:
    """Add particle-sized disks on the empty support (false positives on noise)."""
    masks = gt_masks(m)
    rng = np.random.default_rng(seed)
    h, w = m.shape
    r = max(2, int(np.sqrt(np.median(masks.sum(axis=(1, 2))) / np.pi)))
    free = ndi.binary_erosion(m.labels == 0, iterations=r + 1)
    rr, cc = np.mgrid[:h, :w]
    cand = np.argwhere(free)
    extra = []
    for k in rng.choice(len(cand), size=min(n, len(cand)), replace=False):
        r0, c0 = cand[k]
        extra.append((rr - r0) ** 2 + (cc - c0) ** 2 <= r * r)
    return MaskSet.from_masks(np.concatenate([masks, np.array(extra).reshape(-1, h, w)]))


CORRUPTIONS = {
    "merged": merge_neighbours,
    "split": split_particles,
    "dropped_small": drop_small,
    "duplicates": add_duplicates,
    "background_blob": add_background_blob,
    "background_fragments": add_background_fragments,
}
