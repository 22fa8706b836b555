"""Small SAM-architecture models built from segment_anything's own modules.

``build_tiny_sam`` returns a real ``segment_anything.modeling.Sam`` (ImageEncoderViT, PromptEncoder,
MaskDecoder, TwoWayTransformer), so ``SamAutomaticMaskGenerator`` and :class:`MaskEngine` use it
unchanged. The shipped samstar-tiny uses :data:`SAMSTAR_TINY_CONFIG`; tests use much smaller
randomly initialized ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from samstar_env.models.conv_encoder import ConvImageEncoder


@dataclass(frozen=True)
class TinySamConfig:
    """Dimensions of a small SAM.

    Parameters
    ----------
    img_size : int
        Side of the square model input (the long image side is resized to it).
    patch_size : int
        ViT patch size; the image embedding is ``img_size // patch_size`` on a side.
    embed_dim, depth, num_heads : int
        ViT width, number of blocks and attention heads.
    window_size : int
        Windowed-attention size (tokens) of the non-global blocks.
    global_attn_indexes : tuple of int
        Blocks with global attention.
    prompt_dim : int
        Width of the prompt encoder, the neck output and the mask decoder.
    decoder_depth, decoder_heads, decoder_mlp_dim : int
        TwoWayTransformer dimensions.
    """

    img_size: int = 256
    patch_size: int = 8
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    window_size: int = 8
    global_attn_indexes: tuple[int, ...] = (1, 3)
    prompt_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 2
    decoder_mlp_dim: int = 256
    encoder: str = "vit"
    conv_widths: tuple[int, ...] = (32, 64, 96, 160)
    conv_depths: tuple[int, ...] = (1, 2, 3, 2)
    conv_embed_stride: int = 8

    def __post_init__(self) -> None:
        if self.encoder not in ("vit", "conv"):
            raise ValueError(f"TinySamConfig.encoder must be 'vit' or 'conv'; got {self.encoder!r}")

    @property
    def embedding_side(self) -> int:
        """Side of the image embedding (and a quarter of the low-resolution mask side)."""
        stride = self.patch_size if self.encoder == "vit" else self.conv_embed_stride
        return self.img_size // stride

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored in checkpoints so they rebuild themselves).

        A ViT config leaves the convolutional fields out, so checkpoints written before they existed
        and after compare equal.
        """
        d = asdict(self)
        d["global_attn_indexes"] = list(self.global_attn_indexes)
        if self.encoder == "vit":
            for key in ("encoder", "conv_widths", "conv_depths", "conv_embed_stride"):
                d.pop(key)
        else:
            d["conv_widths"], d["conv_depths"] = list(self.conv_widths), list(self.conv_depths)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TinySamConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for key in ("global_attn_indexes", "conv_widths", "conv_depths"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# samstar-tiny: 256-px input and patch 8 give a 32x32 embedding and 128x128 low-resolution masks.
# Measured on 2 CPU cores (see MODEL_CARD.md): the mask decoder, not the encoder, dominates an AMG
# call, and its cost grows with the embedding area, so a 64x64 embedding would make every decode 4x
# slower; a 64-wide decoder (instead of 128) measured 2.8x faster AMG calls at points_per_side 16
# (4.3 s vs 12.2 s, random weights, 512 image). Particles below ~8 px on a 512 image are reached through AMG's crop layers (a tuned
# hyperparameter), which zoom the model onto image tiles.
SAMSTAR_TINY_CONFIG = TinySamConfig()


def build_tiny_sam(config: TinySamConfig = SAMSTAR_TINY_CONFIG, *, seed: int | None = None) -> Sam:
    """Build a randomly initialized small SAM in eval mode.

    Parameters
    ----------
    config : TinySamConfig
        Model dimensions.
    seed : int, optional
        Seeds the weight initialization (``torch.manual_seed``) for reproducible random models.

    Returns
    -------
    segment_anything.modeling.Sam
    """
    if seed is not None:
        torch.manual_seed(seed)
    emb = config.embedding_side
    sam = Sam(
        image_encoder=_image_encoder(config),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_dim,
            image_embedding_size=(emb, emb),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_heads,
            ),
            transformer_dim=config.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=config.prompt_dim,
        ),
        # Grey micrographs are replicated on three channels; SAM's ImageNet statistics are kept so
        # that standard SAM preprocessing applies unchanged.
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    return sam


def _image_encoder(config: TinySamConfig) -> torch.nn.Module:
    if config.encoder == "conv":
        return ConvImageEncoder(
            img_size=config.img_size,
            widths=config.conv_widths,
            depths=config.conv_depths,
            embed_stride=config.conv_embed_stride,
            out_chans=config.prompt_dim,
        )
    return ImageEncoderViT(
        img_size=config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=4.0,
        out_chans=config.prompt_dim,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=config.window_size,
        global_attn_indexes=config.global_attn_indexes,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return int(sum(p.numel() for p in model.parameters()))
