"""load_sam, the model registry and model_fingerprint."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from samstar_env.models import (
    TinySamConfig,
    build_tiny_sam,
    infer_model_type,
    list_models,
    load_sam,
    model_fingerprint,
    register_model,
    save_checkpoint,
)
from samstar_env.models import registry as reg
from samstar_env.models.checkpoint import file_sha256

SMALL = TinySamConfig(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
                      global_attn_indexes=(1,), prompt_dim=32, decoder_heads=2, decoder_mlp_dim=64)


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    model = build_tiny_sam(SMALL, seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    sha = save_checkpoint(model, SMALL, path)
    return model, path, sha


def _meta_state_dict(model_type: str) -> dict[str, torch.Tensor]:
    # Shapes only (no memory, no init time): enough to test type inference and error messages.
    with torch.device("meta"):
        return reg.sam_model_registry[model_type]().state_dict()


@pytest.mark.parametrize("model_type", ["vit_h", "vit_l", "vit_b"])
def test_infer_model_type_from_shapes(model_type):
    sd = _meta_state_dict(model_type)
    assert infer_model_type(sd) == model_type
    assert infer_model_type({k: v for k, v in sd.items() if "blocks.3." not in k}) is None


def test_samstar_checkpoint_round_trip(small_ckpt):
    model, path, _ = small_ckpt
    loaded = load_sam(path, device="cpu")
    assert loaded.image_encoder.img_size == SMALL.img_size and not loaded.training
    assert model_fingerprint(loaded) == model_fingerprint(model)


def test_wrapped_and_prefixed_state_dicts(small_ckpt, tmp_path):
    model, _, _ = small_ckpt
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": sd, "epoch": 3}, path)
    # A small plain state dict cannot be rebuilt without its config: the message says what it looks like.
    with pytest.raises(ValueError, match="embedding width 32 and 2 blocks match no standard SAM type.*samstar-sam/1"):
        load_sam(path, device="cpu")


def test_type_mismatch_says_what_the_state_dict_looks_like(tmp_path):
    path = tmp_path / "vitb.pt"
    torch.save({"model": _meta_state_dict("vit_b")}, path)
    with pytest.raises(ValueError, match="embedding width 768 and 12 blocks look like vit_b, not vit_h"):
        load_sam(path, model_type="vit_h", device="cpu")


@pytest.mark.slow
def test_real_vit_b_checkpoint(tmp_path):
    from segment_anything import build_sam_vit_b

    torch.manual_seed(0)
    path = tmp_path / "sam_vit_b.pth"
    torch.save(build_sam_vit_b().state_dict(), path)
    assert load_sam(path, device="cpu").image_encoder.patch_embed.proj.out_channels == 768


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_sam(tmp_path / "missing.pt")
    # Random bytes, seeded: garbage fails in many places inside torch.load (pickle opcodes, a memo
    # index that does not exist, zip headers); each must be the same clear error.
    rng = np.random.default_rng(0)
    for k in range(200):
        rnd = tmp_path / f"random{k}.bin"
        rnd.write_bytes(rng.bytes(int(rng.integers(1, 4096))))
        with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
            load_sam(rnd)
    for blob in (b"\x80\x02h\xff\xff\xff\xff", b"\x80\x02j\xe5\x8a\xdc\xad"):  # BINGET/LONG_BINGET of no memo
        rnd = tmp_path / "memo.bin"
        rnd.write_bytes(blob)
        with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
            load_sam(rnd)
    js = tmp_path / "params.json"
    js.write_text(json.dumps({"points_per_side": 32}))
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_sam(js)
    with pytest.raises(ValueError, match="directory"):
        load_sam(tmp_path)
    notsam = tmp_path / "notsam.pt"
    torch.save({"weight": torch.zeros(3)}, notsam)
    with pytest.raises(ValueError, match="not a SAM state dict"):
        load_sam(notsam)
    notdict = tmp_path / "list.pt"
    torch.save([1, 2, 3], notdict)
    with pytest.raises(ValueError, match="not a SAM state dict"):
        load_sam(notdict)
    with pytest.raises(FileNotFoundError, match="model type, not a checkpoint"):
        load_sam("vit_b")
    with pytest.raises(ValueError, match="model_type must be one of"):
        load_sam(tmp_path / "x.pt", model_type="vit_x")


def test_registry_names_checksums_and_missing_weights(small_ckpt, tmp_path, monkeypatch):
    _, path, sha = small_ckpt
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg._REGISTRY))
    assert "samstar-tiny" in [m.name for m in list_models()]
    tiny = next(m for m in list_models() if m.name == "samstar-tiny")
    assert tiny.path.name == "samstar_tiny.pt"
    # Weights not there yet: a clear FileNotFoundError naming the path.
    register_model("samstar-tiny", tmp_path / "absent" / "samstar_tiny.pt")
    with pytest.raises(FileNotFoundError, match="samstar-tiny.*not shipped yet"):
        load_sam("samstar-tiny")
    register_model("good", path, sha256=sha, description="test")
    assert load_sam("good", device="cpu") is not None
    register_model("bad", path, sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        load_sam("bad")
    # The checksum can also come from a sidecar file in sha256sum format.
    side = tmp_path / "side.pt"
    side.write_bytes(path.read_bytes())
    (tmp_path / "side.pt.sha256").write_text("f" * 64 + "  side.pt\n")
    register_model("side", side)
    with pytest.raises(ValueError, match="expected f{64}"):
        load_sam("side")
    (tmp_path / "side.pt.sha256").write_text(file_sha256(side) + "  side.pt\n")
    assert load_sam("side", device="cpu") is not None
    with pytest.raises(ValueError, match="64 hex"):
        register_model("x", path, sha256="abc")


def test_shipped_samstar_tiny_loads_when_present():
    tiny = next(m for m in list_models() if m.name == "samstar-tiny")
    if not tiny.available:
        pytest.skip("samstar-tiny weights not present")
    assert load_sam("samstar-tiny", device="cpu").image_encoder.img_size == 256


def test_fingerprint_stable_and_sensitive():
    a = build_tiny_sam(SMALL, seed=1)
    fp = model_fingerprint(a)
    assert fp == model_fingerprint(a) == model_fingerprint(build_tiny_sam(SMALL, seed=1)) and len(fp) == 64
    assert model_fingerprint(build_tiny_sam(SMALL, seed=2)) != fp
    b = copy.deepcopy(a)
    assert model_fingerprint(b) == fp
    with torch.no_grad():
        b.mask_decoder.iou_token.weight.add_(1e-3)
    assert model_fingerprint(b) != fp  # in-place change detected without refresh
    assert model_fingerprint(a, refresh=True) == fp
    # Same weights, another head count: the architecture setting is part of the fingerprint.
    c = build_tiny_sam(TinySamConfig(**{**SMALL.to_dict(), "global_attn_indexes": (1,), "num_heads": 4}), seed=1)
    assert model_fingerprint(c) != fp


def test_fingerprint_sees_replaced_tensors_and_modules():
    # The stored token walks a tensor list; assignment of a new parameter, buffer or submodule is
    # caught by torch's registration hooks instead.
    a = build_tiny_sam(SMALL, seed=1)
    fp = model_fingerprint(a)
    a.mask_decoder.iou_token.weight = torch.nn.Parameter(a.mask_decoder.iou_token.weight.detach() + 1.0)
    fp2 = model_fingerprint(a)
    assert fp2 != fp
    a.mask_decoder.iou_token = torch.nn.Embedding(*a.mask_decoder.iou_token.weight.shape)
    assert model_fingerprint(a) not in (fp, fp2)
    # Building an unrelated module does not invalidate (no rehash needed, same answer either way).
    before = reg._STRUCTURE_GENERATION[0]
    torch.nn.Linear(3, 3)
    assert reg._STRUCTURE_GENERATION[0] == before


def test_auto_device():
    assert reg.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert reg.resolve_device("cpu").type == "cpu"
