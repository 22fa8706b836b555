"""Segment micrographs with chosen AMG parameters: labels, overlays, particle tables, a summary.

``samstar_env.segment(images, ...)`` is the Python form of ``samstar segment IMAGES... -o OUT``.

Outputs (when ``out_dir`` is given)
-----------------------------------
Per image ``<stem>``:

- ``<stem>_labels.tif``: 16-bit instance label image (0 = background, mask ``i`` -> ``i + 1``,
  overlaps by :meth:`MaskSet.to_label_image`'s rule), ImageJ TIFF with the pixel size when known;
- ``<stem>_overlay.png``: the grey image with each particle's outline in its own colour (every mask
  outlined on its own, so particles hidden under others in the label image are still visible);
- ``<stem>_particles.csv``: the particle table (:mod:`samstar_env.particles`), first line a comment
  with the calibration;
- ``<stem>_rois.zip``: an ImageJ ROI set for Fiji's ROI Manager, one polygon per non-empty mask
  named by its label in the TIFF (``0001`` = label 1), traced on the mask's crop in ImageJ's
  pixel-corner coordinates so that the pixels Fiji puts in ROI ``k`` are mask ``k - 1``'s own (its
  largest part, holes filled; :mod:`samstar_env.imagej_rois`); ``--no-rois`` skips it.

Every output is drawn mask by mask from the MaskSet's crops (:meth:`MaskSet.window`,
:meth:`MaskSet.to_label_image`), never from its (N, H, W) array: a 4096² frame with 1,000 masks
would need 16 GB for that.

Large images are cut into tiles segmented at native resolution and stitched
(:mod:`samstar_env.engine.tiles`): automatically above twice the model's input side, or as
``tile_shape`` / ``halo`` (``--tile-shape``, ``--halo``; ``--tile-shape 0`` never tiles) or the
parameters say. Each image's summary entry records the tiling used.

For the whole run: ``summary.json`` (parameters, model, per-image and pooled statistics, column
definitions), ``summary.csv`` (one row per image plus an ``ALL`` row) and ``size_histogram.png``
(pooled equivalent diameters; in nm when every image is calibrated, else in px).

Pixel size
----------
An explicit ``pixel_size_nm`` (``--pixel-size-nm``) wins over the file's calibration, else the file's
metadata, else pixels; the table header says which (``source=option|metadata|none``). This is the
same rule as :func:`samstar_env.data.loaders.load_image` (an explicit value is the only way to correct
a wrong or stale calibration; the loader warns when the two disagree). Note that issue 9 literally
reads "file metadata, else the option": we chose one rule for the whole package instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.engine.maskset import MaskSet
from samstar_env.engine.tiles import add_tiling_arguments, choose_tiling, model_input_size
from samstar_env.errors import InputError, MissingFileError
from samstar_env.models.registry import recommended_params
from samstar_env.params import AmgParams, Sam2AmgParams
from samstar_env.particles import (
    ParticleSummary,
    ParticleTable,
    columns_json,
    measure_particles,
    save_size_histogram,
    summarize_diameters,
)
from samstar_env.type_aliases import Segmenter

ImageInput = str | Path | Micrograph | np.ndarray


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """Everything one image produced.

    Parameters
    ----------
    micrograph : Micrograph
        The image as segmented (its ``pixel_size_nm`` is the calibration used).
    masks : MaskSet
        AMG masks in AMG order.
    labels : ndarray of uint16, shape (H, W)
        Instance label image (mask ``i`` -> ``i + 1``).
    table : ParticleTable
        One row per non-empty mask.
    pixel_size_source : str
        ``option``, ``metadata`` or ``none``.
    timings_s : mapping
        ``segment`` (the AMG call), ``measure`` (the particle table) and ``write`` seconds.
    files : mapping
        Output kind (``labels``, ``overlay``, ``table``, ``rois``) -> path; empty without ``out_dir``.
    params : AmgParams, optional
        The parameters this image was segmented with (its tiling included).
    tiling : str
        How it was tiled, in words ("no tiles", "tiles of 128 px with a halo of 32 px, automatic...").
    """

    micrograph: Micrograph
    masks: MaskSet
    labels: np.ndarray
    table: ParticleTable
    pixel_size_source: str
    timings_s: Mapping[str, float] = field(default_factory=dict)
    files: Mapping[str, Path] = field(default_factory=dict)
    params: AmgParams | None = None
    tiling: str = "no tiles"

    @property
    def name(self) -> str:
        """The micrograph's name (file stem for files)."""
        return self.micrograph.name

    @property
    def summary(self) -> ParticleSummary:
        """Count and diameter statistics of :attr:`table`."""
        return self.table.summary()


# -- inputs -------------------------------------------------------------------------------------
def resolve_params(params: AmgParams | str | Path | Mapping[str, Any] | None) -> AmgParams:
    """``None`` -> SAM's defaults; a path -> ``AmgParams.from_json`` (accepts ``best_params.json``)."""
    if params is None:
        return AmgParams()
    if isinstance(params, AmgParams):
        return params
    if isinstance(params, (str, Path)):
        if not Path(params).is_file():
            raise MissingFileError(f"parameter file {params} not found")
        return AmgParams.from_json(str(params))
    if isinstance(params, Mapping):
        return AmgParams.from_dict(params["params"] if "params" in params else params)
    raise TypeError(f"params must be AmgParams, a JSON path or a mapping, got {type(params).__name__}")


def choose_params(params: AmgParams | str | Path | Mapping[str, Any] | None, *, model: Any,
                  backbone: str = "sam1") -> tuple[AmgParams, str]:
    """The parameters a run uses and where they come from (for the log and the summary).

    Given parameters win; with none, a registered model's recommended operating point (the
    registry's, e.g. samstar-tiny's label-free tuned point), else SAM's defaults (what SAM's own
    checkpoints are meant to be used with; SAM 2's for ``backbone="sam2"``).

    Examples
    --------
    >>> choose_params(None, model="/my/sam_vit_b.pth")[1]
    "SAM's defaults"
    >>> choose_params({"pred_iou_thresh": 0.5}, model="samstar-tiny")[1]
    'given parameters'
    """
    if params is not None:
        return resolve_params(params), f"parameter file {params}" if isinstance(params, (str, Path)) else "given parameters"
    return recommended_params(model if isinstance(model, (str, Path)) else None, backbone=backbone)


class DirectAmg:
    """``SamAutomaticMaskGenerator`` itself, one call per image, returned as a :class:`MaskSet`.

    The reference segmenter (tests and benchmarks compare with it). ``segment`` and ``stream`` use a
    :class:`~samstar_env.engine.MaskEngine` instead (:func:`resolve_engine`): its cold path is faster
    than AMG (0.7-0.85x on 2 CPU cores, ``benchmarks/scripts/bench_engine.py``) and its memory is bounded
    by a sub-batch of logits rather than by a point batch of full-size logits, which is what a
    4k camera frame needs; it gives the same masks.

    Parameters
    ----------
    model : segment_anything.modeling.Sam
        The model.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def generate(self, image: Any, params: AmgParams | None = None) -> MaskSet:
        """The masks of ``SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(image)``
        (``SAM2AutomaticMaskGenerator`` for a SAM 2 model)."""
        from segment_anything import SamAutomaticMaskGenerator

        from samstar_env.engine.image_input import to_sam_image
        from samstar_env.models.sam2_models import is_sam2_model, sam2_generator

        sam2 = is_sam2_model(self.model)
        p = params or (Sam2AmgParams() if sam2 else AmgParams())
        p = (Sam2AmgParams.from_sam1(p) if sam2 else p).replace(output_mode="binary_mask")
        rgb = to_sam_image(image)
        if p.tiled and p.tile_shape < max(rgb.shape[:2]):
            raise InputError(f"DirectAmg runs SamAutomaticMaskGenerator itself, which has no tiles (tile_shape="
                             f"{p.tile_shape} on a {rgb.shape[0]} x {rgb.shape[1]} image); use a MaskEngine for tiles")
        if sam2:
            records = sam2_generator(self.model, **p.to_kwargs()).generate(rgb)
        else:
            records = SamAutomaticMaskGenerator(self.model, **p.to_kwargs()).generate(rgb)
        return maskset_from_records(records, (int(rgb.shape[0]), int(rgb.shape[1])))


def maskset_from_records(records: Sequence[Mapping[str, Any]], image_shape: tuple[int, int]) -> MaskSet:
    """Inverse of :meth:`MaskSet.to_amg_records` (``binary_mask`` records), order kept."""
    if not records:
        return MaskSet.empty(image_shape)
    return MaskSet.from_dense(
        np.stack([np.asarray(r["segmentation"], bool) for r in records]),
        boxes_xywh=np.array([r["bbox"] for r in records], np.float64),
        predicted_iou=np.array([r["predicted_iou"] for r in records], np.float32),
        stability_score=np.array([r["stability_score"] for r in records], np.float32),
        point_coords=np.array([r["point_coords"][0] for r in records], np.float64),
        crop_boxes_xywh=np.array([r["crop_box"] for r in records], np.float64),
        image_shape=image_shape,
    )


_MODELS: dict[tuple[str, str], Any] = {}
# Room for the proposals of a few recent 512² frames (a stream's re-tuning burst replays them).
FRAME_CACHE_BYTES = 512 << 20


def resolve_engine(model: Any, *, device: str = "auto") -> Segmenter[MaskSet]:
    """The segmenter for a name, a checkpoint path, a ``Sam`` or an engine.

    A ``MaskEngine`` (or anything with its ``generate(image, params)``) is used as given; a ``Sam``, a
    name or a path gets a new :class:`~samstar_env.engine.MaskEngine` without a disk cache (every
    frame is new; writing each one's proposals to disk would only fill it) and a small memory bound
    that still holds a few recent frames for a stream's re-tuning bursts. Names and paths are loaded
    once per process.
    """
    from samstar_env.engine import MaskEngine

    if hasattr(model, "generate") and not hasattr(model, "image_encoder"):
        return model
    if hasattr(model, "image_encoder") and (hasattr(model, "mask_decoder") or hasattr(model, "sam_mask_decoder")):
        return MaskEngine(model, cache_bytes=FRAME_CACHE_BYTES)
    if isinstance(model, (str, Path)):
        from samstar_env.models import load_sam

        key = (str(model), device)
        if key not in _MODELS:
            _MODELS[key] = load_sam(model, device=device)
        return MaskEngine(_MODELS[key], cache_bytes=FRAME_CACHE_BYTES)
    raise TypeError(f"model must be a registered name, a checkpoint path, a SAM model or a MaskEngine, got {type(model).__name__}")


def to_micrograph(image: ImageInput, *, pixel_size_nm: float | None = None, name: str | None = None) -> tuple[Micrograph, str]:
    """Load or wrap one input; returns the micrograph and where its pixel size came from."""
    if isinstance(image, (str, Path)):
        from samstar_env.data.loaders import load_image

        m = load_image(Path(image), pixel_size_nm=pixel_size_nm, name=name)
    elif isinstance(image, Micrograph):
        m = image
        if pixel_size_nm is not None:
            from dataclasses import replace

            m = replace(image, pixel_size_nm=float(pixel_size_nm))
    elif isinstance(image, np.ndarray):
        from samstar_env.data.normalize import normalize_image

        m = Micrograph(image=normalize_image(image, what=name or "image"), name=name or "image", pixel_size_nm=pixel_size_nm, original=image)
    else:
        raise TypeError(f"images must be paths, Micrographs or arrays, got {type(image).__name__}")
    if pixel_size_nm is not None:
        source = "option"
    elif m.pixel_size_nm is not None:
        source = "metadata"
    else:
        source = "none"
    return m, source


# -- outputs ------------------------------------------------------------------------------------
def label_image_u16(masks: MaskSet) -> np.ndarray:
    """:meth:`MaskSet.to_label_image` as uint16 (ImageJ's integer label format)."""
    if len(masks) > np.iinfo(np.uint16).max:
        raise ValueError(f"{len(masks)} masks do not fit a 16-bit label image (max 65535)")
    return masks.to_label_image().astype(np.uint16)


def overlay_rgb(image: np.ndarray, masks: MaskSet, *, cmap: str = "tab20") -> np.ndarray:
    """Grey image as RGB uint8 with each mask's inner outline in its own colour."""
    from matplotlib import colormaps
    from skimage.segmentation import find_boundaries

    grey = np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    colours = colormaps[cmap]
    h, w = grey.shape
    for i in range(len(masks)):
        box = masks.tight_box(i)
        if box is None:
            continue
        # Outline on the mask's box (+1 px) only, read from its crop: find_boundaries over the
        # whole frame per mask would cost O(N * H * W), and so would the dense mask stack.
        r0, c0, r1, c1 = max(box[0] - 1, 0), max(box[1] - 1, 0), min(box[2] + 1, h), min(box[3] + 1, w)
        edge = find_boundaries(masks.window(i, r0, c0, r1, c1), mode="inner")
        colour = (np.asarray(colours(i % colours.N)[:3]) * 255).astype(np.uint8)
        rgb[r0:r1, c0:c1][edge] = colour
    return rgb


def write_outputs(result_parts: tuple[Micrograph, MaskSet, np.ndarray, ParticleTable], out_dir: Path, stem: str, *, overlay: bool = True, labels: bool = True, table: bool = True, rois: bool = True) -> dict[str, Path]:
    """Write the per-image files; returns kind -> path."""
    from matplotlib.image import imsave

    from samstar_env.data.loaders import save_tiff_with_pixel_size

    micrograph, masks, lab, tab = result_parts
    files: dict[str, Path] = {}
    if labels:
        files["labels"] = out_dir / f"{stem}_labels.tif"
        save_tiff_with_pixel_size(files["labels"], lab, micrograph.pixel_size_nm)
    if overlay:
        files["overlay"] = out_dir / f"{stem}_overlay.png"
        imsave(files["overlay"], overlay_rgb(micrograph.image, masks))
    if table:
        files["table"] = tab.to_csv(out_dir / f"{stem}_particles.csv")
    if rois:
        from samstar_env.imagej_rois import write_imagej_rois

        files["rois"] = write_imagej_rois(masks, out_dir / f"{stem}_rois.zip")
    return files


def _unique_stems(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in n) or "image"
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def segment_one(
    micrograph: Micrograph,
    engine: Segmenter[MaskSet],
    params: AmgParams,
    *,
    pixel_size_source: str,
    out_dir: Path | None = None,
    stem: str | None = None,
    overlay: bool = True,
    rois: bool = True,
    tiling: str = "no tiles",
) -> SegmentationResult:
    """One AMG call (tiled as ``params`` say), the particle table and (optionally) the files; timings kept apart."""
    t0 = time.perf_counter()
    masks = engine.generate(micrograph, params)
    t1 = time.perf_counter()
    lab = label_image_u16(masks)
    tab = measure_particles(masks, micrograph.image, pixel_size_nm=micrograph.pixel_size_nm, pixel_size_source=pixel_size_source)
    t2 = time.perf_counter()
    files: dict[str, Path] = {}
    if out_dir is not None:
        files = write_outputs((micrograph, masks, lab, tab), out_dir, stem or micrograph.name, overlay=overlay, rois=rois)
    t3 = time.perf_counter()
    return SegmentationResult(
        micrograph=micrograph,
        masks=masks,
        labels=lab,
        table=tab,
        pixel_size_source=pixel_size_source,
        timings_s={"segment": t1 - t0, "measure": t2 - t1, "write": t3 - t2},
        files=files,
        params=params,
        tiling=tiling,
    )


def pooled_summary(results: Sequence[SegmentationResult]) -> ParticleSummary:
    """Statistics over all particles: nm when every image is calibrated, else px."""
    in_nm = bool(results) and all(r.table.pixel_size_nm is not None for r in results)
    col = "equivalent_diameter_nm" if in_nm else "equivalent_diameter_px"
    d = np.concatenate([r.table[col] for r in results]) if results else np.zeros(0)
    sizes = {r.table.pixel_size_nm for r in results}
    sources = {r.pixel_size_source for r in results}
    return summarize_diameters(
        d,
        unit="nm" if in_nm else "px",
        pixel_size_nm=next(iter(sizes)) if len(sizes) == 1 else None,
        pixel_size_source=next(iter(sources)) if len(sources) == 1 else "none",
    )


def write_summary(
    results: Sequence[SegmentationResult], out_dir: Path, *, params: AmgParams, model: str, params_source: str = "given parameters"
) -> dict[str, Path]:
    """``summary.json``, ``summary.csv`` and ``size_histogram.png`` for a run."""
    import csv

    pooled = pooled_summary(results)
    col = "equivalent_diameter_nm" if pooled.unit == "nm" else "equivalent_diameter_px"
    d = np.concatenate([r.table[col] for r in results]) if results else np.zeros(0)
    hist = save_size_histogram(d, out_dir / "size_histogram.png", unit=pooled.unit, title=f"{pooled.count} particles, {len(results)} image(s)")
    doc = {
        "model": model,
        "params": params.to_dict(),
        "params_source": params_source,
        "images": [
            {
                "name": r.name,
                "source": r.micrograph.metadata.get("source"),
                **r.summary.to_dict(),
                "n_masks": len(r.masks),
                **({"params": r.params.to_dict()} if r.params is not None and r.params != params else {}),
                "tiling": r.tiling,
                **({"tile_shape": r.params.tile_shape, "halo": r.params.halo} if r.params is not None else {}),
                "timings_s": dict(r.timings_s),
                "files": {k: str(v.name) for k, v in r.files.items()},
            }
            for r in results
        ],
        "all": pooled.to_dict(),
        "columns": json.loads(columns_json()),
    }
    js = out_dir / "summary.json"
    js.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    sc = out_dir / "summary.csv"
    with open(sc, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "count", "mean_diameter", "median_diameter", "std_diameter", "unit", "pixel_size_nm", "pixel_size_source", "segment_s"])
        rows = [(r.name, r.summary, r.timings_s.get("segment", math.nan)) for r in results]
        rows.append(("ALL", pooled, sum(r.timings_s.get("segment", 0.0) for r in results)))
        for name, s, sec in rows:
            w.writerow([name, s.count, _num(s.mean_diameter), _num(s.median_diameter), _num(s.std_diameter), s.unit, "" if s.pixel_size_nm is None else s.pixel_size_nm, s.pixel_size_source, f"{sec:.4f}"])
    return {"summary_json": js, "summary_csv": sc, "histogram": hist}


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else repr(float(v))


# -- public API ---------------------------------------------------------------------------------
def segment(
    images: ImageInput | Iterable[ImageInput],
    *,
    params: AmgParams | str | Path | Mapping[str, Any] | None = None,
    model: Any = None,
    pixel_size_nm: float | None = None,
    out_dir: str | Path | None = None,
    overlay: bool = True,
    device: str = "auto",
    tile_shape: int | None = None,
    halo: int | None = None,
    rois: bool = True,
    say: Any = None,
    policy: str | Path | Any = None,
) -> list[SegmentationResult]:
    """Segment micrographs with fixed AMG parameters and measure their particles.

    Parameters
    ----------
    images : path, Micrograph, ndarray, or an iterable of them
        Image files (png, jpg, tif, EM formats with the ``em`` extra), loaded with
        :func:`samstar_env.data.loaders.load_image`, or in-memory images.
    params : AmgParams, path or mapping, optional
        The configuration (e.g. ``best_params.json`` from ``samstar tune``); by default the model's
        recommended operating point (samstar-tiny's from the registry), else SAM's defaults (see
        :func:`choose_params`; the summary records which).
    model : str, Path, Sam or MaskEngine, optional
        ``"samstar-tiny"``, a checkpoint path, a ``segment_anything`` ``Sam`` or an engine (default:
        the policy's model with ``policy``, else samstar-tiny).
    pixel_size_nm : float, optional
        Calibration; when given it overrides the files' own (see the module docstring).
    out_dir : str or Path, optional
        Where to write the per-image files and the run summary; nothing is written without it.
    overlay : bool
        Also write the overlay PNGs.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (for names and paths).
    tile_shape, halo : int, optional
        Tiles (:func:`~samstar_env.engine.tiles.choose_tiling`): 0 never tiles; None follows the
        parameters, else tiles images larger than twice the model's input automatically.
    rois : bool
        Also write the ImageJ ROI sets.
    say : callable, optional
        Called with the parameters' source (without a policy) and a line per image that is tiled (the
        CLI prints them).
    policy : path or AmortizedPolicy, optional
        A trained amortized policy (``samstar train-policy``'s ``policy.zip`` or its folder): it
        proposes the parameters of each image from that image, in one forward pass, instead of
        one fixed ``params`` (the two exclude each other). Each result's ``params`` and the summary
        record what it chose per image. ``model`` defaults to the policy's own.

    Returns
    -------
    list of SegmentationResult
        In input order.

    Examples
    --------
    Skipped when the docs are tested: it needs the two images and a parameter file on disk, and
    loads a model (``tests/test_segment.py`` runs the same call on generated files).

    >>> res = samstar_env.segment(["a.tif", "b.tif"], params="best_params.json", out_dir="out")  # doctest: +SKIP
    >>> res[0].table["equivalent_diameter_nm"]  # doctest: +SKIP
    """
    if isinstance(images, (str, Path, Micrograph, np.ndarray)):
        images = [images]
    items = list(images)
    if not items:
        raise InputError("segment: no images given")
    pol = None
    if policy is not None:
        from samstar_env.policy.policy_file import AmortizedPolicy, load_policy

        if params is not None:
            raise InputError("segment: give either params or a policy, not both (the policy chooses the parameters per image)")
        pol = policy if isinstance(policy, AmortizedPolicy) else load_policy(policy)
        if model is None:
            if pol.info.model is None:
                raise InputError(f"segment: {pol.path} was trained on an in-memory model; pass the model (--model)")
            model = pol.info.model
        amg, source = pol.space.base, f"policy {pol.path} (per image)"
    else:
        model = DEFAULT_MODEL if model is None else model
    engine = resolve_engine(model, device=device)
    if pol is None:
        amg, source = choose_params(params, model=model, backbone=getattr(engine, "backbone", "sam1"))
        if say is not None:
            say(f"parameters: {source}")
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    loaded = []
    for i, item in enumerate(items):
        name = None if isinstance(item, (str, Path, Micrograph)) else f"image{i:03d}"
        loaded.append(to_micrograph(item, pixel_size_nm=pixel_size_nm, name=name))
    stems = _unique_stems([m.name for m, _ in loaded])
    results = []
    for (m, src), stem in zip(loaded, stems, strict=True):
        chosen, policy_s = amg, None
        if pol is not None:
            prop = pol.propose(m)
            chosen, policy_s = prop.params, prop.seconds
        tiled, line = choose_tiling(chosen, m.shape, input_size=model_input_size(engine), tile_shape=tile_shape, halo=halo)
        if say is not None and line != "no tiles":
            say(f"{m.name}: {line}")
        res = segment_one(m, engine, tiled, pixel_size_source=src, out_dir=out, stem=stem, overlay=overlay, rois=rois, tiling=line)
        if policy_s is not None:
            res = dataclasses.replace(res, timings_s={"policy": policy_s, **res.timings_s})
        results.append(res)
    if out is not None:
        model_name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
        write_summary(results, out, params=amg, model=model_name, params_source=source)
    return results


def _run_cli(args: argparse.Namespace) -> int:
    policy = None
    if args.policy is not None:
        from samstar_env.policy.policy_file import load_policy

        policy = load_policy(args.policy)  # once: segment() takes it as it is, and its names label the lines
    results = segment(
        args.images,
        policy=policy,
        params=args.params,
        model=args.model,
        pixel_size_nm=args.pixel_size_nm,
        out_dir=args.out,
        overlay=not args.no_overlay,
        device=args.device,
        tile_shape=args.tile_shape,
        halo=args.halo,
        rois=not args.no_rois,
        say=lambda line: print(line, file=sys.stderr),
    )
    for r in results:
        s = r.summary
        chosen = ""
        if policy is not None and r.params is not None:
            picked = r.params.to_dict()
            chosen = " [policy: " + ", ".join(f"{n}={_short(picked[n])}" for n in policy.space.names) + "]"
        size = f", median diameter {s.median_diameter:.3g} {s.unit}" if s.count else ""
        print(f"{r.name}: {s.count} particles{size} (pixel size: {r.pixel_size_source}), "
              f"segment {r.timings_s['segment']:.2f} s{chosen}")
    print(f"wrote {len(results)} image(s) to {args.out}", file=sys.stderr)
    return 0


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def add_cli(subparsers: Any) -> None:
    """Add ``samstar segment``."""
    p = subparsers.add_parser(
        "segment",
        help="segment micrographs with tuned params: labels, overlays, particle tables",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("images", nargs="+", help="image files (png, jpg, tif; dm3/dm4/emd/ser/mrc with samstar[em])")
    p.add_argument("--params", default=None, help="best_params.json or AmgParams JSON (default: the model's recommended operating point; SAM's defaults for a SAM checkpoint)",
    )
    p.add_argument("--policy", default=None, help="a trained policy (samstar train-policy's policy.zip or folder): parameters "
                   "chosen per image in one forward pass, instead of --params")
    p.add_argument("--model", default=None, help=f"samstar-tiny or a SAM checkpoint path (default: the policy's model, else {DEFAULT_MODEL})")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="nm per pixel; overrides the files' calibration")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--no-rois", action="store_true", help="skip the ImageJ ROI sets (<stem>_rois.zip)")
    add_tiling_arguments(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.set_defaults(func=_run_cli)

