"""The training loop: initialization, the learning-rate schedule, checkpoints and exact resume.

Each step draws a batch (:mod:`~samstar_env.models.training.samples`), embeds each image once and
decodes its prompts (:func:`~samstar_env.models.training.losses.batch_loss`), and takes one AdamW step.
The run checkpoints its full state to ``<run_dir>/checkpoint.pt`` (model, optimizer, step, rng states,
elapsed time) and exports the weights in the ``samstar-sam/1`` format
(:func:`~samstar_env.models.checkpoint.save_checkpoint`) with a ``.sha256`` beside them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything.modeling import Sam

from samstar_env.errors import InputError, MissingFileError
from samstar_env.models.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from samstar_env.models.tiny import build_tiny_sam, count_parameters
from samstar_env.models.training.config import TrainConfig, config_to_dict
from samstar_env.models.training.dense import DenseHead
from samstar_env.models.training.losses import batch_loss
from samstar_env.models.training.pools import ImagePool, build_pools
from samstar_env.models.training.samples import batch_source


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


def copy_decoder(src: Sam, dst: Sam, *, source: str = "source model") -> None:
    """Copy ``src``'s prompt encoder and mask decoder into ``dst`` (same shapes required).

    Examples
    --------
    >>> from samstar_env.models.tiny import TinySamConfig, build_tiny_sam
    >>> vit = build_tiny_sam(TinySamConfig(img_size=64, patch_size=8, embed_dim=16, depth=1, num_heads=1,
    ...                                    global_attn_indexes=(0,), prompt_dim=16, decoder_mlp_dim=32), seed=0)
    >>> conv = build_tiny_sam(TinySamConfig(img_size=128, encoder="conv", conv_widths=(8, 8, 8, 8),
    ...                                     conv_embed_stride=16, prompt_dim=16, decoder_mlp_dim=32), seed=1)
    >>> copy_decoder(vit, conv)
    >>> bool(torch.equal(vit.mask_decoder.iou_token.weight, conv.mask_decoder.iou_token.weight))
    True
    """
    for part in ("prompt_encoder", "mask_decoder"):
        try:
            getattr(dst, part).load_state_dict(getattr(src, part).state_dict())
        except RuntimeError as exc:
            raise InputError(f"init_decoder_weights {source}: its {part} does not fit this model ({exc})") from exc


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


def _lr_at(step: int, progress: float, config: TrainConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``lr * min_lr_ratio`` over ``progress`` in [0, 1]."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    cos = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cos)


def _resume_path(config: TrainConfig) -> Path:
    return Path(config.run_dir) / "checkpoint.pt"


def _save_resume_state(
    config: TrainConfig, sam: Sam, opt: torch.optim.Optimizer, step: int, rng: np.random.Generator, elapsed_s: float,
    dense_head: torch.nn.Module | None = None,
) -> None:
    """Everything a resumed run needs (``<run_dir>/checkpoint.pt``): weights, optimizer, step, rng states."""
    path = _resume_path(config)
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
            "config": config_to_dict(config),
            **({"dense_head": dense_head.state_dict()} if dense_head is not None else {}),
        },
        tmp,
    )
    os.replace(tmp, path)


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
        init = load_checkpoint(config.init_weights)
        if checkpoint_config(config.init_weights) != config.model:
            raise InputError(f"init_weights {config.init_weights}: model config differs from the run's")
        sam.load_state_dict(init.state_dict())
    if config.init_decoder_weights:
        copy_decoder(load_checkpoint(config.init_decoder_weights), sam, source=config.init_decoder_weights)
    sam = sam.to(device)
    sam.train()
    dense_head = None
    if config.dense_weight > 0:
        # Its own seeded draw, leaving the global generator as a run without the head has it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            dense_head = DenseHead(sam).to(device)
        dense_head.train()
    params = [*sam.parameters(), *(dense_head.parameters() if dense_head is not None else ())]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    step, elapsed_before = 0, 0.0
    ckpt = _resume_path(config)
    if resume:
        if not ckpt.exists():
            raise MissingFileError(f"--resume: no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        sam.load_state_dict(state["model"])
        if dense_head is not None:
            if "dense_head" not in state:
                raise InputError(f"--resume: {ckpt} has no dense head; the run was started with dense_weight 0")
            dense_head.load_state_dict(state["dense_head"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        # map_location moved every tensor to the device; the CPU generator state must stay on the CPU.
        torch.set_rng_state(state["torch_rng"].cpu())
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        print(f"resumed from {ckpt} at step {step}", flush=True)
    else:
        (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))

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
        loss, parts = batch_loss(sam, samples, config=config, step=step, dense_head=dense_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
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
                + (f"dense {parts['dense']:.3f} " if dense_head is not None else "")
                + f"lr {lr:.2e} {its:.2f} it/s data-wait {wait_share:.0%} ETA {int(left // 60)}:{int(left % 60):02d}",
                flush=True,
            )
        due_time = time.monotonic() - last_ckpt >= config.checkpoint_minutes * 60.0
        due_step = config.checkpoint_steps > 0 and step % config.checkpoint_steps == 0
        if due_time or due_step:
            _save_resume_state(config, sam, opt, step, rng, elapsed(), dense_head)
            save_checkpoint(sam, config.model, output, sha256_file=True)
            if config.keep_snapshots:
                save_checkpoint(sam, config.model, run_dir / "snapshots" / f"step{step:06d}.pt", sha256_file=True)
            last_ckpt = time.monotonic()

    batches.close()  # ends the DataLoader workers, if any
    for sig, handler in old_handlers.items():
        signal.signal(sig, handler)
    _save_resume_state(config, sam, opt, step, rng, elapsed(), dense_head)
    sam.eval()
    digest = save_checkpoint(sam, config.model, output, sha256_file=True)
    if writer is not None:
        writer.close()
    print(f"done: {step} steps in {elapsed() / 60:.1f} min; weights {output} sha256 {digest}", flush=True)
    return TrainResult(steps=step, losses=losses, weights_path=output, elapsed_s=elapsed())
