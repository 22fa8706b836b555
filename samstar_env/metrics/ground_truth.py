"""Ground-truth segmentation metrics.

These judge tuners (benchmarks, the problem's optional ground-truth report, model quality); they
never enter a reward. Predictions are a :class:`MaskSet` (masks may overlap, as SAM's do); ground
truth is an instance label image (0 = background, visible parts only), plus, for the
occluded-particle recall, the generators' amodal ``instances``.

Definitions (N_p predictions, N_g ground-truth particles, IoU on pixels):

- **matching at IoU t**: a one-to-one assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``)
  that maximizes the number of pairs with IoU >= t, ties broken by the larger total IoU (StarDist's
  ``matching``); TP = matched pairs, FP = N_p - TP, FN = N_g - TP;
- **precision** TP / N_p, **recall** TP / N_g, **F1** 2 TP / (N_p + N_g) at t = 0.5 (all three are 1
  when both sets are empty and 0 when only one is);
- **mean segmentation accuracy**: the mean over t = 0.50, 0.55, ..., 0.95 of TP / (TP + FP + FN), as
  micro-sam and StarDist define it;
- **count error**: |N_p - N_g| / max(N_g, 1);
- **over-segmentation rate**: the fraction of GT particles g *split* over two or more predictions,
  where prediction p is a piece of g when at least half of p lies in g (|p & g| >= 0.5 |p|) and p
  covers at least a tenth of g (|p & g| >= 0.1 |g|); a particle returned twice counts as split;
- **merge rate**: the fraction of predictions that cover two or more GT particles, where p covers g
  when it holds at least half of g (|p & g| >= 0.5 |g|);
- **size Wasserstein**: ``scipy.stats.wasserstein_distance`` between the equivalent diameters
  sqrt(4 A / pi) of predictions and of GT particles (visible masks both), in nm (px when the image
  has no pixel size);
- **occluded recall**: the recall at t = 0.5 restricted to GT particles whose occluded fraction (hidden
  part of the amodal mask) exceeds a threshold (0.1 by default).

The IoU matrix comes from one sparse product of the pixel-incidence matrices (cost follows the
number of overlapping pixels, not N_p x N_g full frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

from samstar_env.data.micrograph import Micrograph
from samstar_env.engine.maskset import MaskSet
from samstar_env.rewards.geometry import mask_geometry

#: IoU thresholds of the mean segmentation accuracy (0.50, 0.55, ..., 0.95).
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


@dataclass(frozen=True)
class Overlaps:
    """Pixel overlaps between predictions and ground-truth particles.

    Parameters
    ----------
    intersection : ndarray of float64, shape (N_p, N_g)
        |p & g| in pixels.
    pred_area, gt_area : ndarray of float64
        |p| and |g|.
    gt_ids : ndarray of int
        The label value of each GT column.
    """

    intersection: np.ndarray
    pred_area: np.ndarray
    gt_area: np.ndarray
    gt_ids: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        """(N_p, N_g) intersection over union."""
        union = self.pred_area[:, None] + self.gt_area[None, :] - self.intersection
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, self.intersection / np.maximum(union, 1e-12), 0.0)


def _gt_incidence(labels: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
    flat = np.asarray(labels).ravel()
    nz = np.flatnonzero(flat)
    ids = np.unique(flat[nz])
    rows = np.searchsorted(ids, flat[nz])
    mat = sp.csr_array((np.ones(nz.size, np.float32), (rows, nz)), shape=(ids.size, flat.size))
    return mat, ids


def overlaps(pred: MaskSet, gt_labels: np.ndarray) -> Overlaps:
    """Pixel overlaps of every prediction with every GT particle (see :class:`Overlaps`).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((4, 4), np.int32); gt[:2, :2] = 1; gt[2:, 2:] = 2
    >>> p = np.zeros((1, 4, 4), bool); p[0, :2, :3] = True
    >>> ov = overlaps(MaskSet.from_masks(p), gt)
    >>> ov.intersection.tolist(), ov.iou.round(3).tolist()
    ([[4.0, 0.0]], [[0.667, 0.0]])
    """
    gt_labels = np.asarray(gt_labels)
    if tuple(gt_labels.shape) != tuple(pred.image_shape):
        raise ValueError(f"overlaps: label image shape {gt_labels.shape} does not match the masks' {pred.image_shape}")
    gmat, ids = _gt_incidence(gt_labels)
    geom = mask_geometry(pred)
    pmat = geom.flat_pixels.astype(np.float32)
    inter = (pmat @ gmat.T).toarray().astype(np.float64) if len(pred) and ids.size else np.zeros((len(pred), ids.size))
    return Overlaps(
        intersection=inter,
        pred_area=geom.area_px.astype(np.float64),
        gt_area=np.asarray(gmat.sum(axis=1), np.float64).ravel(),
        gt_ids=ids,
    )


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching at one IoU threshold.

    Parameters
    ----------
    threshold : float
        The IoU threshold.
    pred_index, gt_index : ndarray of int
        Matched pairs (row of the prediction, column of the GT particle), each with IoU >= threshold.
    iou : ndarray of float
        IoU of each matched pair.
    n_pred, n_gt : int
        Sizes of the two sets.
    """

    threshold: float
    pred_index: np.ndarray
    gt_index: np.ndarray
    iou: np.ndarray
    n_pred: int
    n_gt: int

    @property
    def tp(self) -> int:
        """Matched pairs."""
        return int(self.pred_index.size)

    @property
    def fp(self) -> int:
        """Unmatched predictions."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """Unmatched GT particles."""
        return self.n_gt - self.tp

    @property
    def precision(self) -> float:
        """TP / N_p (1 when both sets are empty)."""
        return _ratio(self.tp, self.n_pred, self.n_gt)

    @property
    def recall(self) -> float:
        """TP / N_g (1 when both sets are empty)."""
        return _ratio(self.tp, self.n_gt, self.n_pred)

    @property
    def f1(self) -> float:
        """2 TP / (N_p + N_g) (1 when both sets are empty)."""
        return _ratio(2 * self.tp, self.n_pred + self.n_gt, 0)

    @property
    def accuracy(self) -> float:
        """TP / (TP + FP + FN) (1 when both sets are empty)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn, 0)


def _ratio(num: float, den: float, other: float) -> float:
    if den > 0:
        return float(num / den)
    return 1.0 if other == 0 else 0.0


def match(iou: np.ndarray, *, threshold: float = 0.5) -> Matching:
    """Hungarian matching of predictions (rows) to GT particles (columns) at an IoU threshold.

    Maximizes the number of pairs with IoU >= ``threshold``; among maximal matchings, the total
    IoU of the pairs (StarDist's cost ``-(iou >= t) - iou / (2 n)``; the second term sums to less
    than one match).

    Examples
    --------
    >>> import numpy as np
    >>> iou = np.array([[0.9, 0.6], [0.55, 0.0]])
    >>> m = match(iou, threshold=0.5)
    >>> m.pred_index.tolist(), m.gt_index.tolist(), m.tp, m.fp, m.fn
    ([0, 1], [1, 0], 2, 0, 0)
    """
    iou = np.asarray(iou, float)
    n_pred, n_gt = iou.shape
    if n_pred == 0 or n_gt == 0:
        e = np.zeros(0, np.int64)
        return Matching(float(threshold), e, e, np.zeros(0), n_pred, n_gt)
    ok = iou >= threshold
    cost = -ok.astype(float) - np.where(ok, iou, 0.0) / (2.0 * min(n_pred, n_gt))
    rows, cols = linear_sum_assignment(cost)
    keep = ok[rows, cols]
    rows, cols = rows[keep], cols[keep]
    return Matching(float(threshold), rows.astype(np.int64), cols.astype(np.int64), iou[rows, cols], n_pred, n_gt)


def mean_segmentation_accuracy(iou: np.ndarray, *, thresholds: tuple[float, ...] = IOU_THRESHOLDS) -> float:
    """Mean of TP / (TP + FP + FN) over the IoU thresholds (0.5:0.05:0.95 by default).

    Examples
    --------
    >>> import numpy as np
    >>> round(mean_segmentation_accuracy(np.array([[0.72]])), 3)  # matched for t = 0.50 ... 0.70
    0.5
    """
    return float(np.mean([match(iou, threshold=t).accuracy for t in thresholds]))


def over_segmentation_rate(ov: Overlaps, *, piece_fraction: float = 0.5, min_cover: float = 0.1) -> float:
    """Fraction of GT particles split over >= 2 predictions (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((4, 8), np.int32); gt[:, :4] = 1; gt[:, 4:] = 2
    >>> p = np.zeros((2, 4, 8), bool); p[0, :2, :4] = True; p[1, 2:, :4] = True  # particle 1 halved
    >>> over_segmentation_rate(overlaps(MaskSet.from_masks(p), gt))
    0.5
    """
    n_gt = ov.gt_area.size
    if n_gt == 0:
        return 0.0
    inter = ov.intersection
    piece = (inter >= piece_fraction * ov.pred_area[:, None]) & (inter >= min_cover * ov.gt_area[None, :]) & (inter > 0)
    return float((piece.sum(axis=0) >= 2).mean())


def merge_rate(ov: Overlaps, *, cover_fraction: float = 0.5) -> float:
    """Fraction of predictions covering >= 2 GT particles (each at least half inside it).

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((4, 8), np.int32); gt[:, :4] = 1; gt[:, 4:] = 2
    >>> p = np.zeros((2, 4, 8), bool); p[0] = True; p[1, :, :4] = True
    >>> merge_rate(overlaps(MaskSet.from_masks(p), gt))
    0.5
    """
    n_pred = ov.pred_area.size
    if n_pred == 0:
        return 0.0
    covers = (ov.intersection >= cover_fraction * ov.gt_area[None, :]) & (ov.intersection > 0)
    return float((covers.sum(axis=1) >= 2).mean())


def count_error(n_pred: int, n_gt: int) -> float:
    """|N_p - N_g| / max(N_g, 1).

    Examples
    --------
    >>> count_error(12, 10), count_error(3, 0)
    (0.2, 3.0)
    """
    return abs(int(n_pred) - int(n_gt)) / max(int(n_gt), 1)


def size_wasserstein(pred_area_px: np.ndarray, gt_area_px: np.ndarray, *, pixel_size_nm: float | None = None) -> float | None:
    """1-Wasserstein distance between equivalent-diameter distributions (nm, or px without pixel size).

    ``None`` when either side is empty (undefined).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.pi * np.array([5.0, 5.0]) ** 2 / 4   # two disks of diameter 5
    >>> b = np.pi * np.array([7.0, 7.0]) ** 2 / 4   # two of diameter 7
    >>> round(size_wasserstein(a, b, pixel_size_nm=0.5), 6)
    1.0
    """
    pa, ga = np.asarray(pred_area_px, float), np.asarray(gt_area_px, float)
    pa, ga = pa[pa > 0], ga[ga > 0]
    if pa.size == 0 or ga.size == 0:
        return None
    scale = 1.0 if pixel_size_nm is None else float(pixel_size_nm)
    return float(wasserstein_distance(np.sqrt(4 * pa / np.pi) * scale, np.sqrt(4 * ga / np.pi) * scale))


def occluded_fractions(image: Micrograph) -> np.ndarray | None:
    """Occluded fraction of each GT label (index = label - 1), or ``None`` without amodal data.

    From the particle table when present, else computed from ``instances`` (amodal) and ``labels``
    (visible): ``1 - |visible| / |amodal|``.
    """
    if image.particles:
        n = max(p.label for p in image.particles)
        out = np.zeros(n)
        for p in image.particles:
            out[p.label - 1] = p.occluded_fraction
        return out
    if image.instances is None or image.labels is None:
        return None
    amodal = image.instances.areas.astype(float)
    visible = np.bincount(image.labels.ravel(), minlength=amodal.size + 1)[1 : amodal.size + 1].astype(float)
    return np.where(amodal > 0, 1.0 - visible / np.maximum(amodal, 1), 0.0)


def occluded_recall(m: Matching, gt_ids: np.ndarray, fractions: np.ndarray, *, threshold: float = 0.1) -> tuple[float | None, int]:
    """Recall of GT particles with occluded fraction > ``threshold``: (recall or ``None``, count)."""
    ids = np.asarray(gt_ids)
    frac = np.array([fractions[i - 1] if 0 < i <= fractions.size else 0.0 for i in ids])
    occl = frac > threshold
    n = int(occl.sum())
    if n == 0:
        return None, 0
    matched = np.zeros(ids.size, bool)
    matched[m.gt_index] = True
    return float(matched[occl].mean()), n


def gt_metrics(masks: MaskSet, image: Micrograph, *, iou_threshold: float = 0.5, occluded_threshold: float = 0.1) -> dict[str, Any]:
    """All ground-truth metrics of ``masks`` against ``image.labels`` (see the module docstring).

    Returns
    -------
    dict
        ``n_pred``, ``n_gt``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (at
        ``iou_threshold``), ``mean_seg_accuracy``, ``count_error``, ``over_segmentation_rate``,
        ``merge_rate``, ``size_wasserstein`` with ``size_unit`` (``"nm"``/``"px"``),
        ``occluded_recall`` and ``n_occluded``. Undefined values (no occluded particle, an empty
        side for the size distance) are ``None``, never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((8, 8), np.int32); gt[:4, :4] = 1; gt[4:, 4:] = 2
    >>> img = Micrograph(np.zeros((8, 8), np.float32), labels=gt, pixel_size_nm=1.0)
    >>> p = np.zeros((2, 8, 8), bool); p[0, :4, :4] = True; p[1, :2, 4:] = True
    >>> r = gt_metrics(MaskSet.from_masks(p), img)
    >>> r["tp"], r["fp"], r["fn"], r["f1"], round(r["mean_seg_accuracy"], 4)
    (1, 1, 1, 0.5, 0.3333)
    """
    if image.labels is None:
        raise ValueError(f"gt_metrics: micrograph {image.name!r} has no ground-truth labels")
    ov = overlaps(masks, image.labels)
    iou = ov.iou
    m = match(iou, threshold=iou_threshold)
    frac = occluded_fractions(image)
    occ, n_occ = occluded_recall(m, ov.gt_ids, frac, threshold=occluded_threshold) if frac is not None else (None, 0)
    return {
        "n_pred": m.n_pred,
        "n_gt": m.n_gt,
        "tp": m.tp,
        "fp": m.fp,
        "fn": m.fn,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "mean_seg_accuracy": mean_segmentation_accuracy(iou),
        "count_error": count_error(m.n_pred, m.n_gt),
        "over_segmentation_rate": over_segmentation_rate(ov),
        "merge_rate": merge_rate(ov),
        "size_wasserstein": size_wasserstein(ov.pred_area, ov.gt_area, pixel_size_nm=image.pixel_size_nm),
        "size_unit": "nm" if image.pixel_size_nm is not None else "px",
        "occluded_recall": occ,
        "n_occluded": n_occ,
    }
