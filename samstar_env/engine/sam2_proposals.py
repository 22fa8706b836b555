"""SAM 2's two expensive AMG stages, computed once and kept: crop embeddings and decoded proposals.

The same contract as :mod:`samstar_env.engine.proposals` for SAM 1, for
``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``:

- :func:`embed_crop_sam2` runs ``SAM2ImagePredictor.set_image`` on one crop and keeps its features
  (the 1/16 image embedding and the two high-resolution maps the decoder also reads);
- :func:`decode_crop_sam2` runs the prompt encoder and mask decoder on one point grid exactly as
  ``SAM2AutomaticMaskGenerator._process_batch`` does (AMG's point batches, ``multimask_output``,
  and for ``use_m2m`` the second decoder pass fed each first mask's clamped low-resolution logits, in
  AMG's refinement batches), upsamples with the predictor's own ``postprocess_masks`` (which also
  fills holes and removes islands up to ``min_mask_region_area`` where sam2's CUDA extension
  exists), and reduces every proposal to what the replay needs: box, crop-edge flag, predicted IoU,
  prompt point, stability per offset and the binarized mask as run lengths or packed bits.

SAM 2 binarizes at its tunable ``mask_threshold``, so the box, the mask and the stability scores are
functions of it: one decode is scanned once per requested threshold and gives one
:class:`~samstar_env.engine.proposals.CropProposals` per threshold (the engine asks for every value of
the space's grid at once, so the grid costs one decode). ``multimask_output``, ``use_m2m`` and, with
the CUDA extension, ``min_mask_region_area`` change the logits themselves, so each value is a decode
of its own. Prompt points stay float32, as SAM 2 keeps them (uncropping adds the crop offset in float32).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from segment_anything.utils.amg import batch_iterator, is_box_near_crop_edge

from samstar_env.engine.proposals import DEFAULT_SUBBATCH_BYTES, CropProposals
from samstar_env.engine.scan import float32_thresholds, scan_logits, stability_from_counts
from samstar_env.models.sam2_models import feature_sizes, hole_filling_available
from samstar_env.params import Sam2AmgParams

__all__ = ["Sam2Embedding", "Sam2Variant", "decode_crop_sam2", "embed_crop_sam2", "sam2_version"]


@dataclass(frozen=True, eq=False)
class Sam2Embedding:
    """``SAM2ImagePredictor``'s features for one crop.

    Parameters
    ----------
    image_embed : torch.Tensor, shape (1, C, h, w)
        The 1/16 embedding the decoder attends to.
    high_res_feats : tuple of torch.Tensor
        The 1/4 and 1/8 feature maps the decoder adds while upsampling.
    orig_hw : (int, int)
        (H, W) of the crop.
    """

    image_embed: torch.Tensor
    high_res_feats: tuple[torch.Tensor, ...]
    orig_hw: tuple[int, int]

    @property
    def nbytes(self) -> int:
        """Memory held."""
        return int(sum(t.numel() * t.element_size() for t in (self.image_embed, *self.high_res_feats)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the disk cache."""
        out = {"image_embed": self.image_embed.cpu().numpy(), "orig_hw": np.asarray(self.orig_hw)}
        out.update({f"high_res_{i}": t.cpu().numpy() for i, t in enumerate(self.high_res_feats)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device: torch.device) -> Sam2Embedding:
        """Inverse of :meth:`to_arrays`."""
        n = sum(1 for k in arrays if k.startswith("high_res_"))
        return cls(image_embed=torch.from_numpy(np.array(arrays["image_embed"])).to(device),
                   high_res_feats=tuple(torch.from_numpy(np.array(arrays[f"high_res_{i}"])).to(device) for i in range(n)),
                   orig_hw=(int(arrays["orig_hw"][0]), int(arrays["orig_hw"][1])))

    def predictor(self, model: Any, *, min_area: int = 0) -> Any:
        """A fresh ``SAM2ImagePredictor`` with these features set, built as SAM2AutomaticMaskGenerator builds it."""
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        pred = SAM2ImagePredictor(model, max_hole_area=min_area, max_sprinkle_area=min_area)
        pred._bb_feat_sizes = feature_sizes(model)
        pred._features = {"image_embed": self.image_embed, "high_res_feats": list(self.high_res_feats)}
        pred._orig_hw = [self.orig_hw]
        pred._is_image_set = True
        return pred


@torch.no_grad()
def embed_crop_sam2(model: Any, image: np.ndarray, crop_box: Sequence[int]) -> Sam2Embedding:
    """Embed ``image[y0:y1, x0:x1]`` exactly as ``SAM2AutomaticMaskGenerator._process_crop`` does."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    x0, y0, x1, y1 = (int(v) for v in crop_box)
    pred = SAM2ImagePredictor(model)
    pred._bb_feat_sizes = feature_sizes(model)  # the predictor fixes 1024 px's; a model of another size needs its own
    pred.set_image(image[y0:y1, x0:x1, :])
    feats = pred._features
    return Sam2Embedding(image_embed=feats["image_embed"], high_res_feats=tuple(feats["high_res_feats"]),
                         orig_hw=(int(pred._orig_hw[0][0]), int(pred._orig_hw[0][1])))


def _decode(pred: Any, points: torch.Tensor, labels: torch.Tensor, mask_input: torch.Tensor | None,
            multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``SAM2ImagePredictor._predict``'s prompt encoder and decoder call (one image), without its upsampling."""
    model = pred.model
    concat_points = (points, labels)
    sparse, dense = model.sam_prompt_encoder(points=concat_points, boxes=None, masks=mask_input)
    high_res = [feat[0].unsqueeze(0) for feat in pred._features["high_res_feats"]]
    low_res, iou, _, _ = model.sam_mask_decoder(
        image_embeddings=pred._features["image_embed"][0].unsqueeze(0),
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=points.shape[0] > 1,
        high_res_features=high_res,
    )
    return low_res, iou


def _proposal_batches(pred: Any, grid: np.ndarray, crop_box: Sequence[int], points_per_batch: int, *,
                      multimask: bool, use_m2m: bool, step: int) -> Iterator[tuple[np.ndarray, torch.Tensor, Iterator[torch.Tensor]]]:
    """Per AMG point batch: (float32 points per proposal, flat predicted IoU, full-size logits in sub-batches)."""
    x0, y0, x1, y1 = crop_box
    im_size = (y1 - y0, x1 - x0)
    points_for_image = grid * np.array(im_size)[None, ::-1]
    tf = pred._transforms
    for (batch,) in batch_iterator(points_per_batch, points_for_image):
        points = torch.as_tensor(batch, dtype=torch.float32, device=pred.device)
        in_points = tf.transform_coords(points, normalize=True, orig_hw=im_size)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        low_res, iou = _decode(pred, in_points[:, None, :], in_labels[:, None], None, multimask)
        flat_points = points.repeat_interleave(low_res.shape[1], dim=0)
        if not use_m2m:
            low = low_res.flatten(0, 1)[:, None]
            iou_flat = iou.flatten(0, 1)
        else:
            # AMG's refine_with_m2m: every proposal once more, its clamped low-res logits as the mask prompt.
            lows, ious = [], []
            prev = torch.clamp(low_res, -32.0, 32.0).flatten(0, 1)
            m2m_points = tf.transform_coords(flat_points, normalize=True, orig_hw=im_size)
            m2m_labels = torch.ones(m2m_points.shape[0], dtype=torch.int, device=m2m_points.device)
            for p, lab, mask in batch_iterator(points_per_batch, m2m_points, m2m_labels, prev):
                lo, io = _decode(pred, p[:, None, :], lab[:, None], mask[:, None, :], False)
                lows.append(lo)
                ious.append(io)
            low = torch.cat(lows)
            iou_flat = torch.cat(ious).squeeze(1)

        def chunks(low: torch.Tensor = low) -> Iterator[torch.Tensor]:
            for s in range(0, low.shape[0], step):
                yield tf.postprocess_masks(low[s : s + step], im_size).flatten(0, 1)

        yield flat_points.cpu().numpy(), iou_flat, chunks()


@torch.no_grad()
def decode_crop_sam2(
    model: Any,
    embedding: Sam2Embedding,
    *,
    crop_box: Sequence[int],
    orig_size: tuple[int, int],
    grid: np.ndarray,
    points_per_batch: int,
    multimask: bool,
    use_m2m: bool,
    mask_thresholds: Iterable[float],
    offsets: Iterable[float],
    min_area: int = 0,
    max_bytes: int = DEFAULT_SUBBATCH_BYTES,
    backend: str | None = None,
) -> dict[float, CropProposals]:
    """Decode every point of ``grid`` on one crop: the proposals binarized at each of ``mask_thresholds``.

    Parameters
    ----------
    model : sam2.modeling.sam2_base.SAM2Base
        The model whose features ``embedding`` holds.
    embedding : Sam2Embedding
        The crop's features.
    crop_box, orig_size, grid, points_per_batch, offsets, max_bytes, backend :
        As :func:`samstar_env.engine.proposals.decode_crop`.
    multimask, use_m2m : bool
        SAM 2's ``multimask_output`` and ``use_m2m``.
    mask_thresholds : iterable of float
        SAM 2's ``mask_threshold`` values to binarize (and measure stability) at; each gets its own result.
    min_area : int
        ``min_mask_region_area``: the predictor's hole and island areas (effective only where sam2's
        CUDA extension exists, as in SAM 2 itself).

    Returns
    -------
    dict of float -> CropProposals
    """
    offsets = sorted({float(o) for o in offsets})
    thresholds = sorted({float(t) for t in mask_thresholds})
    scans = {t: float32_thresholds(t, offsets) for t in thresholds}
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    crop_box = [x0, y0, x1, y1]
    pred = embedding.predictor(model, min_area=int(min_area) if hole_filling_available() else 0)
    step = max(1, int(max_bytes) // (2 * 4 * (y1 - y0) * (x1 - x0)))  # logits and the interpolation's copy
    parts: dict[float, dict[str, list[np.ndarray]]] = {t: {k: [] for k in ("counts", "boxes", "data", "sizes", "is_runs")}
                                                       for t in thresholds}
    pts, ious = [], []
    for points, iou, logit_chunks in _proposal_batches(pred, grid, crop_box, points_per_batch, multimask=multimask,
                                                       use_m2m=use_m2m, step=step):
        for logits in logit_chunks:
            for t in thresholds:
                res = scan_logits(logits, thresholds=scans[t][0], mask_threshold=t, backend=backend)
                for k in parts[t]:
                    parts[t][k].append(getattr(res, k))
            del logits
        pts.append(points)
        ious.append(iou.float().cpu().numpy())
    orig_h, orig_w = orig_size
    points_arr = np.concatenate(pts) if pts else np.zeros((0, 2), np.float32)
    iou_arr = np.concatenate(ious) if ious else np.zeros(0, np.float32)
    out = {}
    for t in thresholds:
        p = parts[t]
        boxes = np.concatenate(p["boxes"]) if p["boxes"] else np.zeros((0, 4), np.int64)
        counts = np.concatenate(p["counts"]) if p["counts"] else np.zeros((0, len(scans[t][0])), np.int64)
        sizes = np.concatenate(p["sizes"]) if p["sizes"] else np.zeros(0, np.int64)
        out[t] = CropProposals(
            crop_box=(x0, y0, x1, y1),
            points=points_arr,
            iou_preds=iou_arr,
            boxes=boxes,
            near_crop_edge=is_box_near_crop_edge(torch.from_numpy(boxes), crop_box, [0, 0, orig_w, orig_h]).numpy(),
            mask_data=np.concatenate(p["data"]) if p["data"] else np.zeros(0, np.uint8),
            mask_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            mask_is_runs=np.concatenate(p["is_runs"]) if p["is_runs"] else np.zeros(0, bool),
            stability=stability_from_counts(counts, scans[t][1]),
        )
    return out


@dataclass(frozen=True)
class Sam2Variant:
    """The SAM 2 parameters that change a decode's result, part of its cache key.

    ``multimask_output`` and ``use_m2m`` change the decoder's outputs; ``mask_threshold`` where the
    logits are binarized (one decode gives every threshold of the grid, see the module docstring);
    ``min_mask_region_area`` the logits themselves, but only
    where sam2's CUDA extension exists (else SAM 2 ignores it, and so does the key).
    """

    multimask: bool
    use_m2m: bool
    mask_threshold: float
    min_area: int

    @classmethod
    def of(cls, params: Sam2AmgParams) -> Sam2Variant:
        """The variant ``params`` decode with."""
        return cls(multimask=params.multimask_output, use_m2m=params.use_m2m, mask_threshold=float(params.mask_threshold),
                   min_area=params.min_mask_region_area if hole_filling_available() else 0)

    def with_threshold(self, t: float) -> Sam2Variant:
        """The same decode binarized at ``t``."""
        return Sam2Variant(self.multimask, self.use_m2m, float(t), self.min_area)

    @property
    def decoder_passes(self) -> int:
        """Decoder runs per prompt point (m2m refines each of its masks once more)."""
        return 1 + ((3 if self.multimask else 1) if self.use_m2m else 0)

    def key_parts(self) -> tuple[str, ...]:
        """Strings for the cache key."""
        return (f"sam2-mm={int(self.multimask)}", f"m2m={int(self.use_m2m)}", f"mt={self.mask_threshold!r}", f"holes={self.min_area}")


def sam2_version() -> str:
    """The installed sam2 release (part of every SAM 2 cache key: its numerics)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sam2")
    except PackageNotFoundError:  # pragma: no cover - an uninstalled checkout on sys.path
        return "unknown"
