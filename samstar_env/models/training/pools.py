"""Where training images come from: in-memory arrays, EMPS folders, cached synthetic tasks, drawn shapes.

Every pool is a finite, indexable source of (grey float32 image in [0, 1], int32 visible labels);
:func:`build_pools` makes a run's weighted mix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from samstar_env.errors import InputError, MissingFileError
from samstar_env.models.training.config import TrainConfig


class ImagePool(Protocol):
    """A finite, indexable source of (grey float32 image in [0, 1], int32 visible labels)."""

    def __len__(self) -> int: ...

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class ArrayPool:
    """Images held in memory (tests, small custom sets)."""

    items: Sequence[tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.items[index]


@dataclass
class EmpsPool:
    """The real micrographs of an EMPS-style folder (images/<id>.png, segmaps/<id>.png), loaded once."""

    root: Path
    _items: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        from PIL import Image

        from samstar_env.data.normalize import normalize_image

        for img_path in sorted((self.root / "images").glob("*.png")):
            seg_path = self.root / "segmaps" / img_path.name
            if not seg_path.exists():
                continue
            grey = normalize_image(np.asarray(Image.open(img_path)), what=str(img_path))
            labels = np.asarray(Image.open(seg_path)).astype(np.int32)
            if labels.shape != grey.shape or labels.max() == 0:
                continue
            self._items.append((grey, labels))
        if not self._items:
            raise MissingFileError(f"no image/segmap pairs found under {self.root}")

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self._items[index]

    def __getstate__(self) -> dict[str, Any]:
        # Sent to DataLoader worker processes: the folder, not hundreds of MB of decoded images.
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root, self._items = state["root"], []
        self.__post_init__()


@dataclass
class SyntheticPool:
    """Synthetic micrographs of one task, generated on first use and cached to disk.

    Generation costs ~0.3 s per image, so images are made lazily (spreading the cost over training)
    and reused with augmentation; the cache makes resumed runs and reruns cheap. Seeds come from
    ``split_seeds(task, "train")``: disjoint from every tune/test split by construction.
    """

    task: str
    size: int
    cache_dir: Path
    n: int

    def __len__(self) -> int:
        return self.n

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.cache_dir / f"{self.task}-{self.size}-{index:05d}.npz"
        if path.exists():
            with np.load(path) as z:
                return z["image"], z["labels"]
        from samstar_env.data.synthetic import generate, split_seeds

        m = generate(self.task, split_seeds(self.task, "train")[index], size=(self.size, self.size))
        assert m.labels is not None
        image, labels = np.asarray(m.image, np.float32), np.asarray(m.labels, np.int32)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Unique temporary name: a pre-generating process may fill the same cache concurrently.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, image=image, labels=labels)
        os.replace(tmp, path)
        return image, labels


@dataclass
class ShapesPool:
    """Crude particles (disks, ellipses, rotated squares) drawn on the fly: the curriculum's first stage.

    From a random init the promptable task is slow to learn on realistic micrographs (faint, tiny,
    textured particles); on these images the particle is the only structure, so the decoder first
    learns to follow the prompt, and realistic data then refine it (see MODEL_CARD.md). Image
    ``index`` is drawn from ``seed`` and ``index`` only, so the pool is deterministic, unbounded in
    practice (``n`` virtual images) and needs no cache.
    """

    seed: int
    size: int = 256
    n: int = 1_000_000
    radius_range_px: tuple[float, float] = (2.5, 40.0)

    def __len__(self) -> int:
        return self.n

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        rng = np.random.default_rng([self.seed, index])
        size = self.size
        background = float(rng.uniform(0.15, 0.85))
        contrast = float(rng.uniform(0.15, 0.6)) * (1.0 if rng.random() < 0.5 else -1.0)
        image = np.full((size, size), background, np.float32)
        labels = np.zeros((size, size), np.int32)
        # One size scale per image (as in a real sample), log-uniform over radius_range_px across images.
        lo, hi = self.radius_range_px
        r0 = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        target_cover = float(rng.uniform(0.08, 0.45))
        allow_overlap = rng.random() < 0.3
        # Accepted particles (x, y, r), preallocated: the overlap test is one vectorized check per try.
        centres = np.zeros((400, 3))
        covered, label = 0, 0
        for _ in range(4000):
            if covered >= target_cover * size * size or label >= 400:
                break
            r = max(1.5, r0 * float(rng.lognormal(0.0, 0.25)))
            cx, cy = float(rng.uniform(0, size)), float(rng.uniform(0, size))
            # Touching is allowed (and common): only deep overlaps are rejected, unless this image
            # has stacked (occluding) particles.
            min_gap = 0.5 if allow_overlap else 0.95
            placed = centres[:label]
            if np.any((cx - placed[:, 0]) ** 2 + (cy - placed[:, 1]) ** 2 < (min_gap * (r + placed[:, 2])) ** 2):
                continue
            kind = rng.integers(0, 3)
            angle = float(rng.uniform(0, 180))
            # Drawn in a window around the particle (every shape fits within 1.3 r of its centre), at
            # the same 1/16-px positions as on the whole canvas: same pixels, a fraction of the cost.
            reach = int(math.ceil(1.3 * r)) + 2
            x0, y0 = max(0, int(cx) - reach), max(0, int(cy) - reach)
            x1, y1 = min(size, int(cx) + reach + 1), min(size, int(cy) + reach + 1)
            shape = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), np.uint8)
            centre16 = (round(cx * 16) - 16 * x0, round(cy * 16) - 16 * y0)
            if kind == 0:
                cv2.circle(shape, centre16, round(r * 16), 1, -1, cv2.LINE_8, 4)
            elif kind == 1:
                axes = (round(r * 16), round(r * float(rng.uniform(0.5, 1.0)) * 16))
                cv2.ellipse(shape, centre16, axes, angle, 0, 360, 1, -1, cv2.LINE_8, 4)
            else:
                box = cv2.boxPoints(((cx, cy), (1.7 * r, 1.7 * r * float(rng.uniform(0.8, 1.0))), angle))
                pts = np.round(box * 16).astype(np.int32) - np.array([16 * x0, 16 * y0], np.int32)
                cv2.fillPoly(shape, [pts], 1, cv2.LINE_8, 4)
            region = shape.astype(bool)
            if region.sum() < 3:
                continue
            window = (slice(y0, y0 + shape.shape[0]), slice(x0, x0 + shape.shape[1]))
            labels[window][region] = label + 1  # painted in order: later particles occlude earlier ones
            image[window][region] = background + contrast * float(rng.uniform(0.7, 1.3))
            centres[label] = (cx, cy, r)
            label += 1
            covered += int(region.sum())
        image = ndimage.gaussian_filter(image, sigma=float(rng.uniform(0.0, 1.2)))
        image += rng.normal(0.0, float(rng.uniform(0.0, 0.06)), size=image.shape).astype(np.float32)
        return np.clip(image, 0.0, 1.0).astype(np.float32), labels


def build_pools(config: TrainConfig) -> list[tuple[ImagePool, float]]:
    """The default data mix: the synthetic tasks (equal shares) and emps-train (``real_fraction``)."""
    pools: list[tuple[ImagePool, float]] = []
    real_fraction = config.real_fraction
    if real_fraction > 0:
        from samstar_env.data.paths import dataset_dir

        # emps-dev is the validation set: only emps-train is ever read here.
        pools.append((EmpsPool(dataset_dir("emps-train")), real_fraction))
    if config.shapes_fraction > 0:
        pools.append((ShapesPool(seed=config.seed, size=config.model.img_size, radius_range_px=(config.shapes_radius_px[0], config.shapes_radius_px[1])), config.shapes_fraction))
    if config.tasks and real_fraction + config.shapes_fraction < 1.0:
        cache = Path(config.run_dir) / "synthetic-cache"
        share = (1.0 - real_fraction - config.shapes_fraction) / len(config.tasks)
        for task in config.tasks:
            pools.append((SyntheticPool(task, config.synthetic_size_px, cache, config.synthetic_pool), share))
    if not pools:
        raise InputError("no training data: set tasks or real_fraction > 0")
    return pools
