"""From pool images to training batches: augmentation, prompts and targets, and the batch stream.

Each image is cropped (scale jitter), flipped and rotated, photometrically jittered (contrast
inversion, gamma, blur, noise), resized as at inference (``ResizeLongestSide``), and given point and
box prompts on its ground-truth instances (:func:`make_sample`). Batches are drawn in the training
loop or by DataLoader worker processes (:func:`batch_source`).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from segment_anything.utils.transforms import ResizeLongestSide

from samstar_env.models.training.config import TrainConfig
from samstar_env.models.training.dense import dense_targets
from samstar_env.models.training.pools import ImagePool


def _augment_crop(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random crop (scale jitter), flips/rot90, then photometric jitter. Returns uint8 grey + labels."""
    h, w = image.shape
    # Crop side log-uniform between min_crop_px and the image side: after resizing to the model input
    # this spreads particle sizes over ~8x (e.g. a 512 image at 0.5x, a 64 crop at 4x).
    short = min(h, w)
    lo = min(config.min_crop_px, short)
    side = int(round(math.exp(rng.uniform(math.log(lo), math.log(short)))))
    # Mild aspect jitter so the model also sees ResizeLongestSide padding, as on non-square images.
    ch = cw = side
    if rng.random() < 0.3:
        shrunk = max(8, int(round(side * rng.uniform(0.6, 1.0))))
        ch, cw = (shrunk, side) if rng.random() < 0.5 else (side, shrunk)
    ch, cw = min(h, ch), min(w, cw)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    img = image[y0 : y0 + ch, x0 : x0 + cw].astype(np.float32)
    lab = labels[y0 : y0 + ch, x0 : x0 + cw]
    k = int(rng.integers(0, 4))
    img, lab = np.rot90(img, k), np.rot90(lab, k)
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]

    # Photometric: bright-field <-> HAADF contrast inversion, gamma, blur, noise, contrast stretch.
    if rng.random() < 0.5:
        img = 1.0 - img
    img = np.clip(img, 0.0, 1.0) ** float(math.exp(rng.uniform(-0.5, 0.5)))
    if rng.random() < 0.3:
        img = ndimage.gaussian_filter(img, sigma=float(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.5:
        img = img + rng.normal(0.0, rng.uniform(0.01, 0.08), size=img.shape).astype(np.float32)
    if rng.random() < 0.3:
        a, b = float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.0, 0.2))
        img = img * a + b
    img8 = np.clip(np.rint(np.clip(img, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img8), np.ascontiguousarray(lab)


@dataclass(frozen=True)
class Sample:
    """One training image at model input scale with its prompts and targets."""

    image: torch.Tensor  # (3, h, w) float, resized but not normalized/padded
    targets: torch.Tensor  # (K, S, S) float GT masks in the padded model frame
    points: torch.Tensor  # (P, 2) xy in the model frame, for the first P prompts
    boxes: torch.Tensor  # (K - P, 4) xyxy, for the remaining prompts
    dense: torch.Tensor | None = None  # (2, S, S) foreground and boundary maps (config.dense_weight > 0)


def make_sample(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, config: TrainConfig, tries: int = 8
) -> Sample | None:
    """Augment one image and draw its prompts; ``None`` when no crop holds a promptable instance."""
    size = config.model.img_size
    resize = ResizeLongestSide(size)
    for _ in range(tries):
        img8, lab = _augment_crop(image, labels, rng, config=config)
        rgb = resize.apply_image(np.repeat(img8[:, :, None], 3, axis=2))
        nh, nw = rgb.shape[:2]
        lab_t = torch.from_numpy(lab.astype(np.int64))[None, None].float()
        lab_r = F.interpolate(lab_t, size=(nh, nw), mode="nearest-exact")[0, 0].long()
        ids, counts = torch.unique(lab_r, return_counts=True)
        keep = (ids > 0) & (counts >= config.min_instance_px)
        ids = ids[keep].numpy()
        if ids.size == 0:
            continue
        k = config.prompts_per_image
        chosen = rng.choice(ids, size=k, replace=ids.size < k)
        lab_pad = torch.zeros((size, size), dtype=torch.long)
        lab_pad[:nh, :nw] = lab_r
        targets = (lab_pad[None] == torch.from_numpy(chosen)[:, None, None]).float()
        n_box = int(round(k * config.box_fraction))
        n_pt = k - n_box
        points = np.zeros((n_pt, 2), np.float32)
        for i in range(n_pt):
            ys, xs = np.nonzero(targets[i].numpy())
            j = int(rng.integers(0, ys.size))
            points[i] = (xs[j], ys[j])
        n_bg = min(n_pt, int(round(n_pt * config.background_fraction)))
        if n_bg:
            bg_ys, bg_xs = np.nonzero(lab_r.numpy() == 0)
            if bg_ys.size:
                # The last n_bg point prompts move to background pixels; their target is empty.
                for i in range(n_pt - n_bg, n_pt):
                    j = int(rng.integers(0, bg_ys.size))
                    points[i] = (bg_xs[j], bg_ys[j])
                    targets[i] = 0.0
        boxes = np.zeros((n_box, 4), np.float32)
        for i in range(n_box):
            ys, xs = np.nonzero(targets[n_pt + i].numpy())
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
            # SAM's box jitter: noise with std 10% of the side, at most 20 px.
            sx, sy = min(0.1 * (x1 - x0 + 1), 20.0), min(0.1 * (y1 - y0 + 1), 20.0)
            jit = rng.normal(0.0, 1.0, 4) * np.array([sx, sy, sx, sy])
            bx = np.array([x0, y0, x1, y1], np.float32) + jit.astype(np.float32)
            bx = np.clip(bx, 0, [nw - 1, nh - 1, nw - 1, nh - 1])
            boxes[i] = [min(bx[0], bx[2]), min(bx[1], bx[3]), max(bx[0], bx[2]), max(bx[1], bx[3])]
        img_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
        dense = dense_targets(lab_pad.numpy()) if config.dense_weight > 0 else None
        return Sample(img_t, targets, torch.from_numpy(points), torch.from_numpy(boxes), dense)
    return None


def draw_batch(
    pools: Sequence[tuple[ImagePool, float]], rng: np.random.Generator, *, config: TrainConfig
) -> list[Sample]:
    """``images_per_step`` samples, each from a pool chosen by weight."""
    weights = np.array([w for _, w in pools], float)
    weights = weights / weights.sum()
    out: list[Sample] = []
    while len(out) < config.images_per_step:
        pool = pools[int(rng.choice(len(pools), p=weights))][0]
        image, labels = pool.get(int(rng.integers(0, len(pool))))
        s = make_sample(image, labels, rng, config=config)
        if s is not None:
            out.append(s)
    return out


def _identity(batch: Any) -> Any:
    return batch


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches of :func:`draw_batch`; each DataLoader worker has its own seeded generator."""

    def __init__(self, pools: Sequence[tuple[ImagePool, float]], *, config: TrainConfig, start_step: int) -> None:
        super().__init__()
        self.pools, self.config, self.start_step = pools, config, start_step

    def __iter__(self) -> Iterator[list[Sample]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None:
            import cv2

            # Ctrl-C or `timeout` signal the whole process group: the main process must finish its step,
            # checkpoint and then end the workers, so a worker that died first would break that.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # One thread per worker: the workers already fill the cores; nested pools oversubscribe them.
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
        rng = np.random.default_rng([self.config.seed, self.start_step, worker])
        while True:
            yield draw_batch(self.pools, rng, config=self.config)


def batch_source(
    pools: Sequence[tuple[ImagePool, float]], rng: np.random.Generator, *, config: TrainConfig, start_step: int = 0, pin: bool = False
) -> Generator[list[Sample], None, None]:
    """Endless training batches: drawn in the loop from ``rng`` (``data_workers`` 0, exact resume) or by
    ``config.data_workers`` DataLoader processes (``rng`` unused; see ``TrainConfig.data_workers``)."""
    if config.data_workers <= 0:
        while True:
            yield draw_batch(pools, rng, config=config)
    loader = torch.utils.data.DataLoader(
        _BatchStream(pools, config=config, start_step=start_step),
        batch_size=None,
        collate_fn=_identity,
        num_workers=config.data_workers,
        # Not fork: a process forked while other threads hold locks (BLAS, CUDA, a Dask client,
        # a notebook's) can deadlock; forkserver children start from a clean single-threaded server.
        multiprocessing_context="forkserver",
        pin_memory=pin,
        prefetch_factor=4,
    )
    yield from loader
