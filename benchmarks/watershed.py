"""A classical segmenter for the ``watershed`` baseline of ``samstar bench``: what a microscopist would
try before SAM.

The pipeline is the textbook one for separated or touching convex particles (scikit-image's
"Watershed segmentation" gallery example), every step a scikit-image or SciPy call:

1. Gaussian smoothing (``skimage.filters.gaussian``, ``sigma_px``);
2. the particles' side of the histogram from the image's modality, or from Otsu's split when the
   modality is unknown (:func:`samstar_env.data.polarity.particle_split`, the rule the rewards use),
   so dark particles on a bright background are inverted first;
3. a global threshold, Otsu's or Li's (``skimage.filters.threshold_otsu`` / ``threshold_li``), moved
   by ``threshold_scale`` between the image's minimum (scale 0) and the threshold (scale 1):
   below 1 the foreground grows (leakage, merges), above 1 it shrinks (misses, eroded particles);
4. the Euclidean distance transform of the foreground (``scipy.ndimage.distance_transform_edt``);
5. markers at its maxima at least ``min_distance_px`` apart within each connected component
   (``skimage.feature.peak_local_max``): small values split particles, large ones merge touching ones;
6. ``skimage.segmentation.watershed`` of the negated distance from those markers, inside the foreground;
7. removal of regions smaller than ``min_area_px`` (``skimage.morphology.remove_small_objects``).

The result is a :class:`~samstar_env.engine.MaskSet` (one mask per region, ``MaskSet.from_labels``),
so the label-free rewards and the ground-truth metrics score it exactly as they score SAM's masks.

:class:`WatershedSpace` maps actions in ``[-1, 1]^5`` onto :class:`WatershedParams` the way
:class:`~samstar_env.params.ParamSpace` maps them onto AMG parameters, and :class:`WatershedProblem`
scores parameters on a task's images with the task's own reward suite: together they let the very
NSGA-II agent that tunes SAM tune the watershed (see :mod:`samstar_env.benchmarks.baselines`).

Examples
--------
Two separated disks are found as two particles (without smoothing, each mask is its disk exactly):

>>> import numpy as np
>>> from skimage.draw import disk
>>> from samstar_env.data import Micrograph
>>> img = np.zeros((64, 64), np.float32)
>>> for centre in ((20, 20), (42, 44)):
...     img[disk(centre, 8)] = 1.0
>>> masks = watershed_segment(Micrograph(img, modality="haadf"), WatershedParams(sigma_px=0.0, min_distance_px=5))
>>> len(masks), masks.areas.tolist() == [disk((20, 20), 8)[0].size] * 2
(2, True)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.data.polarity import FLAT_RANGE, particle_split
from samstar_env.engine.maskset import MaskSet
from samstar_env.errors import InputError
from samstar_env.task import Task

#: The global thresholds the pipeline can use (scikit-image's names without ``threshold_``).
THRESHOLDS = ("otsu", "li")


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`watershed_segment`.

    Parameters
    ----------
    sigma_px : float
        Gaussian smoothing (pixels) before thresholding; 0 smooths nothing.
    threshold : {"otsu", "li"}
        Global threshold method (``skimage.filters.threshold_otsu`` or ``threshold_li``).
    threshold_scale : float
        Position of the cut between the image minimum (0) and the method's threshold (1); > 0.
    min_distance_px : int
        Minimum distance (pixels) between two markers (``peak_local_max(min_distance=...)``); >= 1.
    min_area_px : int
        Regions with fewer pixels than this are dropped; 0 keeps all.

    Examples
    --------
    >>> p = WatershedParams(sigma_px=2.0, threshold="li")
    >>> WatershedParams.from_dict(p.to_dict()) == p
    True
    >>> WatershedParams(threshold="triangle")
    Traceback (most recent call last):
    ...
    samstar_env.errors.InputError: WatershedParams.threshold: expected one of ('otsu', 'li'), got 'triangle'
    """

    sigma_px: float = 1.0
    threshold: str = "otsu"
    threshold_scale: float = 1.0
    min_distance_px: int = 5
    min_area_px: int = 10

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> InputError:
            return InputError(f"WatershedParams.{name}: expected {expected}, got {getattr(self, name)!r}")

        for name in ("sigma_px", "threshold_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise bad(name, "a finite number")
            object.__setattr__(self, name, float(v))
        if self.sigma_px < 0:
            raise bad("sigma_px", "a number >= 0")
        if self.threshold_scale <= 0:
            raise bad("threshold_scale", "a number > 0")
        if self.threshold not in THRESHOLDS:
            raise bad("threshold", f"one of {THRESHOLDS}")
        for name, lowest in (("min_distance_px", 1), ("min_area_px", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lowest:
                raise bad(name, f"an integer >= {lowest}")
            object.__setattr__(self, name, int(v))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the trial ``params`` of a watershed run record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatershedParams:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"WatershedParams: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))


Kind = Literal["float", "int", "choice"]


@dataclass(frozen=True)
class WatershedDimension:
    """One tuned watershed parameter: how a coordinate in [-1, 1] maps onto it.

    The same rules as :class:`samstar_env.params.Dimension` (which only names AMG parameters):
    ``float`` linear in [low, high], ``int`` linear then rounded, ``choice`` [-1, 1] cut into
    ``len(choices)`` equal bins.

    Examples
    --------
    >>> WatershedDimension("threshold", "choice", choices=("otsu", "li")).decode(0.3)
    'li'
    >>> WatershedDimension("min_distance_px", "int", 2, 40).decode(-1.0)
    2
    """

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in {f.name for f in fields(WatershedParams)}:
            raise InputError(f"WatershedDimension {self.name!r}: expected a WatershedParams field {[f.name for f in fields(WatershedParams)]}")
        if self.kind == "choice":
            if not self.choices:
                raise InputError(f"WatershedDimension {self.name!r}: a choice needs at least one value")
        elif self.kind not in ("float", "int"):
            raise InputError(f"WatershedDimension {self.name!r}: kind must be float, int or choice, got {self.kind!r}")
        elif not self.low < self.high:
            raise InputError(f"WatershedDimension {self.name!r}: need low < high, got [{self.low}, {self.high}]")

    def decode(self, x: float) -> Any:
        """Map ``x`` in [-1, 1] (clipped) to a parameter value."""
        u = (min(max(float(x), -1.0), 1.0) + 1.0) / 2.0
        if self.kind == "choice":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        v = self.low + u * (self.high - self.low)
        return int(round(v)) if self.kind == "int" else float(v)

    def encode(self, value: Any) -> float:
        """Map a value to [-1, 1]; a choice maps to the centre of its bin."""
        if self.kind == "choice":
            u = (self.choices.index(value) + 0.5) / len(self.choices)
        else:
            u = (float(value) - self.low) / (self.high - self.low)
        return float(min(max(2.0 * u - 1.0, -1.0), 1.0))

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (the ``space`` of a watershed tuning result)."""
        if self.kind == "choice":
            return {"name": self.name, "kind": "choice", "choices": list(self.choices)}
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}


# Ranges for the synthetic tasks' particles (a few to ~50 px across at 256-512 px): smoothing up to
# a few pixels keeps small particles; the cut within +-40 % of the method's threshold covers both
# leaking and eroded foregrounds; marker spacing from "split everything" to "merge touching
# neighbours"; minimum area from none to a 16 px disk.
WATERSHED_DIMENSIONS: tuple[WatershedDimension, ...] = (
    WatershedDimension("sigma_px", "float", 0.5, 4.0),
    WatershedDimension("threshold", "choice", choices=THRESHOLDS),
    WatershedDimension("threshold_scale", "float", 0.6, 1.4),
    WatershedDimension("min_distance_px", "int", 2, 40),
    WatershedDimension("min_area_px", "int", 0, 200),
)


@dataclass(frozen=True)
class WatershedSpace:
    """Actions in ``[-1, 1]^d`` <-> :class:`WatershedParams`, as ParamSpace does for AMG parameters.

    Untuned fields stay at ``base``. An agent sees only ``dim``; ``decode``, ``encode``,
    ``describe`` and ``names`` are what :meth:`samstar_env.agents.Agent.run` and
    :class:`~samstar_env.agents.TuningResult` use of a space.

    Examples
    --------
    >>> space = WatershedSpace()
    >>> space.dim, space.names[:2]
    (5, ('sigma_px', 'threshold'))
    >>> space.decode(space.encode(WatershedParams(sigma_px=2.0, min_distance_px=7))) == WatershedParams(sigma_px=2.0, min_distance_px=7)
    True
    """

    dimensions: tuple[WatershedDimension, ...] = WATERSHED_DIMENSIONS
    base: WatershedParams = WatershedParams()

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if not names or len(set(names)) != len(names):
            raise InputError(f"WatershedSpace: expected distinct dimension names, got {names}")

    @property
    def dim(self) -> int:
        """Action dimension."""
        return len(self.dimensions)

    @property
    def names(self) -> tuple[str, ...]:
        """Tuned parameter names, in action order."""
        return tuple(d.name for d in self.dimensions)

    def decode(self, x: Sequence[float] | np.ndarray) -> WatershedParams:
        """The parameters of action ``x`` (clipped to [-1, 1])."""
        a = np.asarray(x, np.float64).reshape(-1)
        if a.shape[0] != self.dim:
            raise InputError(f"WatershedSpace.decode: expected an action of {self.dim} values {list(self.names)}, got {a.shape[0]}")
        values = {d.name: d.decode(v) for d, v in zip(self.dimensions, a, strict=True)}
        return WatershedParams(**{**self.base.to_dict(), **values})

    def encode(self, params: WatershedParams) -> np.ndarray:
        """The action of ``params`` (float64, shape (d,))."""
        return np.array([d.encode(getattr(params, d.name)) for d in self.dimensions], np.float64)

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready description of every dimension."""
        return [d.describe() for d in self.dimensions]


def _threshold(image: np.ndarray, method: str) -> float:
    from skimage.filters import threshold_li, threshold_otsu

    return float(threshold_otsu(image) if method == "otsu" else threshold_li(image))


def _remove_small(labels: np.ndarray, min_area_px: int) -> np.ndarray:
    """``labels`` without regions of fewer than ``min_area_px`` pixels (scikit-image's call)."""
    from skimage.morphology import remove_small_objects

    if min_area_px <= 1:
        return labels
    with warnings.catch_warnings():
        # It warns on a label image of one region, taking it for a mistaken 0/1 image; here one
        # particle is a valid answer.
        warnings.filterwarnings("ignore", message="Only one label was provided", category=UserWarning)
        try:
            # scikit-image >= 0.26 removes regions of at most max_size pixels (min_size is deprecated there).
            return remove_small_objects(labels, max_size=min_area_px - 1)
        except TypeError:  # pragma: no cover - scikit-image < 0.26
            return remove_small_objects(labels, min_size=min_area_px)


def watershed_labels(image: Micrograph, params: WatershedParams, *, prior: PhysicsPrior | None = None) -> np.ndarray:
    """The pipeline of the module docstring, as an instance label image (int32, 0 = background).

    Parameters
    ----------
    image : Micrograph
    params : WatershedParams
    prior : PhysicsPrior, optional
        Its polarity is used when the image's modality does not give one.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian
    from skimage.segmentation import watershed

    img = np.asarray(image.image, np.float32)
    if params.sigma_px > 0:
        img = gaussian(img, sigma=params.sigma_px, preserve_range=True).astype(np.float32)
    if particle_split(image, prior).polarity == "dark":
        img = -img  # particles bright from here on; thresholds are invariant to the shift
    lo = float(img.min())
    if float(img.max()) - lo < FLAT_RANGE:
        return np.zeros(img.shape, np.int32)  # no threshold on a flat image: no particles
    fg = img > lo + params.threshold_scale * (_threshold(img, params.threshold) - lo)
    dist = ndi.distance_transform_edt(fg)
    components, _ = ndi.label(fg)
    peaks = peak_local_max(dist, min_distance=params.min_distance_px, labels=components, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    labels = watershed(-dist, markers, mask=fg)
    return _remove_small(np.asarray(labels, np.int32), params.min_area_px)


def watershed_segment(image: Micrograph, params: WatershedParams, *, prior: PhysicsPrior | None = None) -> MaskSet:
    """Segment ``image`` with the classical pipeline: one mask per region (see :func:`watershed_labels`)."""
    return MaskSet.from_labels(watershed_labels(image, params, prior=prior))


class WatershedProblem:
    """Score watershed parameters on a :class:`~samstar_env.task.Task` exactly as SAM's are scored.

    The same images, prior and :class:`~samstar_env.rewards.RewardSuite` as the task's
    :class:`~samstar_env.problem.TuningProblem`, so reward vectors (and hypervolumes) of the two
    segmenters compare directly. Picklable (a task and nothing else), so Dask evaluators work.

    Parameters
    ----------
    task : Task
        Images, prior and rewards (its AMG space and model are not used).
    gt_metrics : bool
        Also compute ground-truth metrics where images carry labels (never a reward).
    space : WatershedSpace, optional
        The tuned parameters (default :class:`WatershedSpace`).
    """

    def __init__(self, task: Task, *, gt_metrics: bool = False, space: WatershedSpace | None = None) -> None:
        if "latency" in tuple(task.rewards.names):
            # latency predicts AMG's decoding cost from AMG parameters; a watershed has none.
            raise InputError(f"task {task.name!r}: the watershed baseline cannot score reward 'latency' (it needs AMG parameters); expected a reward suite without it")
        self.task = task
        self.gt_metrics = bool(gt_metrics)
        self._space = space or WatershedSpace()

    @property
    def search_space(self) -> WatershedSpace:
        """The tuned watershed parameters."""
        return self._space

    @property
    def reward_names(self) -> tuple[str, ...]:
        """Objective names, in vector order (the task's)."""
        return tuple(self.task.rewards.names)

    def evaluate(self, params: WatershedParams, *, images: Sequence[Micrograph] | None = None) -> Any:
        """Segment the task's images (or ``images``) with ``params`` and score them.

        Returns
        -------
        Evaluation
            As :meth:`samstar_env.problem.TuningProblem.evaluate` returns, with ``params`` the
            :class:`WatershedParams`.
        """
        from samstar_env.problem import Evaluation, mean_metrics

        if not isinstance(params, WatershedParams):
            raise TypeError(f"WatershedProblem.evaluate: params must be WatershedParams, got {type(params).__name__}")
        imgs = self.task.images if images is None else tuple(images)
        if not imgs:
            raise InputError("WatershedProblem.evaluate: expected at least one image")
        suite, prior = self.task.rewards, self.task.prior
        t0 = time.perf_counter()
        vectors, n_masks, gts, details = [], [], [], []
        for im in imgs:
            masks = watershed_segment(im, params, prior=prior)
            vec, det = suite.evaluate_with_details(masks, im, prior)
            vectors.append(np.asarray(vec, np.float32))
            n_masks.append(len(masks))
            details.append(det)
            if self.gt_metrics and im.labels is not None:
                from samstar_env.metrics.ground_truth import gt_metrics

                gts.append(gt_metrics(masks, im))
        return Evaluation(
            params=params,  # type: ignore[arg-type]  # Evaluation only reads params.to_dict()
            rewards=np.mean(vectors, axis=0).astype(np.float32),
            reward_names=self.reward_names,
            cost_s=time.perf_counter() - t0,
            n_masks=tuple(n_masks),
            per_image=tuple(vectors),
            gt=mean_metrics(gts) if gts else None,
            details={"rewards": details},
        )
