"""Ground-truth metrics against values worked out by hand on small drawn cases."""

from __future__ import annotations

import numpy as np
import pytest

from samstar_env.data import synthetic
from samstar_env.data.micrograph import Micrograph, ParticleTruth
from samstar_env.engine.maskset import MaskSet
from samstar_env.metrics.ground_truth import (
    IOU_THRESHOLDS,
    count_error,
    gt_metrics,
    match,
    mean_segmentation_accuracy,
    merge_rate,
    occluded_fractions,
    over_segmentation_rate,
    overlaps,
    size_wasserstein,
)


def _gt():
    """Three 4x4 particles on a 12x12 frame: label 1 top-left, 2 top-right, 3 bottom-left."""
    gt = np.zeros((12, 12), np.int32)
    gt[0:4, 0:4] = 1
    gt[0:4, 8:12] = 2
    gt[8:12, 0:4] = 3
    return gt


def _ms(*boxes):
    m = np.zeros((len(boxes), 12, 12), bool)
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        m[k, r0:r1, c0:c1] = True
    return MaskSet.from_masks(m)


def test_iou_matrix_by_hand():
    # pred 0 = particle 1 exactly; pred 1 = left half of particle 2 (8 of 16 px); pred 2 = 4x8
    # block over particle 3 and 16 px of background.
    ov = overlaps(_ms((0, 4, 0, 4), (0, 4, 8, 10), (8, 12, 0, 8)), _gt())
    assert ov.gt_ids.tolist() == [1, 2, 3]
    assert ov.intersection.tolist() == [[16, 0, 0], [0, 8, 0], [0, 0, 16]]
    np.testing.assert_allclose(ov.iou, [[1, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])


def test_precision_recall_f1_by_hand():
    pred = _ms((0, 4, 0, 4), (0, 4, 8, 10), (8, 12, 0, 8), (5, 7, 5, 7))
    r = gt_metrics(pred, Micrograph(np.zeros((12, 12), np.float32), labels=_gt(), pixel_size_nm=2.0))
    # IoUs 1, 0.5, 0.5 (>= 0.5 counts) -> TP 3, FP 1 (the 2x2 speck), FN 0.
    assert (r["tp"], r["fp"], r["fn"]) == (3, 1, 0)
    assert r["precision"] == 0.75 and r["recall"] == 1.0
    assert r["f1"] == pytest.approx(6 / 7)
    # Accuracy: t = 0.5 -> 3/4; t = 0.55 ... 0.95 -> only the exact one: 1 / (1 + 3 + 2) = 1/6.
    assert r["mean_seg_accuracy"] == pytest.approx((0.75 + 9 * (1 / 6)) / 10)
    assert r["count_error"] == pytest.approx(1 / 3)
    assert r["size_unit"] == "nm"


def test_hungarian_prefers_more_matches_then_higher_iou():
    # Greedy on the best IoU would pair (0, 0) and leave pred 1 unmatched.
    iou = np.array([[0.9, 0.8], [0.7, 0.0]])
    m = match(iou, threshold=0.5)
    assert sorted(zip(m.pred_index.tolist(), m.gt_index.tolist(), strict=True)) == [(0, 1), (1, 0)]
    # Two predictions of one particle: only one can match.
    m = match(np.array([[0.9], [0.95]]), threshold=0.5)
    assert m.tp == 1 and m.gt_index.tolist() == [0] and m.pred_index.tolist() == [1] and m.fp == 1


def test_empty_cases():
    assert match(np.zeros((0, 3))).recall == 0.0
    e = match(np.zeros((0, 0)))
    assert (e.precision, e.recall, e.f1, e.accuracy) == (1.0, 1.0, 1.0, 1.0)
    r = gt_metrics(MaskSet.empty((12, 12)), Micrograph(np.zeros((12, 12), np.float32), labels=_gt()))
    assert (r["tp"], r["fn"], r["f1"], r["mean_seg_accuracy"], r["count_error"]) == (0, 3, 0.0, 0.0, 1.0)
    assert r["size_wasserstein"] is None and r["occluded_recall"] is None


def test_mean_segmentation_accuracy_thresholds():
    assert IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    # IoU 0.8: matched for 0.50 ... 0.80 (7 thresholds), TP/(TP+FP+FN) = 1 there, 0 after.
    assert mean_segmentation_accuracy(np.array([[0.8]])) == pytest.approx(0.7)


def test_over_segmentation_and_merge_by_hand():
    gt = _gt()
    # Particle 1 split in two halves (each entirely inside it, each a half of it); a large mask
    # holding particle 2 and background, particle 3 exact, a speck on background: only particle
    # 1 of 3 is split, and no prediction holds two particles.
    pred = _ms((0, 4, 0, 2), (0, 4, 2, 4), (0, 12, 4, 12), (8, 12, 0, 4), (6, 7, 6, 7))
    ov = overlaps(pred, gt)
    assert over_segmentation_rate(ov) == pytest.approx(1 / 3)
    assert merge_rate(ov) == 0.0
    # A column block over particles 1 and 3 holds both: 1 merge among 2 predictions.
    pred_m = _ms((0, 12, 0, 4), (0, 4, 8, 12))  # column block over particles 1 and 3
    assert merge_rate(overlaps(pred_m, gt)) == pytest.approx(1 / 2)
    assert over_segmentation_rate(overlaps(pred_m, gt)) == 0.0
    # A duplicate (the same particle twice) counts as split.
    assert over_segmentation_rate(overlaps(_ms((0, 4, 0, 4), (0, 4, 0, 4)), gt)) == pytest.approx(1 / 3)


def test_count_error_and_size_wasserstein():
    assert count_error(5, 4) == 0.25 and count_error(0, 0) == 0.0
    # diameters {2, 4} vs {4, 6} px: W1 = 2 px = 1 nm at 0.5 nm/px.
    a = np.pi * np.array([2.0, 4.0]) ** 2 / 4
    b = np.pi * np.array([4.0, 6.0]) ** 2 / 4
    assert size_wasserstein(a, b, pixel_size_nm=0.5) == pytest.approx(1.0)
    assert size_wasserstein(a, b) == pytest.approx(2.0)
    assert size_wasserstein(a, np.zeros(0)) is None


def test_occluded_recall_from_amodal_instances():
    gt = _gt()
    amodal = np.zeros((3, 12, 12), bool)
    amodal[0, 0:4, 0:6] = True  # particle 1 is 24 px, 8 px of it hidden: occluded 1/3
    amodal[1] = gt == 2
    amodal[2] = gt == 3
    img = Micrograph(np.zeros((12, 12), np.float32), labels=gt, instances=amodal)
    np.testing.assert_allclose(occluded_fractions(img), [1 / 3, 0, 0])
    found = gt_metrics(_ms((0, 4, 0, 4), (0, 4, 8, 12)), img)
    missed = gt_metrics(_ms((0, 4, 8, 12), (8, 12, 0, 4)), img)
    assert (found["occluded_recall"], found["n_occluded"]) == (1.0, 1)
    assert (missed["occluded_recall"], missed["n_occluded"]) == (0.0, 1)
    # The particle table, when present, is authoritative.
    table = tuple(ParticleTruth(k + 1, 4.0, "cube", (0.0, 0.0), f) for k, f in enumerate([0.0, 0.5, 0.05]))
    img2 = Micrograph(np.zeros((12, 12), np.float32), labels=gt, instances=amodal, particles=table)
    r = gt_metrics(_ms((0, 4, 0, 4)), img2)
    assert (r["occluded_recall"], r["n_occluded"]) == (0.0, 1)


def test_iou_with_overlapping_predictions_and_noncontiguous_labels():
    gt = np.zeros((12, 12), np.int32)
    gt[0:4, 0:4] = 7
    gt[8:12, 8:12] = 3
    pred = _ms((0, 4, 0, 4), (0, 6, 0, 6), (8, 12, 8, 12))
    ov = overlaps(pred, gt)
    assert ov.gt_ids.tolist() == [3, 7]
    np.testing.assert_allclose(ov.iou, [[0, 1], [0, 16 / 36], [1, 0]])


def test_on_synthetic_ground_truth():
    m = synthetic.generate("perovskite", 1, size=(128, 128))
    r = gt_metrics(MaskSet.from_labels(m.labels), m)
    assert r["f1"] == 1.0 and r["mean_seg_accuracy"] == 1.0 and r["merge_rate"] == 0.0
    assert r["over_segmentation_rate"] == 0.0 and r["size_wasserstein"] == pytest.approx(0.0, abs=1e-9)
    if r["n_occluded"]:
        assert r["occluded_recall"] == 1.0
