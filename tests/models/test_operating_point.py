"""Each model's recommended operating point: the registry carries it, segment uses it when given none."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samstar_env.models import registry
from samstar_env.models.registry import recommended_params, register_model
from samstar_env.params import AmgParams
from samstar_env.segmentation import choose_params, segment


@pytest.fixture
def restore_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_registered_point_is_used_and_named(tmp_path, restore_registry):
    weights = tmp_path / "m.pt"
    register_model("op-model", weights, operating_point={"pred_iou_thresh": 0.1, "crop_n_layers": 1})
    params, source = recommended_params("op-model")
    assert params == AmgParams(pred_iou_thresh=0.1, crop_n_layers=1)
    assert "op-model" in source
    # The weights' path names the same model.
    assert recommended_params(str(weights))[0] == params


def test_point_read_from_the_file_beside_the_weights(tmp_path, restore_registry):
    weights = tmp_path / "side.pt"
    info = register_model("side-model", weights)
    assert recommended_params("side-model") == (AmgParams(), "SAM's defaults")
    info.operating_point_file().write_text(json.dumps({"params": {"stability_score_thresh": 0.6}}))
    params, source = recommended_params("side-model")
    assert params.stability_score_thresh == 0.6 and "side.operating_point.json" in source


def test_bad_points_fail_clearly(tmp_path, restore_registry):
    with pytest.raises(ValueError):
        register_model("bad-op", tmp_path / "b.pt", operating_point={"pred_iou_thresh": 7.0})
    info = register_model("bad-file", tmp_path / "c.pt")
    info.operating_point_file().write_text("[1, 2]")
    with pytest.raises(ValueError, match="c.operating_point.json"):
        recommended_params("bad-file")


def test_sam_checkpoints_keep_sams_defaults():
    assert recommended_params("/nowhere/sam_vit_h_4b8939.pth") == (AmgParams(), "SAM's defaults")
    assert recommended_params(object()) == (AmgParams(), "SAM's defaults")


def test_given_parameters_win(tmp_path):
    path = tmp_path / "best_params.json"
    AmgParams(pred_iou_thresh=0.3).to_json(str(path))
    params, source = choose_params(str(path), model="samstar-tiny")
    assert params.pred_iou_thresh == 0.3 and str(path) in source


def test_segment_records_the_source(tmp_path, random_sam):
    img = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    # An in-memory model is not registered: SAM's defaults, said so in the summary.
    segment(img, model=random_sam, out_dir=tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["params_source"] == "SAM's defaults" and doc["params"]["pred_iou_thresh"] == 0.88
