import json

import numpy as np
import pytest
from segment_anything import SamAutomaticMaskGenerator

from samstar_env.errors import InputError
from samstar_env.params import AmgParams, Dimension, ParamSpace


def test_defaults_match_segment_anything(random_sam):
    amg = SamAutomaticMaskGenerator(random_sam)
    p = AmgParams()
    assert amg.pred_iou_thresh == p.pred_iou_thresh
    assert amg.stability_score_thresh == p.stability_score_thresh
    assert amg.box_nms_thresh == p.box_nms_thresh
    assert amg.crop_overlap_ratio == p.crop_overlap_ratio
    assert amg.points_per_batch == p.points_per_batch
    assert len(amg.point_grids[0]) == p.points_per_side**2
    # The 13 constructor arguments of AMG, and samstar's two tiling fields, which AMG never sees.
    import inspect
    amg_args = set(inspect.signature(SamAutomaticMaskGenerator.__init__).parameters) - {"self", "model"}
    assert set(p.to_kwargs()) == amg_args and len(amg_args) == 13
    assert set(AmgParams.__dataclass_fields__) == amg_args | {"tile_shape", "halo"}
    assert set(p.to_dict()) == amg_args  # untiled parameters keep the 13-key file form
    assert AmgParams.from_dict(AmgParams(tile_shape=64, halo=8).to_dict()) == AmgParams(tile_shape=64, halo=8)
    SamAutomaticMaskGenerator(random_sam, **p.to_kwargs())


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("pred_iou_thresh", 1.5, r"pred_iou_thresh=1.5 is out of range; expected a value in \[0.0, 1.0\]"),
        ("crop_n_layers", 7, r"crop_n_layers=7 is out of range"),
        ("points_per_side", 0, r"points_per_side=0 is out of range"),
        ("stability_score_offset", 0.0, r"stability_score_offset"),
        ("crop_overlap_ratio", 1.0, r"crop_overlap_ratio"),
        ("output_mode", "png", r"output_mode"),
        ("box_nms_thresh", float("nan"), r"box_nms_thresh"),
    ],
)
def test_invalid_values_name_field_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        AmgParams(**{field: value})


def test_integer_fields_reject_fractions():
    with pytest.raises(TypeError, match="points_per_side"):
        AmgParams(points_per_side=16.5)


def test_json_round_trip(tmp_path):
    p = AmgParams(points_per_side=12, crop_n_layers=1, min_mask_region_area=25)
    p.to_json(str(tmp_path / "p.json"))
    assert AmgParams.from_json(str(tmp_path / "p.json")) == p
    with pytest.raises(ValueError, match="unknown parameter"):
        AmgParams.from_dict({"points_per_sid": 3})


def test_decode_encode_round_trip_and_bounds():
    space = ParamSpace.default()
    rng = np.random.default_rng(1)
    for _ in range(200):
        x = rng.uniform(-1, 1, space.dim)
        p = space.decode(x)
        again = space.decode(space.encode(p))  # float32 actions: floats agree to ~1e-6
        for d in space.dimensions:
            assert getattr(again, d.name) == pytest.approx(getattr(p, d.name), rel=1e-5)
        for d in space.dimensions:
            v = getattr(p, d.name)
            if d.kind == "grid":
                assert v in d.choices
            else:
                assert d.low - 1e-9 <= v <= d.high + 1e-9


def test_decode_extremes_and_clipping():
    space = ParamSpace.default()
    lo, hi = space.decode(-np.ones(space.dim)), space.decode(np.ones(space.dim))
    assert lo.points_per_side == 8 and hi.points_per_side == 64
    assert lo.pred_iou_thresh == pytest.approx(0.0) and hi.pred_iou_thresh == pytest.approx(0.98)
    assert space.decode(5 * np.ones(space.dim)) == hi
    with pytest.raises(ValueError, match="expected 10"):
        space.decode(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        space.decode(np.full(space.dim, np.nan))


def test_decode_repairs_infeasible_crop_grids():
    space = ParamSpace.subset(["points_per_side", "crop_n_layers", "crop_n_points_downscale_factor"])
    p = space.decode([-1.0, 1.0, 1.0])  # 8 points, 2 layers, factor 4 -> 8 // 16 == 0 points
    assert p.points_per_side // p.crop_n_points_downscale_factor**p.crop_n_layers >= 1


def test_log_dimension():
    d = Dimension("min_mask_region_area", "log", 1, 1000)
    assert d.decode(0.0) == pytest.approx(np.sqrt(1000))
    assert d.encode(d.decode(0.3)) == pytest.approx(0.3)


def test_sample_is_deterministic():
    space = ParamSpace.default()
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]


def test_sam2_params_cover_every_argument_of_sam2s_generator():
    import inspect

    sam2_amg = pytest.importorskip("sam2.automatic_mask_generator", reason="the optional `sam2` extra is not installed")
    from samstar_env.params import Sam2AmgParams

    sig = inspect.signature(sam2_amg.SAM2AutomaticMaskGenerator.__init__)
    wanted = {n for n, p in sig.parameters.items() if n not in ("self", "model") and p.kind is not p.VAR_KEYWORD}
    p = Sam2AmgParams()
    assert set(p.to_kwargs()) == wanted
    # SAM 2's own defaults, argument by argument.
    for name in wanted - {"point_grids"}:
        assert p.to_kwargs()[name] == sig.parameters[name].default, name


def test_sam2_params_are_validated_and_round_trip():
    from samstar_env.params import SAM2_FIELDS, Sam2AmgParams

    with pytest.raises(InputError, match=r"mask_threshold=25.0 is out of range"):
        Sam2AmgParams(mask_threshold=25.0)
    with pytest.raises(TypeError, match="use_m2m=1 must be a bool"):
        Sam2AmgParams(use_m2m=1)
    with pytest.raises(InputError, match="pred_iou_thresh"):
        Sam2AmgParams(pred_iou_thresh=1.5)
    p = Sam2AmgParams(points_per_side=12, mask_threshold=-0.5, use_m2m=True, multimask_output=False, tile_shape=256, halo=32)
    assert AmgParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Sam2AmgParams.from_sam1(AmgParams(points_per_side=12)).points_per_side == 12
    with pytest.raises(InputError, match="SAM 2's parameters"):
        ParamSpace(dimensions=ParamSpace.subset(list(SAM2_FIELDS)).dimensions)  # a SAM 1 base
    space = ParamSpace.default().for_backbone("sam2")
    assert space.backbone == "sam2" and space.dim == ParamSpace.default().dim + 3
    q = space.decode(np.ones(space.dim))
    assert isinstance(q, Sam2AmgParams) and q.use_m2m and q.multimask_output and q.mask_threshold == 1.0
    assert space.for_backbone("sam2") == space
    with pytest.raises(InputError, match="cannot run on a SAM 1 backbone"):
        space.for_backbone("sam1")
