"""Carrying a trained prompt encoder and mask decoder over to a model with another image encoder."""

from __future__ import annotations

import pytest
import torch

from samstar_env.errors import InputError
from samstar_env.models.tiny import TinySamConfig, build_tiny_sam
from samstar_env.models.training.loop import copy_decoder

VIT = TinySamConfig(img_size=64, patch_size=8, embed_dim=16, depth=1, num_heads=1, global_attn_indexes=(0,), prompt_dim=16, decoder_mlp_dim=32)
CONV = TinySamConfig(img_size=128, encoder="conv", conv_widths=(8, 8, 8, 8), conv_embed_stride=16, prompt_dim=16, decoder_mlp_dim=32)


def test_decoder_and_prompt_encoder_are_copied_encoder_kept():
    src, dst = build_tiny_sam(VIT, seed=0), build_tiny_sam(CONV, seed=1)
    encoder_before = {k: v.clone() for k, v in dst.image_encoder.state_dict().items()}
    copy_decoder(src, dst)
    for part in ("prompt_encoder", "mask_decoder"):
        a, b = getattr(src, part).state_dict(), getattr(dst, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(v, dst.image_encoder.state_dict()[k]) for k, v in encoder_before.items())
    # Same 8x8 embedding grid: the copied decoder runs on the new encoder's embedding.
    with torch.no_grad():
        emb = dst.image_encoder(torch.zeros(1, 3, 128, 128))
        sparse, dense = dst.prompt_encoder(points=(torch.tensor([[[64.0, 64.0]]]), torch.ones(1, 1, dtype=torch.int)), boxes=None, masks=None)
        low, iou = dst.mask_decoder(image_embeddings=emb, image_pe=dst.prompt_encoder.get_dense_pe(),
                                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)
    assert low.shape == (1, 3, 32, 32) and iou.shape == (1, 3)


def test_a_decoder_of_another_width_is_refused_naming_the_source():
    wide = build_tiny_sam(TinySamConfig(img_size=64, patch_size=8, embed_dim=16, depth=1, num_heads=1, global_attn_indexes=(0,), prompt_dim=32), seed=0)
    with pytest.raises(InputError, match="v3.pt.*mask_decoder|v3.pt.*prompt_encoder"):
        copy_decoder(wide, build_tiny_sam(CONV, seed=1), source="v3.pt")
