"""The training loss: SAM's mask loss (focal + dice, min over the multimask outputs) and IoU-head MSE.

Mask loss: focal + dice on the predicted logits upsampled to the model input versus the ground truth
at that scale (upsampling predictions rather than downsampling the truth keeps 3-px particles in the
target). The IoU head is regressed (MSE) to the true IoU of *every* output mask, not only the selected
one, because the automatic mask generator thresholds all three by ``pred_iou_thresh``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from torchvision.ops import sigmoid_focal_loss

from samstar_env.models.training.config import TrainConfig
from samstar_env.models.training.dense import DenseHead
from samstar_env.models.training.samples import Sample


def soft_dice(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Soft dice loss (smoothing 1) over the last two axes: probabilities ``p`` against 0/1 targets ``t``."""
    return 1.0 - (2.0 * (p * t).sum((-2, -1)) + 1.0) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1.0)


def dense_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The dense auxiliary loss: binary cross-entropy plus soft dice per channel, averaged.

    ``logits`` (B, 2, h, w) from :class:`~samstar_env.models.training.dense.DenseHead` are upsampled
    to the frame of ``targets`` (B, 2, S, S) first, as the prompt masks are. Dice keeps the sparse
    boundary channel from being learned as all-background.
    """
    up = F.interpolate(logits, targets.shape[-2:], mode="bilinear", align_corners=False)
    return F.binary_cross_entropy_with_logits(up, targets) + soft_dice(up.sigmoid(), targets).mean()


def _mask_losses(
    logits: torch.Tensor, targets: torch.Tensor, *, alpha: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-mask focal, dice and true IoU. logits (N, M, S, S), targets (N, S, S) -> three (N, M)."""
    t = targets[:, None].expand_as(logits)
    focal = sigmoid_focal_loss(logits, t, alpha=alpha, gamma=2.0, reduction="none").mean(dim=(-2, -1))
    dice = soft_dice(logits.sigmoid(), t)
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
    sam: Sam, samples: Sequence[Sample], *, config: TrainConfig, step: int | None = None, dense_head: DenseHead | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of a batch and its parts (for logging); ``step`` sets the focal ramp (None: full weight).

    With ``dense_head`` and ``config.dense_weight > 0``, the dense auxiliary loss
    (:func:`dense_loss`) on every sample's foreground and
    boundary maps is added, weighted; its value is the ``"dense"`` part (0 without it).
    """
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
    for points, box_prompts, multimask, image_index, first_image, tgt in jobs:
        sparse, dense = sam.prompt_encoder(points=points, boxes=box_prompts, masks=None)
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
    parts = dict(zip(("focal", "dice", "iou_mse", "miou"), values, strict=True))
    parts["dense"] = 0.0
    if dense_head is not None and config.dense_weight > 0:
        if any(s.dense is None for s in samples):
            raise ValueError("batch_loss: a dense head was given but the samples carry no dense targets (config.dense_weight 0 when drawn)")
        targets = torch.stack([s.dense for s in samples if s.dense is not None]).to(device)
        aux = dense_loss(dense_head(sam, emb), targets)
        loss = loss + config.dense_weight * aux
        parts["dense"] = float(aux.detach())
    return loss, parts
