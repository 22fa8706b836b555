"""A random-weight SAM that gives localized, stable masks, for exactness tests and benchmarks.

A freshly initialized SAM predicts near-constant small logits: every mask covers the whole image, its
stability is ~0 and NMS leaves one mask, so comparing the engine with AMG on it proves little.
:func:`structure_random_sam` keeps the random weights but (1) makes the decoder's two transposed
convolutions spatially constant, so masks are coherent regions rather than speckle, (2) scales the
hypernetwork output so logits are steep (stability spreads over [0, 1]) and offsets it so about
``1 - foreground_percentile/100`` of the pixels are foreground, and (3) spreads the IoU head's output.
The result is still a real ``segment_anything`` Sam, run through the very same code.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam


@torch.no_grad()
def structure_random_sam(model: Sam, image: np.ndarray, *, gain: float = 5000.0, foreground_percentile: float = 85.0) -> Sam:
    """A modified deep copy of ``model`` (see the module docstring).

    Parameters
    ----------
    model : Sam
        A (random-weight) SAM; left unchanged.
    image : ndarray of uint8, shape (H, W, 3)
        Image used to calibrate the logit offset.
    gain : float
        Factor on the hypernetwork output (logit steepness).
    foreground_percentile : float
        Percentile of calibration logits moved to the mask threshold.

    Returns
    -------
    Sam
    """
    model = copy.deepcopy(model)
    md = model.mask_decoder
    _steepen(md, gain)
    pred = SamPredictor(model)
    pred.set_image(image)
    h, w = image.shape[:2]
    pts = np.array([[0.25 * w, 0.3 * h], [0.6 * w, 0.6 * h], [0.1 * w, 0.9 * h]])
    coords = torch.as_tensor(pred.transform.apply_coords(pts, (h, w)), device=pred.device)
    labels = torch.ones(3, 1, dtype=torch.int, device=pred.device)
    logits, _, _ = pred.predict_torch(coords[:, None], labels, multimask_output=True, return_logits=True)
    _offset(md, float(np.percentile(logits.cpu().numpy(), foreground_percentile)))
    model.eval()
    return model


def _steepen(md: torch.nn.Module, gain: float) -> None:
    # SAM 1's and SAM 2's mask decoders alike: spatially constant transposed convolutions (coherent
    # regions), a steep hypernetwork output (stability spread over [0, 1]) and a spread IoU head.
    for i in (0, 3):
        w = md.output_upscaling[i].weight
        w.copy_(w.mean(dim=(2, 3), keepdim=True).expand_as(w))
    for mlp in md.output_hypernetworks_mlps:
        mlp.layers[-1].weight.mul_(gain)
        mlp.layers[-1].bias.mul_(gain)
    md.iou_prediction_head.layers[-1].weight.mul_(5.0)
    md.iou_prediction_head.layers[-1].bias.add_(0.5)


def _offset(md: torch.nn.Module, shift: float) -> None:
    # A constant channel in the upscaled embedding turns the hypernetwork's bias into a logit offset.
    up = md.output_upscaling[3]
    up.weight[:, 0] = 0.0
    up.bias[0] = 1.0
    e0 = float(torch.nn.functional.gelu(torch.tensor(1.0)))
    for mlp in md.output_hypernetworks_mlps:
        mlp.layers[-1].weight[0] = 0.0
        mlp.layers[-1].bias[0] = -shift / e0


@torch.no_grad()
def structure_random_sam2(model: torch.nn.Module, image: np.ndarray, *, gain: float = 5000.0,
                          foreground_percentile: float = 85.0) -> torch.nn.Module:
    """:func:`structure_random_sam` for a random-weight SAM 2 (``sam2``'s SAM2Base): a modified deep copy.

    The same three changes on SAM 2's mask decoder: constant transposed-convolution kernels, a steep
    hypernetwork output offset through a constant channel (SAM 2 adds the high-resolution features
    after each transposed convolution, so that channel of ``conv_s0`` is zeroed too), and a spread IoU head.
    """
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from samstar_env.models.sam2_models import feature_sizes

    model = copy.deepcopy(model)
    md = model.sam_mask_decoder
    _steepen(md, gain)
    pred = SAM2ImagePredictor(model)
    pred._bb_feat_sizes = feature_sizes(model)
    pred.set_image(image)
    h, w = image.shape[:2]
    pts = np.array([[[0.25 * w, 0.3 * h]], [[0.6 * w, 0.6 * h]], [[0.1 * w, 0.9 * h]]])
    logits, _, _ = pred.predict(point_coords=pts, point_labels=np.ones((3, 1)), multimask_output=True, return_logits=True)
    # SAM 2 adds the 1/4 high-resolution features before the last activation: zero that channel there too.
    md.conv_s0.weight[0] = 0.0
    md.conv_s0.bias[0] = 0.0
    _offset(md, float(np.percentile(np.asarray(logits), foreground_percentile)))
    model.eval()
    return model
