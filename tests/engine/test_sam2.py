"""MaskEngine on a SAM 2 model == SAM2AutomaticMaskGenerator, on random parameters of SAM 2's space.

The model is a small random SAM 2 built from sam2's own modules and config (256-px input), structured
like the SAM 1 test model so that masks are localized (``structure_random_sam2``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sam2 = pytest.importorskip("sam2", reason="the optional `sam2` extra is not installed (pip install -e '.[sam2]')")

from samstar_env.engine import MaskEngine  # noqa: E402
from samstar_env.engine.engine import decode_units  # noqa: E402
from samstar_env.engine.sam2_proposals import Sam2Variant  # noqa: E402
from samstar_env.engine.testing import structure_random_sam2  # noqa: E402
from samstar_env.errors import InputError  # noqa: E402
from samstar_env.models.sam2_models import build_tiny_sam2, hole_filling_available, sam2_generator  # noqa: E402
from samstar_env.params import AmgParams, ParamSpace, Sam2AmgParams  # noqa: E402

N_SAMPLES = 10


@pytest.fixture(scope="module")
def sam2_model(blob_image):
    return structure_random_sam2(build_tiny_sam2(seed=0), blob_image)


def sam2_reference(model, image: np.ndarray, params: AmgParams) -> list[dict]:
    """SAM2AutomaticMaskGenerator's records, its predictor's feature sizes set for the model's input size."""
    gen = sam2_generator(model, **params.to_kwargs())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped CUDA post-processing warns per batch
        try:
            return gen.generate(image)
        except IndexError:  # cross-crop NMS on an empty result, as in SAM 1's AMG
            return []


def _samples() -> list[Sam2AmgParams]:
    rng = np.random.default_rng(2025)
    space = ParamSpace.env_default(points_per_batch=16).for_backbone("sam2")
    out = []
    while len(out) < N_SAMPLES:
        p = space.sample(rng)
        layers = int(rng.choice([0, 0, 1]))
        out.append(p.replace(
            points_per_side=int(rng.choice([[4, 6, 8], [4]][layers])),
            crop_n_layers=layers,
            crop_n_points_downscale_factor=1,
            pred_iou_thresh=float(rng.choice([0.0, rng.uniform(0.0, 0.6)])),
            stability_score_thresh=float(rng.choice([0.0, rng.uniform(0.3, 0.9)])),
        ))
    return out


SAMPLES = _samples()


def test_samples_cover_sam2s_own_parameters():
    assert {p.use_m2m for p in SAMPLES} == {False, True}
    assert {p.multimask_output for p in SAMPLES} == {False, True}
    assert len({p.mask_threshold for p in SAMPLES}) >= 3
    assert {p.crop_n_layers for p in SAMPLES} == {0, 1}


@pytest.fixture(scope="module")
def engine(sam2_model):
    return MaskEngine(sam2_model)


@pytest.mark.parametrize("params", SAMPLES, ids=[f"s{i}" for i in range(len(SAMPLES))])
def test_matches_sam2_amg(engine, sam2_model, blob_image, params, same_records):
    ref = sam2_reference(sam2_model, blob_image, params)
    same_records(engine.generate(blob_image, params).to_amg_records(), ref)


def test_comparisons_are_not_trivial(sam2_model, blob_image):
    counts = [len(sam2_reference(sam2_model, blob_image, p)) for p in SAMPLES[:4]]
    assert sum(n > 1 for n in counts) >= 3, counts


def test_every_grid_threshold_is_one_decode_and_off_grid_values_stay_exact(sam2_model, blob_image, same_records):
    engine = MaskEngine(sam2_model)
    base = Sam2AmgParams(points_per_side=6, points_per_batch=16, pred_iou_thresh=0.1, stability_score_thresh=0.4)
    for t in (0.0, -1.0, 0.5, 1.0):
        p = base.replace(mask_threshold=t)
        same_records(engine.generate(blob_image, p).to_amg_records(), sam2_reference(sam2_model, blob_image, p))
    assert engine.stats.proposal_misses == 1  # the other thresholds were binarized from the first decode
    # Off the grids: a threshold costs a decode, an offset a re-decode of its stability; both exact.
    for p in (base.replace(mask_threshold=0.25), base.replace(stability_score_offset=0.75)):
        same_records(engine.generate(blob_image, p).to_amg_records(), sam2_reference(sam2_model, blob_image, p))
    assert engine.stats.proposal_misses == 2
    assert engine.stats.stability_recomputes == 1


def test_decodes_are_cached_per_variant(sam2_model, blob_image):
    engine = MaskEngine(sam2_model)
    p = Sam2AmgParams(points_per_side=4, points_per_batch=16)
    for q in (p, p.replace(use_m2m=True), p.replace(multimask_output=False), p.replace(pred_iou_thresh=0.2)):
        engine.generate(blob_image, q)
    assert engine.stats.proposal_misses == 3 and engine.stats.embedding_misses == 1
    variants = {u.variant for q in (p, p.replace(use_m2m=True)) for u in decode_units(blob_image.shape[:2], q)}
    assert len(variants) == 2 and all(isinstance(v, Sam2Variant) for v in variants)


def test_min_area_is_part_of_the_decode_only_with_the_cuda_extension(sam2_model, blob_image, same_records):
    p = Sam2AmgParams(points_per_side=4, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    q = p.replace(min_mask_region_area=50)
    engine = MaskEngine(sam2_model)
    same_records(engine.generate(blob_image, q).to_amg_records(), sam2_reference(sam2_model, blob_image, q))
    same_records(engine.generate(blob_image, p).to_amg_records(), sam2_reference(sam2_model, blob_image, p))
    assert engine.stats.proposal_misses == (2 if hole_filling_available() else 1)


def test_sam1_parameters_run_with_sam2s_defaults(sam2_model, blob_image, same_records):
    p = AmgParams(points_per_side=4, points_per_batch=16, pred_iou_thresh=0.2, stability_score_thresh=0.5)
    got = MaskEngine(sam2_model).generate(blob_image, p).to_amg_records()
    same_records(got, sam2_reference(sam2_model, blob_image, Sam2AmgParams.from_sam1(p)))


def test_disk_cache_round_trip(sam2_model, blob_image, tmp_path, same_records):
    p = Sam2AmgParams(points_per_side=4, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.3, use_m2m=True)
    first = MaskEngine(sam2_model, cache_dir=tmp_path).generate(blob_image, p).to_amg_records()
    again = MaskEngine(sam2_model, cache_dir=tmp_path)
    same_records(again.generate(blob_image, p).to_amg_records(), first)
    assert again.stats.proposal_misses == 0 and again.stats.disk_hits >= 1


def test_sam2_parameters_on_a_sam1_model_are_refused(structured_sam, blob_image):
    with pytest.raises(InputError, match="need a SAM 2 model"):
        MaskEngine(structured_sam).generate(blob_image, Sam2AmgParams(points_per_side=4))
