"""Dense auxiliary supervision: every pixel of a training image teaches the embedding, not only 16 prompts.

SAM trains its image encoder only through the masks of the prompts it decodes (16 per image here),
so most pixels of a micrograph give the encoder no signal at all in a step, and the mask decoder's
upscaling path (``output_upscaling``: the 4x-upsampled features whose dot product with a prompt's
hypernetwork vector *is* its mask) learns outlines only from those few masks. A dense head reads
that same upscaled feature map (computed from the image embedding, before the prompt tokens touch
it) and predicts two maps for every pixel: particle foreground and instance boundary (where touching
particles meet). Its loss trains the encoder and the upscaling path on the whole image at almost no
cost (one 1x1 convolution), the way micro-sam's instance decoder trains its encoder on foreground
and boundary-distance maps.

Only training uses the head: it is kept in the run's resume state, never in the exported weights,
which stay a plain ``segment_anything`` ``Sam``.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import Sam
from skimage.segmentation import find_boundaries
from torch import nn

#: The dense target channels, in order.
DENSE_CHANNELS = ("foreground", "boundary")


def dense_targets(labels: np.ndarray) -> torch.Tensor:
    """Foreground and instance-boundary maps of a label image, shape (2, H, W), float 0/1.

    The boundary is each instance's inner border (:func:`skimage.segmentation.find_boundaries`,
    ``mode="inner"``): between two touching particles both borders are marked, which is what
    separates them.

    Examples
    --------
    >>> lab = np.zeros((5, 7), np.int64); lab[1:4, 1:4] = 1; lab[1:4, 4:6] = 2
    >>> t = dense_targets(lab)
    >>> t.shape, int(t[0].sum()), int(t[1, 2, 2]), int(t[1, 2, 3]), int(t[1, 2, 4])
    (torch.Size([2, 5, 7]), 15, 0, 1, 1)
    """
    fg = labels > 0
    boundary = find_boundaries(labels, mode="inner") & fg
    return torch.from_numpy(np.stack([fg, boundary]).astype(np.float32))


class DenseHead(nn.Module):
    """A 1x1 convolution from the mask decoder's upscaled features to the :data:`DENSE_CHANNELS` logits.

    Parameters
    ----------
    sam : Sam
        The model whose ``mask_decoder.output_upscaling`` the head reads (its output width is the
        decoder width / 8).

    Examples
    --------
    >>> from samstar_env.models.tiny import TinySamConfig, build_tiny_sam
    >>> sam = build_tiny_sam(TinySamConfig(img_size=64, patch_size=8, embed_dim=16, depth=1, num_heads=1,
    ...                                    global_attn_indexes=(0,), prompt_dim=16, decoder_mlp_dim=32), seed=0)
    >>> head = DenseHead(sam)
    >>> tuple(head(sam, torch.zeros(2, 16, 8, 8)).shape)   # 4x the embedding grid
    (2, 2, 32, 32)
    """

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        width = int(sam.mask_decoder.transformer_dim) // 8
        self.proj = nn.Conv2d(width, len(DENSE_CHANNELS), kernel_size=1)

    def forward(self, sam: Sam, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Dense logits (B, 2, 4h, 4w) of embeddings (B, C, h, w), through ``sam``'s own upscaling path."""
        return self.proj(sam.mask_decoder.output_upscaling(image_embeddings))

