"""A convolutional image encoder for small SAMs (samstar-tiny v4 candidate).

SAM accepts any ``image_encoder`` module that maps a ``(B, 3, img_size, img_size)`` batch to a
``(B, C, H', W')`` embedding and has an ``img_size`` attribute (MobileSAM swapped ViT-H for TinyViT
this way), so ``SamAutomaticMaskGenerator``, :class:`~samstar_env.engine.MaskEngine` and the exactness
tests use a model built with this encoder unchanged.

Why convolutions for micrographs: nanoparticles are small, convex and many; a ViT with 8-px patches
at a 256-px input (samstar-tiny v3) sees a particle of 5 px on a 512 image as a fraction of one token
and leaves a patch-grid speckle in its masks. A CNN at the full 512-px input keeps stride-2 detail in
its first stages, reaches a large receptive field cheaply with depthwise 7x7 convolutions
(ConvNeXt), and fuses a coarse stage back into the embedding (a one-step feature pyramid), so both
5-px particles and 80-px aggregates are visible in one embedding.
"""

from __future__ import annotations

import torch
from segment_anything.modeling.common import LayerNorm2d
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    """ConvNeXt block: depthwise 7x7, channel LayerNorm, pointwise MLP, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, kernel_size=1)
        self.pw2 = nn.Conv2d(4 * dim, dim, kernel_size=1)
        # Layer scale (ConvNeXt) keeps a deep residual stack near identity at initialization.
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 1e-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))
        return x + self.gamma * y


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, cout, kernel_size=2, stride=2))


class ConvImageEncoder(nn.Module):
    """Stride-2 stem, ConvNeXt stages, and a coarse stage fused back at the embedding stride.

    Parameters
    ----------
    img_size : int
        Side of the square model input.
    widths : tuple of int
        Channels of each stage; stage ``i`` runs at stride ``2 ** (i + 1)``.
    depths : tuple of int
        ConvNeXt blocks per stage.
    embed_stride : int
        Stride of the output embedding (a power of two, at most the last stage's stride); stages
        below it are fused into it by upsampling.
    out_chans : int
        Embedding channels (the prompt encoder's and mask decoder's width).

    Examples
    --------
    >>> enc = ConvImageEncoder(img_size=64, widths=(8, 16, 16, 32), depths=(1, 1, 1, 1),
    ...                        embed_stride=8, out_chans=16)
    >>> tuple(enc(torch.zeros(1, 3, 64, 64)).shape)
    (1, 16, 8, 8)
    """

    def __init__(
        self,
        *,
        img_size: int = 512,
        widths: tuple[int, ...] = (32, 64, 96, 160),
        depths: tuple[int, ...] = (1, 2, 3, 2),
        embed_stride: int = 8,
        out_chans: int = 64,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths and depths must be non-empty and of one length; got {widths}, {depths}")
        n_at_embed = embed_stride.bit_length() - 1  # stages up to and including the embedding stride
        if embed_stride < 2 or embed_stride & (embed_stride - 1) or n_at_embed > len(widths):
            raise ValueError(f"embed_stride must be a power of two in [2, {2 ** len(widths)}]; got {embed_stride}")
        self.img_size = img_size
        self.embed_stride = embed_stride
        self._n_embed = n_at_embed
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], kernel_size=3, stride=2, padding=1), LayerNorm2d(widths[0]))
        self.downs = nn.ModuleList(
            [nn.Identity()] + [_down(widths[i - 1], widths[i]) for i in range(1, len(widths))]
        )
        self.stages = nn.ModuleList([nn.Sequential(*[_Block(w) for _ in range(d)]) for w, d in zip(widths, depths, strict=True)])
        # Every stage at or below the embedding resolution contributes through a 1x1 lateral projection.
        fused = widths[n_at_embed - 1 :]
        self.laterals = nn.ModuleList([nn.Conv2d(w, out_chans, kernel_size=1, bias=False) for w in fused])
        # SAM's neck shape: 1x1 is folded into the laterals, then LayerNorm, 3x3 conv, LayerNorm.
        self.neck = nn.Sequential(
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        feats = []
        for down, stage in zip(self.downs, self.stages, strict=True):
            x = stage(down(x))
            feats.append(x)
        embed = feats[self._n_embed - 1]
        out = self.laterals[0](embed)
        size = embed.shape[-2:]
        for lateral, f in zip(self.laterals[1:], feats[self._n_embed :], strict=True):
            out = out + F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False)
        return self.neck(out)
