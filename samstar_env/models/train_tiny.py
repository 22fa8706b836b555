"""Training recipe for samstar-tiny: promptable segmentation training as SAM was trained.

Each step draws a few images (synthetic micrographs with exact ground truth, mixed with real EMPS
micrographs), augments them (contrast inversion, gamma, noise, blur, scale jitter, flips), embeds
each image once and decodes several prompts per image:

- one positive point inside a ground-truth instance, with SAM's three-mask (multimask) output, the
  mask loss taken as the minimum over the three masks (a single point is ambiguous: part, whole,
  aggregate);
- a jittered ground-truth box, with the single-mask output (a box is not ambiguous).

Mask loss: focal (weight 20) + dice (weight 1) on the predicted logits upsampled to the model input
versus the ground truth at that scale (upsampling predictions rather than downsampling the truth keeps
3-px particles in the target). The IoU head is regressed (MSE) to the true IoU of *every* output mask,
not only the selected one, because the automatic mask generator thresholds all three by
``pred_iou_thresh``.

Model input is prepared exactly as at inference: ``ResizeLongestSide`` on uint8 RGB, then
``Sam.preprocess`` (pixel normalization and padding).

Run ``samstar train-model --help``; weights are written in samstar's self-describing format
``{"format": "samstar-sam/1", "config": ..., "model": state_dict}`` with a ``.sha256`` beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from torchvision.ops import sigmoid_focal_loss

from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, TinySamConfig, build_tiny_sam, count_parameters

WEIGHTS_FORMAT = "samstar-sam/1"

# Synthetic tasks mixed into training (names as accepted by samstar_env.data.synthetic.generate).
DEFAULT_TASKS: tuple[str, ...] = ("perovskite", "ito", "auco")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a samstar-tiny training run."""

    run_dir: str = "train_runs/samstar-tiny"
    """Folder for checkpoints, TensorBoard logs and the synthetic image cache (keep it out of git)."""
    output: str | None = None
    """Where the final weights go; default ``<run_dir>/samstar_tiny.pt``. Also rewritten at every checkpoint."""
    seed: int = 0
    """Seeds weight initialization (torch) and all data sampling (numpy)."""
    model: TinySamConfig = SAMSTAR_TINY_CONFIG
    """Model dimensions."""
    pe_scale: float = 1.0
    """Multiply the prompt encoder's random Fourier frequencies at init (finer positional resolution)."""
    attn_match_init: float = 3.0
    """Initialize every mask-decoder attention with ``k_proj = q_proj = scale * q_proj`` (0 keeps PyTorch's init).

    See :func:`match_decoder_attention`: it makes the attention logits start as a positional-encoding
    similarity kernel, so prompts are routed to their location from step 0. Measured overfitting two
    crude-particle images (16 point prompts each, lr 1e-3): selected-mask IoU 0.64 after 60 steps with
    scale 3, against 0.16 with PyTorch's default init (and 0.12 with q/k scaled by 4 unmatched)."""
    init_weights: str | None = None
    """Start from these samstar-sam/1 weights (fresh optimizer and schedule) instead of a random init."""
    max_steps: int = 5000
    """Stop after this many optimizer steps (and anneal the learning rate over them if schedule='steps')."""
    max_minutes: float | None = None
    """Wall-clock budget of training; stops by itself and writes the final weights."""
    schedule: str = "steps"
    """'steps': cosine over max_steps (reproducible); 'time': cosine over max_minutes (finishes the anneal on a busy machine)."""
    images_per_step: int = 2
    """Images per optimizer step; each is embedded once."""
    prompts_per_image: int = 24
    """Prompts (ground-truth instances) decoded per image."""
    box_fraction: float = 0.3
    """Fraction of prompts that are jittered boxes (single-mask output); the rest are single points (multimask)."""
    background_fraction: float = 0.0
    """Fraction of point prompts placed on background pixels, with an empty target and IoU target 0.

    SAM's training prompts only objects, so its IoU head never learns that a point on the support film
    gives no particle; the automatic mask generator prompts a grid, and most grid points of a
    micrograph fall on background. With these prompts, ``pred_iou_thresh`` filters their masks."""
    point_multimask: bool = True
    """Point prompts use SAM's three-mask output with the min loss; False trains the single-mask output.

    See :func:`batch_loss`: from a random init, the min over three masks lets the model settle on a
    prompt-independent "codebook" of three salient masks; single-mask training has no such shortcut."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    min_lr_ratio: float = 0.02
    """Final learning rate as a fraction of the peak."""
    warmup_steps: int = 50
    """Linear warm-up steps."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (small batches give spiky gradients)."""
    focal_weight: float = 0.0
    """Weight of the focal loss (SAM: 20; 0 for samstar-tiny, which it kept from learning: see _focal_weight_at)."""
    focal_delay_steps: int = 0
    """Dice only (focal weight 0) for these first steps: see _focal_weight_at."""
    focal_warmup_steps: int = 0
    """Then ramp the focal weight linearly from 0 to focal_weight over these steps."""
    focal_alpha: float = -1.0
    """Focal-loss weight of foreground pixels (background gets 1 - alpha); negative disables the weighting.

    Off by default: particles cover well under 1 % of a 256-px frame, and alpha = 0.25 (the RetinaNet
    value) made the model collapse to empty masks. Measured: overfitting one 2-image batch, mIoU went
    to 0.00 after 40 steps with alpha = 0.25 and to 0.46 after 70 steps with the weighting off."""
    dice_weight: float = 1.0
    """Weight of the dice loss (SAM: 1)."""
    iou_weight: float = 1.0
    """Weight of the IoU-head MSE loss."""
    tasks: tuple[str, ...] = DEFAULT_TASKS
    """Synthetic tasks to draw from."""
    shapes_fraction: float = 0.0
    """Share of crude drawn particles (:class:`ShapesPool`), the curriculum's first stage (1.0 = only shapes)."""
    shapes_radius_px: tuple[float, float] = (2.5, 40.0)
    """Particle radius range of :class:`ShapesPool` (log-uniform per image)."""
    synthetic_pool: int = 160
    """Synthetic images per task (generated lazily on first use, cached under run_dir)."""
    synthetic_size_px: int = 512
    """Side of generated synthetic images."""
    real_fraction: float = 0.35
    """Probability that an image comes from emps-train (0 disables real data)."""
    min_crop_px: int = 64
    """Smallest crop side before resizing to the model input (sets the largest zoom, hence particle size jitter)."""
    min_instance_px: int = 6
    """Instances smaller than this (pixels at model input) are not prompted: below what the 128-px low-res mask can hold."""
    checkpoint_minutes: float = 4.0
    """Write a checkpoint (and export weights) at least this often."""
    checkpoint_steps: int = 0
    """Also checkpoint every this many steps (0: off)."""
    keep_snapshots: bool = False
    """Also keep the weights of every checkpoint under <run_dir>/snapshots (to pick or compare later)."""
    log_every: int = 10
    """Steps between progress lines and TensorBoard points."""
    threads: int = 2
    """torch CPU threads."""
    batched_decode: bool = False
    """Decode the prompts of all images of a step in one decoder call (:func:`decode_prompts`) instead of
    one call per image, as SAM calls its decoder. Same masks and loss (tested); the aim is a GPU,
    where a step of the stage-5 recipe spent 1.16 of its 1.20 s in 64 per-image decoder calls. Not
    yet measured on a GPU. On the 2-core CPU (``python benchmarks/gpu_check.py --profile-only-cpu``,
    whole training steps, medians) it is no faster: 0.657 vs 0.680 s per step at 2 images x 16
    prompts, 1.7x slower at 32 x 16 (23.3 vs 13.4 s; the batched tensors leave the caches), hence
    off by default."""
    data_workers: int = 0
    """Processes that draw and augment batches (0: in the training loop, as on a 2-core CPU).

    On a GPU the model step is far faster than drawing a batch in one process, so batches come from a
    ``torch.utils.data.DataLoader`` of this many workers. The stream is deterministic for a given
    seed, worker count and resume step (worker ``i`` of a run resumed at step ``s`` draws from
    ``numpy.random.default_rng([seed, s, i])``), but differs from the in-loop stream."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'."""
    tensorboard: bool = True
    """Write TensorBoard logs to <run_dir>/tb."""


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Parameters
    ----------
    steps : int
        Optimizer steps completed (in total, including resumed ones).
    losses : list of float
        Total loss of each step run in this call.
    weights_path : Path
        The exported weights.
    elapsed_s : float
        Training wall time (including resumed time).
    """

    steps: int
    losses: list[float]
    weights_path: Path
    elapsed_s: float


# --------------------------------------------------------------------------------------------- data


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
            raise FileNotFoundError(f"no image/segmap pairs found under {self.root}")

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
        pools.append((ShapesPool(seed=config.seed, size=config.model.img_size, radius_range_px=tuple(config.shapes_radius_px)), config.shapes_fraction))
    if config.tasks and real_fraction + config.shapes_fraction < 1.0:
        cache = Path(config.run_dir) / "synthetic-cache"
        share = (1.0 - real_fraction - config.shapes_fraction) / len(config.tasks)
        for task in config.tasks:
            pools.append((SyntheticPool(task, config.synthetic_size_px, cache, config.synthetic_pool), share))
    if not pools:
        raise ValueError("no training data: set tasks or real_fraction > 0")
    return pools


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
        return Sample(img_t, targets, torch.from_numpy(points), torch.from_numpy(boxes))
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
) -> Iterator[list[Sample]]:
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


# --------------------------------------------------------------------------------------------- loss


def _mask_losses(
    logits: torch.Tensor, targets: torch.Tensor, *, alpha: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-mask focal, dice and true IoU. logits (N, M, S, S), targets (N, S, S) -> three (N, M)."""
    t = targets[:, None].expand_as(logits)
    focal = sigmoid_focal_loss(logits, t, alpha=alpha, gamma=2.0, reduction="none").mean(dim=(-2, -1))
    p = logits.sigmoid()
    dice = 1.0 - (2.0 * (p * t).sum((-2, -1)) + 1.0) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1.0)
    with torch.no_grad():
        pb = logits > 0.0  # the mask AMG would keep (mask_threshold 0)
        tb = t > 0.5
        inter = (pb & tb).sum((-2, -1)).float()
        union = (pb | tb).sum((-2, -1)).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return focal, dice, iou


def _focal_weight_at(step: int, config: TrainConfig) -> float:
    """Focal weight at ``step``: 0 for ``focal_delay_steps``, then a linear ramp to ``focal_weight``.

    Why the shipped recipe sets ``focal_weight`` 0: from a random init (SAM started from an
    MAE-pretrained encoder) any focal term kept the model from learning to localize the prompt within
    our CPU budget. Measured on drawn disks with a 32x32 token grid (128-px model, lr 1e-3): dice alone
    reached selected-mask IoU 0.53 by step 75; with focal (alpha off) at weight 2 or 20 from the start
    it stayed at ~0.0-0.2 over 200 steps; ramping focal 0 -> 20 after 100 dice-only steps dropped the
    IoU from ~0.45 back to ~0.15. On the real mix, focal 20 from the start gave IoU 0.000 after 600
    steps (spatially constant logits). The delay and ramp stay available for longer (GPU) runs.
    """
    if step < config.focal_delay_steps:
        return 0.0
    ramp_step = step - config.focal_delay_steps
    if config.focal_warmup_steps <= 0 or ramp_step >= config.focal_warmup_steps:
        return config.focal_weight
    return config.focal_weight * ramp_step / config.focal_warmup_steps


def decode_prompts(
    sam: Sam,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    *,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's mask decoder on prompts from several images in one call.

    ``MaskDecoder`` takes one image embedding per call and repeats it for every prompt
    (``src = repeat(embedding) + dense``). Passing a zero embedding and each prompt's own image
    embedding added to its dense embedding gives the same ``src``, bit for bit (x + 0 = x), so
    SAM's own decoder code runs unchanged on a batch of prompts from different images.

    Parameters
    ----------
    image_embeddings : Tensor, shape (N, C, h, w)
        The embedding of each prompt's image (``emb[image_index]``).
    image_pe, sparse, dense : Tensor
        As for ``MaskDecoder.forward`` (``sparse`` and ``dense`` from the prompt encoder, N prompts).
    multimask : bool
        SAM's three-mask output, else the single mask.

    Returns
    -------
    low_res_masks : Tensor, shape (N, M, 4h, 4w)
    iou_predictions : Tensor, shape (N, M)
    """
    return sam.mask_decoder(
        image_embeddings=torch.zeros_like(image_embeddings[:1]),
        image_pe=image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense + image_embeddings,
        multimask_output=multimask,
    )


def batch_loss(
    sam: Sam, samples: Sequence[Sample], *, config: TrainConfig, step: int | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of a batch and its parts (for logging); ``step`` sets the focal ramp (None: full weight)."""
    focal_weight = config.focal_weight if step is None else _focal_weight_at(step, config)
    device = sam.device
    size = config.model.img_size
    x = torch.stack([sam.preprocess(s.image.to(device)) for s in samples])
    emb = sam.image_encoder(x)
    pe = sam.prompt_encoder.get_dense_pe()
    totals: list[torch.Tensor] = []
    # Parts are summed on the device and read once: a read per decode would stall a GPU 4x per job.
    sums = torch.zeros(4, device=device)
    n_total = 0
    # (points, boxes, multimask output, image of each prompt, targets): points are multimask
    # (ambiguous), boxes single. Per image, as SAM calls its decoder, or all images in one call each
    # for points and boxes (config.batched_decode).
    groups = [list(range(len(samples)))] if config.batched_decode else [[b] for b in range(len(samples))]
    Job = tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None, bool, torch.Tensor, int, torch.Tensor]
    jobs: list[Job] = []
    for group in groups:
        part = [samples[b] for b in group]
        n_points = [s.points.shape[0] for s in part]
        n_boxes = [s.boxes.shape[0] for s in part]
        if sum(n_points):
            coords = torch.cat([s.points for s in part]).to(device)[:, None, :]
            lbl = torch.ones((sum(n_points), 1), dtype=torch.int, device=device)
            tgt = torch.cat([s.targets[:n] for s, n in zip(part, n_points, strict=True)]).to(device)
            index = torch.cat([torch.full((n,), b) for b, n in zip(group, n_points, strict=True)]).to(device)
            jobs.append(((coords, lbl), None, config.point_multimask, index, group[0], tgt))
        if sum(n_boxes):
            boxes = torch.cat([s.boxes for s in part]).to(device)
            tgt = torch.cat([s.targets[n:] for s, n in zip(part, n_points, strict=True)]).to(device)
            index = torch.cat([torch.full((n,), b) for b, n in zip(group, n_boxes, strict=True)]).to(device)
            jobs.append((None, boxes, False, index, group[0], tgt))
    for points, boxes, multimask, image_index, first_image, tgt in jobs:
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        if config.batched_decode:
            low, iou_pred = decode_prompts(sam, emb[image_index], pe, sparse, dense, multimask=multimask)
        else:
            low, iou_pred = sam.mask_decoder(
                image_embeddings=emb[first_image : first_image + 1],
                image_pe=pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
        # Same first step as Sam.postprocess_masks: bilinear to the padded model-input frame.
        logits = F.interpolate(low, (size, size), mode="bilinear", align_corners=False)
        focal, dice, iou_true = _mask_losses(logits, tgt, alpha=config.focal_alpha)
        # A background prompt (empty target) has no particle to find: its IoU target is 0.
        iou_true = torch.where((tgt.sum((-2, -1)) == 0)[:, None], torch.zeros_like(iou_true), iou_true)
        mask_loss = focal_weight * focal + config.dice_weight * dice
        best = mask_loss.argmin(dim=1)
        rows = torch.arange(mask_loss.shape[0], device=device)
        iou_mse = ((iou_pred - iou_true) ** 2).mean(dim=1)
        totals.append(mask_loss[rows, best] + config.iou_weight * iou_mse)
        n_total += int(tgt.shape[0])
        with torch.no_grad():
            sums += torch.stack(
                [focal[rows, best].sum(), dice[rows, best].sum(), iou_mse.sum(), iou_true[rows, best].sum()]
            )
    loss = torch.cat(totals).mean()
    values = (sums / max(n_total, 1)).tolist()
    return loss, dict(zip(("focal", "dice", "iou_mse", "miou"), values, strict=True))


# --------------------------------------------------------------------------------------------- I/O


def match_decoder_attention(sam: Sam, *, scale: float) -> int:
    """Set ``k_proj`` to ``q_proj`` (both times ``scale``) in every attention of the mask decoder.

    Why: SAM's decoder finds the prompt's location through attention between the prompt tokens and
    the image tokens, whose inputs both carry the prompt encoder's Fourier positional encoding (PE).
    With independent random projections, ``q . k`` is noise and attention over the 1,024 image tokens
    starts uniform, so the decoder first learns masks that ignore the prompt (a fixed "codebook" of
    salient masks under the multimask min loss) and stays there; real SAM escapes this with an
    MAE-pretrained encoder and 90k large-batch steps. With ``k_proj = q_proj = W``, the logit contains
    ``pe_q^T W^T W pe_k``, a positive-definite kernel that peaks where the two positions match, and
    ``scale`` sets its sharpness: routing works from the first step and training refines it. Only the
    initialization changes; the architecture (and inference) is plain SAM.

    Returns the number of attention modules changed.
    """
    changed = 0
    with torch.no_grad():
        for module in sam.mask_decoder.modules():
            if hasattr(module, "q_proj") and hasattr(module, "k_proj") and module.q_proj.weight.shape == module.k_proj.weight.shape:
                module.q_proj.weight.mul_(scale)
                module.k_proj.weight.copy_(module.q_proj.weight)
                changed += 1
    return changed


def save_weights(sam: Sam, config: TinySamConfig, path: str | os.PathLike[str]) -> str:
    """Write weights in samstar's self-describing format and ``<path>.sha256``; returns the digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sam.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": WEIGHTS_FORMAT, "config": config.to_dict(), "model": state}, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(digest + "\n")
    return digest


def load_weights(path: str | os.PathLike[str], *, check_hash: bool = True) -> Sam:
    """Rebuild a SAM from a file written by :func:`save_weights` (eval mode, CPU)."""
    path = Path(path)
    if check_hash:
        sha = path.with_name(path.name + ".sha256")
        if sha.exists():
            expected = sha.read_text().split()[0]
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != expected:
                raise RuntimeError(f"{path}: sha256 {actual} does not match {sha} ({expected})")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a {WEIGHTS_FORMAT} file (format={blob.get('format')!r})")
    sam = build_tiny_sam(TinySamConfig.from_dict(blob["config"]))
    sam.load_state_dict(blob["model"])
    return sam.eval()


def init_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model config stored in a weights file."""
    return dict(torch.load(path, map_location="cpu", weights_only=True)["config"])


def _lr_at(step: int, progress: float, config: TrainConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``lr * min_lr_ratio`` over ``progress`` in [0, 1]."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    cos = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cos)


def _checkpoint_path(config: TrainConfig) -> Path:
    return Path(config.run_dir) / "checkpoint.pt"


def _save_checkpoint(
    config: TrainConfig, sam: Sam, opt: torch.optim.Optimizer, step: int, rng: np.random.Generator, elapsed_s: float
) -> None:
    path = _checkpoint_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "step": step,
            "elapsed_s": elapsed_s,
            "model": sam.state_dict(),
            "optimizer": opt.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "config": _config_to_dict(config),
        },
        tmp,
    )
    os.replace(tmp, path)


def _config_to_dict(config: TrainConfig) -> dict[str, Any]:
    d = asdict(config)
    d["model"] = config.model.to_dict()
    d["tasks"] = list(config.tasks)
    d["shapes_radius_px"] = list(config.shapes_radius_px)
    return d


# --------------------------------------------------------------------------------------------- loop


def train(
    config: TrainConfig,
    *,
    pools: Sequence[tuple[ImagePool, float]] | None = None,
    resume: bool = False,
    stop_at_step: int | None = None,
) -> TrainResult:
    """Train (or resume training) a small SAM and export its weights.

    Parameters
    ----------
    config : TrainConfig
        The run.
    pools : sequence of (ImagePool, weight), optional
        Data sources; default :func:`build_pools` (synthetic tasks + emps-train).
    resume : bool
        Continue from ``<run_dir>/checkpoint.pt`` (model, optimizer, step, rng states, elapsed time).
    stop_at_step : int, optional
        Stop (checkpoint and export) at this step without changing the schedule, as an interruption
        would; a later ``resume=True`` call continues exactly where it stopped.

    Returns
    -------
    TrainResult
    """
    torch.set_num_threads(config.threads)
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    output = Path(config.output) if config.output else run_dir / "samstar_tiny.pt"
    if pools is None:
        pools = build_pools(config)

    torch.manual_seed(config.seed)
    sam = build_tiny_sam(config.model, seed=config.seed)
    if config.pe_scale != 1.0:
        # The frequencies are a buffer saved with the weights: inference uses them unchanged.
        with torch.no_grad():
            sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(config.pe_scale)
    if config.attn_match_init > 0:
        match_decoder_attention(sam, scale=config.attn_match_init)
    if config.init_weights:
        init = load_weights(config.init_weights)
        if TinySamConfig.from_dict(init_config(config.init_weights)) != config.model:
            raise ValueError(f"init_weights {config.init_weights}: model config differs from the run's")
        sam.load_state_dict(init.state_dict())
    sam = sam.to(device)
    sam.train()
    opt = torch.optim.AdamW(sam.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    step, elapsed_before = 0, 0.0
    ckpt = _checkpoint_path(config)
    if resume:
        if not ckpt.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        sam.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        # map_location moved every tensor to the device; the CPU generator state must stay on the CPU.
        torch.set_rng_state(state["torch_rng"].cpu())
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        print(f"resumed from {ckpt} at step {step}", flush=True)
    else:
        (run_dir / "config.json").write_text(json.dumps(_config_to_dict(config), indent=2))

    writer = None
    if config.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=step)
        except ImportError:
            print("tensorboard not installed: no TensorBoard logs", file=sys.stderr)

    print(f"training {count_parameters(sam):,} parameters on {device}, run dir {run_dir}", flush=True)
    budget_s = config.max_minutes * 60.0 if config.max_minutes else None
    t0 = time.monotonic()
    last_ckpt = t0
    losses: list[float] = []
    window_t, window_steps, window_wait = t0, 0, 0.0

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t0

    # Ctrl-C / SIGTERM finish the current step, then checkpoint and export as at a normal end.
    stop = {"flag": False}

    def _request_stop(signum: int, frame: Any) -> None:
        stop["flag"] = True
        print(f"signal {signum}: stopping after this step", flush=True)

    old_handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, _request_stop)

    batches = batch_source(pools, rng, config=config, start_step=step, pin=use_cuda)
    while step < config.max_steps and (budget_s is None or elapsed() < budget_s) and not stop["flag"]:
        if stop_at_step is not None and step >= stop_at_step:
            break
        if config.schedule == "time" and budget_s is not None:
            progress = elapsed() / budget_s
        else:
            progress = (step - config.warmup_steps) / max(config.max_steps - config.warmup_steps, 1)
        lr = _lr_at(step, progress, config)
        for g in opt.param_groups:
            g["lr"] = lr
        t_wait = time.monotonic()
        samples = next(batches)
        window_wait += time.monotonic() - t_wait
        loss, parts = batch_loss(sam, samples, config=config, step=step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(sam.parameters(), config.grad_clip)
        opt.step()
        step += 1
        window_steps += 1
        loss_value = loss.item()
        losses.append(loss_value)

        if writer is not None:
            writer.add_scalar("loss/total", loss_value, step)
            for k, v in parts.items():
                writer.add_scalar(f"loss/{k}" if k != "miou" else "metrics/selected_mask_iou", v, step)
            writer.add_scalar("lr", lr, step)
        if step % config.log_every == 0 or step == config.max_steps:
            now = time.monotonic()
            its = window_steps / max(now - window_t, 1e-9)
            # Share of the window spent waiting for batches: near 1 means data-bound (add data_workers).
            wait_share = window_wait / max(now - window_t, 1e-9)
            window_t, window_steps, window_wait = now, 0, 0.0
            left_steps = (config.max_steps - step) / max(its, 1e-9)
            left = min(left_steps, budget_s - elapsed()) if budget_s is not None else left_steps
            print(
                f"step {step}/{config.max_steps} loss {loss_value:.4f} focal {parts['focal']:.4f} "
                f"dice {parts['dice']:.3f} iou_mse {parts['iou_mse']:.4f} mIoU {parts['miou']:.3f} "
                f"lr {lr:.2e} {its:.2f} it/s data-wait {wait_share:.0%} ETA {int(left // 60)}:{int(left % 60):02d}",
                flush=True,
            )
        due_time = time.monotonic() - last_ckpt >= config.checkpoint_minutes * 60.0
        due_step = config.checkpoint_steps > 0 and step % config.checkpoint_steps == 0
        if due_time or due_step:
            _save_checkpoint(config, sam, opt, step, rng, elapsed())
            save_weights(sam, config.model, output)
            if config.keep_snapshots:
                save_weights(sam, config.model, run_dir / "snapshots" / f"step{step:06d}.pt")
            last_ckpt = time.monotonic()

    batches.close()  # ends the DataLoader workers, if any
    for sig, handler in old_handlers.items():
        signal.signal(sig, handler)
    _save_checkpoint(config, sam, opt, step, rng, elapsed())
    sam.eval()
    digest = save_weights(sam, config.model, output)
    if writer is not None:
        writer.close()
    print(f"done: {step} steps in {elapsed() / 60:.1f} min; weights {output} sha256 {digest}", flush=True)
    return TrainResult(steps=step, losses=losses, weights_path=output, elapsed_s=elapsed())


# --------------------------------------------------------------------------------------------- CLI


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``samstar train-model``."""
    d = TrainConfig()
    p = subparsers.add_parser(
        "train-model",
        help="train a small SAM (samstar-tiny) on synthetic + emps-train micrographs",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--run-dir", default=d.run_dir, help="checkpoints, logs and synthetic cache (default %(default)s)")
    p.add_argument("--output", default=None, help="final weights path (default <run-dir>/samstar_tiny.pt)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of init and data sampling (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="optimizer steps (default %(default)s)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops and exports weights")
    p.add_argument("--schedule", choices=("steps", "time"), default=d.schedule, help="anneal over steps or over --max-minutes")
    p.add_argument("--images-per-step", type=int, default=d.images_per_step, help="images per step (default %(default)s)")
    p.add_argument("--prompts-per-image", type=int, default=d.prompts_per_image, help="prompts per image (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="warm-up steps (default %(default)s)")
    p.add_argument("--tasks", default=",".join(d.tasks), help="synthetic tasks, comma-separated ('' for none)")
    p.add_argument("--shapes-fraction", type=float, default=d.shapes_fraction, help="share of crude drawn particles, the curriculum's first stage (default %(default)s)")
    p.add_argument("--synthetic-pool", type=int, default=d.synthetic_pool, help="synthetic images per task (default %(default)s)")
    p.add_argument("--real-fraction", type=float, default=d.real_fraction, help="share of emps-train images (default %(default)s)")
    p.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes, help="checkpoint interval (default %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="device (default %(default)s)")
    p.add_argument("--data-workers", type=int, default=d.data_workers, help="processes drawing batches, e.g. on a GPU machine (default %(default)s: in the loop)")
    p.add_argument("--attn-match-init", type=float, default=d.attn_match_init, help="decoder attention init k=q=scale*q; 0 for PyTorch's init (default %(default)s)")
    p.add_argument("--init-weights", default=None, help="start from these weights (fine-tuning) instead of random init")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    p.add_argument("--stop-at-step", type=int, default=None, help="stop (checkpoint and export) at this step without changing the schedule, as an interruption would")
    p.add_argument(
        "--recipe",
        default=None,
        help="a TrainConfig JSON (e.g. samstar_env/models/recipes/*.json, or a run's config.json): every field "
        "comes from it except --run-dir, --output, --init-weights, --max-minutes, --threads, --device and --data-workers when given",
    )
    p.set_defaults(func=_run_cli)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from its JSON form (a run's ``config.json`` or a shipped recipe)."""
    d = dict(data)
    unknown = set(d) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"training recipe: unknown fields {sorted(unknown)}")
    if "model" in d:
        d["model"] = TinySamConfig.from_dict(d["model"])
    for key in ("tasks", "shapes_radius_px"):
        if key in d:
            d[key] = tuple(d[key])
    return TrainConfig(**d)


def _recipe_config(args: argparse.Namespace) -> TrainConfig:
    """--recipe: the file's fields, then the run-specific options the user gave explicitly."""
    path = Path(args.recipe)
    if not path.is_file():
        raise FileNotFoundError(f"--recipe {path}: no such file (expected a TrainConfig JSON)")
    config = config_from_dict(json.loads(path.read_text()))
    defaults = TrainConfig()
    overrides: dict[str, Any] = {"run_dir": args.run_dir} if args.run_dir != defaults.run_dir else {}
    for key in ("output", "init_weights", "max_minutes"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.threads != defaults.threads:
        overrides["threads"] = args.threads
    if args.device != defaults.device:
        overrides["device"] = args.device
    if args.data_workers != defaults.data_workers:
        overrides["data_workers"] = args.data_workers
    return replace(config, **overrides)


def _run_cli(args: argparse.Namespace) -> int:
    if args.recipe and not args.resume:
        train(_recipe_config(args), stop_at_step=args.stop_at_step)
        return 0
    config = TrainConfig(
        run_dir=args.run_dir,
        output=args.output,
        seed=args.seed,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        schedule=args.schedule,
        images_per_step=args.images_per_step,
        prompts_per_image=args.prompts_per_image,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        tasks=tuple(t for t in args.tasks.split(",") if t),
        shapes_fraction=args.shapes_fraction,
        synthetic_pool=args.synthetic_pool,
        real_fraction=args.real_fraction,
        checkpoint_minutes=args.checkpoint_minutes,
        threads=args.threads,
        device=args.device,
        data_workers=args.data_workers,
        init_weights=args.init_weights,
        attn_match_init=args.attn_match_init,
    )
    if args.resume:
        # A resumed run keeps the stored recipe; only the budget and the output may change.
        stored = json.loads((Path(config.run_dir) / "config.json").read_text())
        config = replace(
            config_from_dict(stored),
            max_minutes=config.max_minutes if config.max_minutes is not None else stored.get("max_minutes"),
            output=config.output or stored["output"],
            data_workers=config.data_workers if args.data_workers != TrainConfig.data_workers else stored.get("data_workers", 0),
        )
    train(config, resume=args.resume, stop_at_step=args.stop_at_step)
    return 0
