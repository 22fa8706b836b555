"""SamAutomaticMaskGenerator's 13 hyperparameters (plus samstar's tiling) and the one map between actions and them.

:class:`AmgParams` is a frozen, validated value of the 13 constructor arguments of
``segment_anything.SamAutomaticMaskGenerator`` (the model excepted), and of the two tiling options
samstar adds around it (``tile_shape``, ``halo``: see :mod:`samstar_env.engine.tiles`). :class:`ParamSpace` says which of
them are tuned and how ``[-1, 1]^d`` maps onto them. It is the ONLY place where actions become
parameters: the environment, every agent and the CLI decode through it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from samstar_env.errors import InputError

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
# samstar's own fields: not SamAutomaticMaskGenerator's, so never passed to it.
TILING_FIELDS = ("tile_shape", "halo")
MIN_TILE = 8


def _in(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi) or (isinstance(value, float) and math.isnan(value)):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise InputError(f"AmgParams.{name}={value!r} is out of range; expected a value in {lb}{lo}, {hi}{rb}")


def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"AmgParams.{name}={value!r} must be an integer")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InputError(f"AmgParams.{name}={value} is out of range; expected an integer {rng}")
    return value


@dataclass(frozen=True)
class AmgParams:
    """The 13 hyperparameters of ``SamAutomaticMaskGenerator``, with SAM's defaults, and samstar's tiling.

    Parameters
    ----------
    points_per_side : int or None
        Points sampled along one side of the image (grid of ``points_per_side**2`` prompts).
        ``None`` only together with ``point_grids``.
    points_per_batch : int
        Prompts decoded together. Not tuned: it changes speed and, through floating-point batch
        effects, the last bits of the logits.
    pred_iou_thresh : float in [0, 1]
        Keep masks whose predicted IoU is at least this.
    stability_score_thresh : float in [0, 1]
        Keep masks whose stability (IoU of the mask at threshold +- offset) is at least this.
    stability_score_offset : float > 0
        Logit offset used for the stability score.
    box_nms_thresh : float in [0, 1]
        IoU threshold of the box NMS within a crop.
    crop_n_layers : int in [0, 4]
        Extra layers of zoomed-in crops (layer i has 2**i x 2**i crops).
    crop_nms_thresh : float in [0, 1]
        IoU threshold of the box NMS across crops.
    crop_overlap_ratio : float in [0, 1)
        Overlap of neighbouring crops, as a fraction of the image side.
    crop_n_points_downscale_factor : int >= 1
        Points per side in layer i are ``points_per_side / factor**i``.
    point_grids : tuple or None
        Explicit normalized point grids per layer (not tuned).
    min_mask_region_area : int >= 0
        Remove holes and islands smaller than this many pixels (0 disables; needs OpenCV).
    output_mode : str
        ``binary_mask``, ``uncompressed_rle`` or ``coco_rle``.
    tile_shape : int >= 0
        samstar's, not AMG's: the side in pixels of the square tiles the image is cut into, each
        segmented by AMG on its own with ``halo`` pixels of context and stitched back
        (:mod:`samstar_env.engine.tiles`). 0 (the default) runs AMG on the whole image, as does a
        tile at least as large as the image.
    halo : int >= 0
        samstar's: context added on every side of a tile, in pixels; at most ``tile_shape``.

    Examples
    --------
    >>> p = AmgParams(points_per_side=16, pred_iou_thresh=0.7)
    >>> p.to_kwargs()["points_per_side"]
    16
    """

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: tuple[tuple[tuple[float, float], ...], ...] | None = None
    min_mask_region_area: int = 0
    output_mode: str = "binary_mask"
    tile_shape: int = 0
    halo: int = 0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if self.points_per_side is None:
            if self.point_grids is None:
                raise ValueError("AmgParams.points_per_side=None requires point_grids")
        else:
            set_("points_per_side", _int("points_per_side", self.points_per_side, 1, 1024))
        set_("points_per_batch", _int("points_per_batch", self.points_per_batch, 1))
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            v = float(getattr(self, name))
            _in(name, v, 0.0, 1.0)
            set_(name, v)
        off = float(self.stability_score_offset)
        _in("stability_score_offset", off, 0.0, 50.0, lo_open=True)
        set_("stability_score_offset", off)
        set_("crop_n_layers", _int("crop_n_layers", self.crop_n_layers, 0, 4))
        ratio = float(self.crop_overlap_ratio)
        _in("crop_overlap_ratio", ratio, 0.0, 1.0, hi_open=True)
        set_("crop_overlap_ratio", ratio)
        set_(
            "crop_n_points_downscale_factor",
            _int("crop_n_points_downscale_factor", self.crop_n_points_downscale_factor, 1, 64),
        )
        set_("min_mask_region_area", _int("min_mask_region_area", self.min_mask_region_area, 0))
        set_("tile_shape", _int("tile_shape", self.tile_shape, 0, 1 << 16))
        if 0 < self.tile_shape < MIN_TILE:
            raise InputError(f"AmgParams.tile_shape={self.tile_shape}; expected 0 (no tiles) or a side of at least {MIN_TILE} pixels")
        set_("halo", _int("halo", self.halo, 0, 1 << 16))
        if self.tile_shape and self.halo > self.tile_shape:  # "a tile smaller than its halo"
            raise InputError(
                f"AmgParams.halo={self.halo} is larger than tile_shape={self.tile_shape}; expected a halo of at "
                "most the tile's side (micro-sam's default: 512-px tiles, 128-px halo)"
            )
        if self.output_mode not in OUTPUT_MODES:
            raise InputError(f"AmgParams.output_mode={self.output_mode!r}; expected one of {OUTPUT_MODES}")
        if self.point_grids is not None:
            grids = tuple(tuple((float(x), float(y)) for x, y in np.asarray(g, float).reshape(-1, 2)) for g in self.point_grids)
            if len(grids) != self.crop_n_layers + 1:
                raise ValueError(
                    f"AmgParams.point_grids has {len(grids)} grids; expected crop_n_layers + 1 = {self.crop_n_layers + 1}"
                )
            set_("point_grids", grids)
        elif self.points_per_side is not None:
            # AMG's own constraint: each crop layer must keep at least one point per side.
            last = self.points_per_side // (self.crop_n_points_downscale_factor**self.crop_n_layers)
            if last < 1:
                raise ValueError(
                    f"AmgParams: points_per_side={self.points_per_side} with crop_n_points_downscale_factor="
                    f"{self.crop_n_points_downscale_factor} leaves no points in crop layer {self.crop_n_layers}"
                )

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SamAutomaticMaskGenerator(model, **kwargs)`` (the 13; not the tiling)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in TILING_FIELDS}
        if self.point_grids is not None:
            kw["point_grids"] = [np.asarray(g, dtype=np.float64) for g in self.point_grids]
        return kw

    def replace(self, **changes: Any) -> AmgParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def tiled(self) -> bool:
        """Whether the tiling fields ask for tiles (a tile as large as the image still runs untiled)."""
        return self.tile_shape > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the 13 fields of AMG, and of the tiling when it is set."""
        d = asdict(self)
        # Untiled parameters keep the 13-key form that earlier result files (and their hashes) use.
        if not self.tile_shape and not self.halo:
            for name in TILING_FIELDS:
                d.pop(name)
        if self.point_grids is not None:
            d["point_grids"] = [list(map(list, g)) for g in self.point_grids]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AmgParams:
        """Inverse of :meth:`to_dict`; unknown keys raise an error naming them.

        ``AmgParams.from_dict`` of a dict holding a SAM 2 field (``mask_threshold``, ``use_m2m``,
        ``multimask_output``) returns a :class:`Sam2AmgParams`.
        """
        if cls is AmgParams and set(data) & set(SAM2_FIELDS):
            cls = Sam2AmgParams  # a SAM 2 parameter file (its three fields of its own name it)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"AmgParams: unknown parameter(s) {unknown}; expected some of {sorted(known)}")
        d = dict(data)
        if d.get("point_grids") is not None:
            d["point_grids"] = tuple(tuple(tuple(p) for p in g) for g in d["point_grids"])
        return cls(**d)

    def to_json(self, path: str | None = None) -> str:
        """Serialize (and write to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, path: str) -> AmgParams:
        """Read parameters written by :meth:`to_json` (or a ``best_params.json`` with a ``params`` key)."""
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not a valid JSON parameter file ({exc})") from exc
        if isinstance(data, dict) and "params" in data and isinstance(data["params"], dict):
            data = data["params"]
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object of AMG parameters")
        return cls.from_dict(data)


# SAM2AutomaticMaskGenerator's arguments that SamAutomaticMaskGenerator lacks.
SAM2_FIELDS = ("mask_threshold", "use_m2m", "multimask_output")


@dataclass(frozen=True)
class Sam2AmgParams(AmgParams):
    """The 16 hyperparameters of ``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``, with SAM 2's defaults.

    SAM 1's 13 (:class:`AmgParams`, with SAM 2's default ``pred_iou_thresh`` of 0.8) and three of
    SAM 2's own. A subclass, so everything that takes ``AmgParams`` takes these; the engine runs a SAM 2
    model with either (plain ``AmgParams`` leave the three at their defaults, as
    ``SAM2AutomaticMaskGenerator(model, **AmgParams(...).to_kwargs())`` would).

    Parameters
    ----------
    mask_threshold : float in [-20, 20]
        Logit at which masks are binarized (and around which stability is measured). 0 in SAM 1,
        where it is the model's and not tunable.
    use_m2m : bool
        Refine every proposal once more, feeding the decoder its own low-resolution mask as a prompt
        ("mask to mask"); the refined mask and predicted IoU replace the first ones.
    multimask_output : bool
        Three masks per point (True) or the decoder's single mask (False; SAM 2 falls back to the
        most stable of the three when the single one is unstable).
    (others) :
        As :class:`AmgParams`. ``min_mask_region_area`` acts differently in SAM 2: it fills holes and
        removes islands up to that area in the 256² low-resolution logits, and only where sam2's CUDA
        extension is built; without it SAM 2's generator (and the engine) ignores it.

    Examples
    --------
    >>> p = Sam2AmgParams(points_per_side=16, mask_threshold=-0.5)
    >>> p.pred_iou_thresh, p.to_kwargs()["use_m2m"]
    (0.8, False)
    >>> type(AmgParams.from_dict(p.to_dict())).__name__
    'Sam2AmgParams'
    """

    pred_iou_thresh: float = 0.8
    mask_threshold: float = 0.0
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        thr = float(self.mask_threshold)
        _in("mask_threshold", thr, -20.0, 20.0)
        object.__setattr__(self, "mask_threshold", thr)
        for name in ("use_m2m", "multimask_output"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"Sam2AmgParams.{name}={value!r} must be a bool (true or false)")
            object.__setattr__(self, name, bool(value))

    @classmethod
    def from_sam1(cls, params: AmgParams) -> Sam2AmgParams:
        """``params`` as SAM 2's generator reads them: the same 13 values, SAM 2's three at their defaults.

        >>> Sam2AmgParams.from_sam1(AmgParams(pred_iou_thresh=0.5)).pred_iou_thresh
        0.5
        """
        if isinstance(params, Sam2AmgParams):
            return params
        return cls(**{f.name: getattr(params, f.name) for f in fields(AmgParams)})


Kind = Literal["float", "int", "log", "grid"]


@dataclass(frozen=True)
class Dimension:
    """One tuned parameter: how a coordinate in [-1, 1] maps onto it.

    Parameters
    ----------
    name : str
        An :class:`AmgParams` field.
    kind : {"float", "int", "log", "grid"}
        ``float``: linear in [low, high]; ``int``: linear then rounded; ``log``: linear in
        log(value); ``grid``: [-1, 1] cut into ``len(choices)`` equal bins.
    low, high : float
        Bounds (ignored for ``grid``).
    choices : tuple
        The grid values, in increasing order (``grid`` only).
    """

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in {f.name for f in fields(Sam2AmgParams)}:
            raise InputError(f"Dimension {self.name!r} is not an AmgParams (or Sam2AmgParams) field")
        if self.kind not in ("float", "int", "log", "grid"):
            raise InputError(f"Dimension {self.name!r}: kind must be float, int, log or grid, got {self.kind!r}")
        if self.kind == "grid":
            if len(self.choices) < 1:
                raise InputError(f"Dimension {self.name!r}: a grid needs at least one choice")
        elif not self.low < self.high:
            raise InputError(f"Dimension {self.name!r}: need low < high, got [{self.low}, {self.high}]")
        if self.kind == "log" and self.low <= 0:
            raise InputError(f"Dimension {self.name!r}: a log scale needs low > 0, got {self.low}")

    def decode(self, x: float) -> Any:
        """Map ``x`` in [-1, 1] (clipped) to a parameter value."""
        u = (min(max(float(x), -1.0), 1.0) + 1.0) / 2.0
        if self.kind == "grid":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.kind == "log":
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        v = self.low + u * (self.high - self.low)
        return int(round(v)) if self.kind == "int" else float(v)

    def encode(self, value: Any) -> float:
        """Map a value to [-1, 1]; a grid value maps to the centre of its bin."""
        if self.kind == "grid":
            try:
                i = self.choices.index(value)
            except ValueError:
                i = int(np.argmin([abs(float(c) - float(value)) for c in self.choices]))
            u = (i + 0.5) / len(self.choices)
        elif self.kind == "log":
            u = (math.log(float(value)) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            u = (float(value) - self.low) / (self.high - self.low)
        return float(min(max(2.0 * u - 1.0, -1.0), 1.0))

    @property
    def is_discrete(self) -> bool:
        """True for ``int`` and ``grid`` dimensions."""
        return self.kind in ("int", "grid")

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (for search-space listings and result files)."""
        if self.kind == "grid":
            return {"name": self.name, "kind": "grid", "choices": list(self.choices)}
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high}


# The default search space. Expensive stages (a new image embedding or a new decode) depend on
# points_per_side, crop_n_layers, crop_overlap_ratio and crop_n_points_downscale_factor, so those sit on
# small grids; stability_score_offset is a grid too so the engine can cache stability exactly for
# each offset. Everything else is a cheap filter replayed from the cache.
DEFAULT_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("points_per_side", "grid", choices=(8, 12, 16, 24, 32, 48, 64)),
    Dimension("pred_iou_thresh", "float", 0.0, 0.98),
    Dimension("stability_score_thresh", "float", 0.5, 0.98),
    Dimension("stability_score_offset", "grid", choices=(0.5, 1.0, 1.5, 2.0)),
    Dimension("box_nms_thresh", "float", 0.3, 0.95),
    Dimension("crop_n_layers", "grid", choices=(0, 1, 2)),
    Dimension("crop_nms_thresh", "float", 0.3, 0.95),
    Dimension("crop_overlap_ratio", "grid", choices=(0.2, 512 / 1500, 0.5)),
    Dimension("crop_n_points_downscale_factor", "grid", choices=(1, 2, 4)),
    Dimension("min_mask_region_area", "grid", choices=(0, 5, 10, 25, 50, 100, 200)),
)


# The environment's default space: the same dimensions, with the decode-deciding ones cut to what
# `samstar cache warm` decodes ahead in a few minutes on 2 CPU cores (one 512² image, samstar-tiny:
# 7 point grids on the full image and 9 on each of the 4 layer-1 crops, about 43,000 prompts).
# Crop layer 2 (16 more crops) and other overlaps would multiply that by 4 and 3; they stay in
# DEFAULT_DIMENSIONS (`samstar tune --space all`), where a cold decode is acceptable.
ENV_DIMENSIONS: tuple[Dimension, ...] = tuple(
    Dimension("crop_n_layers", "grid", choices=(0, 1)) if d.name == "crop_n_layers"
    else Dimension("crop_n_points_downscale_factor", "grid", choices=(1, 2)) if d.name == "crop_n_points_downscale_factor"
    else d
    for d in DEFAULT_DIMENSIONS
    if d.name != "crop_overlap_ratio"
)


# The amortized policy's default space (`samstar train-policy`): the threshold and filter dimensions,
# which replay from the cache, and the point grid up to 24 per side without crops, so that warming a
# training pool of 64 + 16 images of 512² costs about 6 s per image on 2 CPU cores (all four grids),
# not the env space's 3 minutes. A policy is trained on thousands of images' worth of steps; every
# step must be a replay.
POLICY_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("points_per_side", "grid", choices=(8, 12, 16, 24)),
    *(d for d in DEFAULT_DIMENSIONS
      if d.name in ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "min_mask_region_area")),
)


# Tiling as tunable dimensions (not in the default spaces: a new tile or halo is a new decode of every
# tile). 0 keeps the image whole, so a tuner can also choose not to tile; a tile at least as large
# as the image is the untiled image too. Opt in by name: ``ParamSpace.subset([..., "tile_shape", "halo"])``.
TILING_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("tile_shape", "grid", choices=(0, 128, 256, 512, 768)),
    Dimension("halo", "grid", choices=(32, 64, 128)),
)


# SAM 2's own dimensions, added to a space by :meth:`ParamSpace.for_backbone` ("sam2"). The mask
# threshold is a grid so that the engine binarizes each decode at every grid value in one pass over
# the logits; use_m2m and multimask_output each select another decode of the same grid.
SAM2_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("mask_threshold", "grid", choices=(-1.0, -0.5, 0.0, 0.5, 1.0)),
    Dimension("use_m2m", "grid", choices=(False, True)),
    Dimension("multimask_output", "grid", choices=(False, True)),
)
BACKBONES = ("sam1", "sam2")


@dataclass(frozen=True)
class ParamSpace:
    """Which AMG parameters are tuned and how ``[-1, 1]^d`` maps onto them.

    Parameters
    ----------
    dimensions : tuple of Dimension
        The tuned parameters, in action order.
    base : AmgParams
        Values of the parameters that are not tuned.

    Examples
    --------
    >>> space = ParamSpace.default()
    >>> space.dim
    10
    >>> p = space.decode(np.zeros(space.dim))
    >>> p.crop_n_layers
    1
    """

    dimensions: tuple[Dimension, ...] = DEFAULT_DIMENSIONS
    base: AmgParams = field(default_factory=AmgParams)

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise InputError(f"ParamSpace: duplicate dimensions in {names}")
        for bad in ("points_per_batch", "point_grids", "output_mode"):
            if bad in names:
                raise InputError(f"ParamSpace: {bad} is not a tunable parameter")
        sam2_only = sorted(set(names) & set(SAM2_FIELDS))
        if sam2_only and not isinstance(self.base, Sam2AmgParams):
            raise InputError(f"ParamSpace: {sam2_only} are SAM 2's parameters; the base must be Sam2AmgParams "
                             "(ParamSpace.for_backbone('sam2'))")

    @classmethod
    def default(cls, **base_overrides: Any) -> ParamSpace:
        """The documented default space (see ``DEFAULT_DIMENSIONS``)."""
        return cls(dimensions=DEFAULT_DIMENSIONS, base=AmgParams(**base_overrides))

    @classmethod
    def env_default(cls, **base_overrides: Any) -> ParamSpace:
        """The environments' default space (``ENV_DIMENSIONS``): every action a warm-cache replay."""
        return cls(dimensions=ENV_DIMENSIONS, base=AmgParams(**base_overrides))

    @classmethod
    def policy_default(cls, **base_overrides: Any) -> ParamSpace:
        """The amortized policy's default space (``POLICY_DIMENSIONS``; no crops): every action a
        replay once the pool is warm.

        Examples
        --------
        >>> ParamSpace.policy_default().names[:2], ParamSpace.policy_default().base.crop_n_layers
        (('points_per_side', 'pred_iou_thresh'), 0)
        """
        return cls(dimensions=POLICY_DIMENSIONS, base=AmgParams(**base_overrides))

    @classmethod
    def subset(cls, names: Sequence[str], *, base: AmgParams | None = None) -> ParamSpace:
        """The default space restricted to ``names`` (others fixed at ``base``); ``tile_shape`` and
        ``halo`` (:data:`TILING_DIMENSIONS`) may be named too."""
        by_name = {d.name: d for d in (*DEFAULT_DIMENSIONS, *TILING_DIMENSIONS, *SAM2_DIMENSIONS)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InputError(f"ParamSpace.subset: unknown dimension(s) {missing}; expected some of {list(by_name)}")
        base = base or AmgParams()
        if set(names) & set(SAM2_FIELDS):
            base = Sam2AmgParams.from_sam1(base)
        return cls(dimensions=tuple(by_name[n] for n in names), base=base)

    @property
    def backbone(self) -> str:
        """``"sam2"`` when the space holds :class:`Sam2AmgParams`, else ``"sam1"``."""
        return "sam2" if isinstance(self.base, Sam2AmgParams) else "sam1"

    def for_backbone(self, backbone: str) -> ParamSpace:
        """This space for a backbone: ``"sam2"`` adds SAM 2's own dimensions (:data:`SAM2_DIMENSIONS`)
        and makes the base :class:`Sam2AmgParams` (same values); ``"sam1"`` returns a SAM 1 space as is.

        Examples
        --------
        >>> s = ParamSpace.env_default().for_backbone("sam2")
        >>> s.backbone, s.names[-3:]
        ('sam2', ('mask_threshold', 'use_m2m', 'multimask_output'))
        """
        if backbone not in BACKBONES:
            raise InputError(f"backbone={backbone!r}; expected one of {BACKBONES}")
        if backbone == "sam1":
            if self.backbone == "sam2":
                raise InputError("a SAM 2 space (Sam2AmgParams) cannot run on a SAM 1 backbone")
            return self
        extra = tuple(d for d in SAM2_DIMENSIONS if d.name not in self.names)
        return ParamSpace(dimensions=(*self.dimensions, *extra), base=Sam2AmgParams.from_sam1(self.base))

    def with_tiling(self, tile_shape: int, halo: int) -> ParamSpace:
        """This space with its fixed parameters tiled (``tile_shape`` 0: untiled); tuned tiling
        dimensions, if any, still decide per action."""
        return ParamSpace(dimensions=self.dimensions, base=self.base.replace(tile_shape=int(tile_shape), halo=int(halo)))

    @property
    def dim(self) -> int:
        """Number of tuned parameters (the action dimension)."""
        return len(self.dimensions)

    @property
    def names(self) -> tuple[str, ...]:
        """Tuned parameter names, in action order."""
        return tuple(d.name for d in self.dimensions)

    def decode(self, x: Sequence[float] | np.ndarray) -> AmgParams:
        """Map an action in ``[-1, 1]^dim`` (values outside are clipped) to validated parameters.

        A combination that AMG cannot run (e.g. too few points for the crop layers) is repaired by
        lowering ``crop_n_points_downscale_factor``, so that every action is feasible.
        """
        arr = np.asarray(x, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.dim:
            raise ValueError(f"ParamSpace.decode: action has {arr.shape[0]} values; expected {self.dim} ({', '.join(self.names)})")
        if not np.isfinite(arr).all():
            raise ValueError(f"ParamSpace.decode: action contains NaN or Inf: {arr.tolist()}")
        return self.with_values({d.name: d.decode(v) for d, v in zip(self.dimensions, arr, strict=True)})

    def with_values(self, values: Mapping[str, Any]) -> AmgParams:
        """``base`` with ``values`` set, repaired as :meth:`decode` repairs (so every combination is feasible)."""
        cls = type(self.base)
        merged = {**{f.name: getattr(self.base, f.name) for f in fields(cls)}, **values}
        pps, layers = merged["points_per_side"], merged["crop_n_layers"]
        while pps is not None and merged["crop_n_points_downscale_factor"] > 1 and pps // (merged["crop_n_points_downscale_factor"] ** layers) < 1:
            merged["crop_n_points_downscale_factor"] //= 2
        if merged["tile_shape"] and merged["halo"] > merged["tile_shape"]:
            merged["halo"] = merged["tile_shape"]  # a tuned halo never exceeds a tuned tile
        return cls(**merged)

    def encode(self, params: AmgParams) -> np.ndarray:
        """Map parameters to ``[-1, 1]^dim`` (float32); ``decode(encode(p))`` returns ``p``'s tuned values
        up to the resolution of the integer and grid dimensions."""
        return np.array([d.encode(getattr(params, d.name)) for d in self.dimensions], dtype=np.float32)

    def sample(self, rng: np.random.Generator) -> AmgParams:
        """Parameters drawn uniformly in action space."""
        return self.decode(rng.uniform(-1.0, 1.0, size=self.dim))

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready list of the dimensions."""
        return [d.describe() for d in self.dimensions]
