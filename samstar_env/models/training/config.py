"""What defines a samstar-tiny training run: :class:`TrainConfig`, its JSON form and the shipped recipes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from samstar_env.errors import InputError
from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, TinySamConfig

# Synthetic tasks mixed into training (names as accepted by samstar_env.data.synthetic.generate).
DEFAULT_TASKS: tuple[str, ...] = ("perovskite", "ito", "auco")

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
"""The shipped recipes (``samstar-tiny-stage*.json``): the runs that made the shipped weights."""


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
    init_decoder_weights: str | None = None
    """Copy the prompt encoder and mask decoder from these samstar-sam/1 weights (applied after
    init_weights): a model with another image encoder but the same embedding grid and decoder width
    (v3's ViT -> a convolutional v4 at stride 16) keeps the prompt routing v3 learned in 7 CPU hours,
    and training starts on the new encoder only where it matters."""
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
    dense_weight: float = 0.0
    """Weight of the dense auxiliary loss (:mod:`~samstar_env.models.training.dense`; 0: off, as SAM trains).

    A 1x1 head on the mask decoder's upscaled features predicts particle foreground and instance
    boundaries for every pixel, so the encoder and the upscaling path that draws mask outlines learn
    from the whole image each step, not only from the prompts' masks. The head is training state only."""
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
    yet measured on a GPU. On the 2-core CPU (``python benchmarks/scripts/gpu_check.py --profile-only-cpu``,
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


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON form of a :class:`TrainConfig` (a run's ``config.json``; inverse of :func:`config_from_dict`)."""
    d = asdict(config)
    d["model"] = config.model.to_dict()
    d["tasks"] = list(config.tasks)
    d["shapes_radius_px"] = list(config.shapes_radius_px)
    return d


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from its JSON form (a run's ``config.json`` or a shipped recipe)."""
    d = dict(data)
    unknown = set(d) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise InputError(f"training recipe: unknown fields {sorted(unknown)}")
    if "model" in d:
        d["model"] = TinySamConfig.from_dict(d["model"])
    for key in ("tasks", "shapes_radius_px"):
        if key in d:
            d[key] = tuple(d[key])
    return TrainConfig(**d)


def load_recipe(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a recipe: a :class:`TrainConfig` JSON (``RECIPES_DIR/*.json``, or a run's ``config.json``)."""
    return config_from_dict(json.loads(Path(path).read_text()))
