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

Modules, one job each: :mod:`.config` (:class:`TrainConfig`, recipes), :mod:`.pools` (image
sources), :mod:`.samples` (augmentation, prompts, batches), :mod:`.losses`, :mod:`.loop` (the run,
checkpoints, resume) and :mod:`.cli` (``samstar train-model``, an application: not imported here).
Weights are written by :func:`samstar_env.models.checkpoint.save_checkpoint` in samstar's
self-describing format ``{"format": "samstar-sam/1", "config": ..., "model": state_dict}`` with a
``.sha256`` beside them.
"""

from samstar_env.models.training.config import (
    DEFAULT_TASKS,
    RECIPES_DIR,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_recipe,
)
from samstar_env.models.training.loop import TrainResult, match_decoder_attention, train
from samstar_env.models.training.losses import batch_loss, decode_prompts
from samstar_env.models.training.pools import (
    ArrayPool,
    EmpsPool,
    ImagePool,
    ShapesPool,
    SyntheticPool,
    build_pools,
)
from samstar_env.models.training.samples import Sample, batch_source, draw_batch, make_sample

__all__ = [
    "DEFAULT_TASKS",
    "RECIPES_DIR",
    "ArrayPool",
    "EmpsPool",
    "ImagePool",
    "Sample",
    "ShapesPool",
    "SyntheticPool",
    "TrainConfig",
    "TrainResult",
    "batch_loss",
    "batch_source",
    "build_pools",
    "config_from_dict",
    "config_to_dict",
    "decode_prompts",
    "draw_batch",
    "load_recipe",
    "make_sample",
    "match_decoder_attention",
    "train",
]
