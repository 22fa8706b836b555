"""load_sam on SAM 2 checkpoints: recognized by their state dict, checked against a config name, clear errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sam2", reason="the optional `sam2` extra is not installed (pip install -e '.[sam2]')")

from samstar_env.errors import InputError  # noqa: E402
from samstar_env.models import build_tiny_sam, load_sam, model_fingerprint  # noqa: E402
from samstar_env.models.sam2_models import (  # noqa: E402
    build_sam2_model,
    build_tiny_sam2,
    infer_sam2_config,
    is_sam2_model,
    parse_sam2_config,
)
from samstar_env.models.tiny import TinySamConfig  # noqa: E402


@pytest.fixture(scope="module")
def hiera_t_file(tmp_path_factory):
    """A full-size SAM 2.1 hiera-tiny with random weights, saved as sam2's checkpoints are ({"model": state_dict})."""
    torch.manual_seed(3)
    model = build_sam2_model("sam2.1_hiera_t")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model


def test_a_sam2_checkpoint_loads_by_path_with_its_config_read_off_the_weights(hiera_t_file):
    path, original = hiera_t_file
    model = load_sam(path, device="cpu")
    assert is_sam2_model(model) and not model.training
    assert infer_sam2_config(model.state_dict()) == "sam2.1_hiera_t"
    assert model_fingerprint(model) == model_fingerprint(original)
    for name in ("hiera_t", "sam2.1_hiera_t", "SAM2.1_HIERA_T.yaml"):
        assert model_fingerprint(load_sam(path, model_type=name, device="cpu")) == model_fingerprint(original)


@pytest.mark.parametrize(("model_type", "message"), [
    ("hiera_l", r"config 'hiera_l' but the state dict holds a Hiera trunk of width 96 with 12 blocks \(sam2.1\), which is sam2.1_hiera_t"),
    ("sam2_hiera_t", r"config 'sam2_hiera_t' .*sam2.1"),
    ("vit_b", "is a SAM 2 checkpoint"),
    ("hiera_x", "model_type must be one of"),
])
def test_a_config_that_does_not_fit_is_refused_naming_both(hiera_t_file, model_type, message):
    with pytest.raises(InputError, match=message):
        load_sam(hiera_t_file[0], model_type=model_type, device="cpu")


def test_a_sam2_config_for_a_sam1_file_and_an_unknown_sam2_size(tmp_path):
    sam1 = tmp_path / "sam1.pth"
    torch.save(build_tiny_sam(TinySamConfig(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
                                            global_attn_indexes=(1,)), seed=0).state_dict(), sam1)
    with pytest.raises(InputError, match="is a SAM 2 config but the file is not a SAM 2 checkpoint"):
        load_sam(sam1, model_type="hiera_t", device="cpu")
    tiny = tmp_path / "tiny_sam2.pt"
    torch.save({"model": build_tiny_sam2(seed=0).state_dict()}, tiny)
    with pytest.raises(InputError, match="width 16 with 5 blocks .*matches no bundled config"):
        load_sam(tiny, device="cpu")


def test_config_names():
    assert parse_sam2_config("hiera_b+") == (None, "hiera_b+")
    assert parse_sam2_config("sam2_hiera_s") == ("sam2", "hiera_s")
    with pytest.raises(InputError, match="unknown SAM 2 config"):
        parse_sam2_config("hiera_xl")
