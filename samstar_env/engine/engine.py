"""MaskEngine: SamAutomaticMaskGenerator's output for any parameters, from cached embeddings and proposals.

What depends on what (see "The caching engine" in DESIGN.md):

========================  =====================================================================
stage                     cached per
========================  =====================================================================
crop embedding            model, image, crop box (crop_n_layers, crop_overlap_ratio)
decoded proposals         embedding + point grid of the layer (points_per_side,
                          crop_n_points_downscale_factor or point_grids) + points_per_batch
stability score           proposals + stability_score_offset (every offset of a grid from the
                          same pass over the logits; a new offset decodes once more and is added)
everything else           replayed per call: pred_iou / stability / crop-edge filters, NMS in and
                          across crops, small-region post-processing (memoized per mask)
========================  =====================================================================

Memory: a proposal is its mask's box crop, as run lengths or packed bits, whichever is smaller
(:mod:`samstar_env.engine.rle`), plus a few scalars. Measured with samstar-tiny on synthetic
micrographs (``benchmarks/scripts/bench_engine.py``, bytes per proposal): 3.8-5.4 kB at 512², 8-10 kB at
1024², against 3.2 GB for the full-size float logits of a single AMG point batch at 2048². A crop
embedding takes C*h*w*4 bytes (256 kB for samstar-tiny, 4 MB for ViT-H). The default bound, 4 GiB
(at most a quarter of the RAM), holds every decode of the env's default space on a 512² image
(0.3-1.2 GB).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.amg import build_all_layer_point_grids, generate_crop_boxes

from samstar_env.data.micrograph import Micrograph
from samstar_env.engine.cache import DISK_FORMAT_VERSION, DiskCache, KeyedLocks, LruCache, get_or_compute
from samstar_env.engine.image_input import image_fingerprint, to_sam_image
from samstar_env.engine.maskset import MaskSet
from samstar_env.engine.proposals import (
    DEFAULT_SUBBATCH_BYTES,
    CropEmbedding,
    CropProposals,
    decode_crop,
    decode_stability,
    embed_crop,
)
from samstar_env.engine.replay import assemble, postprocess, select
from samstar_env.engine.sam2_proposals import (
    Sam2Embedding,
    Sam2Variant,
    decode_crop_sam2,
    embed_crop_sam2,
    sam2_version,
)
from samstar_env.engine.tiles import Tile, model_input_size, stitch, tile_grid
from samstar_env.errors import InputError, MaskBudgetExceeded
from samstar_env.models.registry import model_fingerprint
from samstar_env.models.sam2_models import is_sam2_model
from samstar_env.params import DEFAULT_DIMENSIONS, SAM2_DIMENSIONS, AmgParams, Sam2AmgParams


def _default_cache_bytes() -> int:
    # 4 GiB holds every decode of the env's default space on a 512² image (about 1.4 GB with
    # samstar-tiny), so a warm env never re-reads the disk; never more than a quarter of the RAM.
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        ram = 16 << 30
    return int(min(4 << 30, ram // 4))


DEFAULT_CACHE_BYTES = _default_cache_bytes()
# The ParamSpace grid of stability_score_offset: a tuner on the default space never triggers a re-decode.
DEFAULT_STABILITY_OFFSETS: tuple[float, ...] = tuple(
    float(v) for d in DEFAULT_DIMENSIONS if d.name == "stability_score_offset" for v in d.choices
)
# SAM 2: the ParamSpace grid of mask_threshold, binarized from every decode in the same pass.
DEFAULT_MASK_THRESHOLDS: tuple[float, ...] = tuple(
    float(v) for d in SAM2_DIMENSIONS if d.name == "mask_threshold" for v in d.choices
)
_log = logging.getLogger("samstar_env.engine")


def _about(seconds: float | None) -> str:
    return "" if seconds is None else f" (about {seconds:.1f} s)"


# The memo of prepared images: entries, and the bytes of the arrays' private copies (64 MB: one
# 4096² RGB frame; a bigger array is hashed on every call).
_IMAGE_MEMO_ENTRIES = 64
_ARRAY_MEMO_BYTES = 64 << 20


def _same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two C-contiguous arrays hold the same bytes (same shape and dtype), read as 8-byte words."""
    if a.shape != b.shape or a.dtype != b.dtype or not a.flags.c_contiguous:
        return False
    word = np.uint64 if a.nbytes % 8 == 0 else np.uint8
    return bool(np.array_equal(a.reshape(-1).view(word), b.reshape(-1).view(word)))


_STAGES = ("embed", "decode", "stability", "replay", "postprocess", "assemble", "stitch")


@dataclass(frozen=True)
class EngineStats:
    """Counters of a :class:`MaskEngine` (a snapshot; JSON-ready through :meth:`as_dict`).

    Parameters
    ----------
    calls : int
        ``generate`` calls.
    embedding_hits, embedding_misses : int
        Crop embeddings found / computed (a disk hit counts as a hit).
    proposal_hits, proposal_misses : int
        Decoded proposal sets found / decoded.
    disk_hits, disk_rejected : int
        Entries read from the disk cache; disk files found corrupted or stale.
    stability_recomputes : int
        Re-decodes to add a stability offset outside the cached grid.
    seconds : dict
        Wall time per stage (embed, decode, stability, replay, postprocess, assemble, stitch).
    cache_bytes, cache_entries : int
        Current size of the in-memory cache.
    """

    calls: int
    embedding_hits: int
    embedding_misses: int
    proposal_hits: int
    proposal_misses: int
    disk_hits: int
    disk_rejected: int
    stability_recomputes: int
    seconds: dict[str, float]
    cache_bytes: int
    cache_entries: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for ``info`` dicts and logs)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


class MaskEngine:
    """Exact, cached equivalent of ``SamAutomaticMaskGenerator``.

    ``MaskEngine(model).generate(image, params).to_amg_records()`` equals
    ``SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(image)`` (binary-mask output):
    same masks in the same order, same boxes, areas, points, crop boxes, and bit-identical predicted
    IoU and stability. The tests check this against segment_anything itself. For a SAM 2 model
    (``sam2``'s ``SAM2Base``; :attr:`backbone` ``"sam2"``) it equals
    ``SAM2AutomaticMaskGenerator(model, **Sam2AmgParams.from_sam1(params).to_kwargs())`` in the same
    way (:mod:`samstar_env.engine.sam2_proposals`; tested against sam2 itself).

    Parameters
    ----------
    model : segment_anything.modeling.Sam or sam2.modeling.sam2_base.SAM2Base
        The model. Cache keys include :func:`~samstar_env.models.model_fingerprint`, re-validated at
        each call, so changed weights never reuse stale entries.
    cache_bytes : int
        Bound of the in-memory LRU cache of embeddings and proposals (default 4 GiB, at most a
        quarter of the machine's memory).
    cache_dir : path, optional
        Folder of an on-disk cache shared between processes (embeddings and proposals).
    stability_offsets : iterable of float, optional
        Offsets whose stability scores are computed with every decode (default: the ParamSpace
        grid 0.5, 1.0, 1.5, 2.0), all from one pass over the logits. A requested offset outside
        them costs one more decode, once.
    mask_thresholds : iterable of float, optional
        SAM 2 only: the ``mask_threshold`` values every decode is binarized at (default: the
        ParamSpace grid -1, -0.5, 0, 0.5, 1), from the same logits. Another value costs a decode.
    logit_bytes : int
        Bound on the full-resolution logits held at once while decoding
        (:data:`~samstar_env.engine.proposals.DEFAULT_SUBBATCH_BYTES`). The decoder still runs on
        AMG's point batches; only their upsampling is split. It changes memory, never results.

    Examples
    --------
    Skipped when the docs are tested: it needs a SAM ``model`` and a ``micrograph`` (see
    ``tests/engine/`` for the same calls on a small random-weight model).

    >>> engine = MaskEngine(model)                                  # doctest: +SKIP
    >>> masks = engine.generate(micrograph, AmgParams(points_per_side=16))  # doctest: +SKIP
    >>> engine.stats.proposal_misses                                 # doctest: +SKIP
    1
    """

    def __init__(
        self,
        model: Sam | Any,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        cache_dir: str | Path | None = None,
        stability_offsets: Iterable[float] | None = None,
        logit_bytes: int = DEFAULT_SUBBATCH_BYTES,
        mask_thresholds: Iterable[float] | None = None,
    ) -> None:
        if int(logit_bytes) < 1:
            raise ValueError(f"MaskEngine.logit_bytes must be a positive number of bytes, got {logit_bytes}")
        self.logit_bytes = int(logit_bytes)
        self.model = model
        # SAM 2 (sam2's SAM2Base) or SAM 1 (segment_anything's Sam): which AMG this engine reproduces.
        self.backbone = "sam2" if is_sam2_model(model) else "sam1"
        self.fingerprint = model_fingerprint(model)
        self.stability_offsets = tuple(sorted({float(o) for o in (stability_offsets or DEFAULT_STABILITY_OFFSETS)}))
        self.mask_thresholds = tuple(sorted({float(t) for t in (mask_thresholds or DEFAULT_MASK_THRESHOLDS)}))
        self.memory = LruCache(max_bytes=cache_bytes)
        self.disk = DiskCache(cache_dir) if cache_dir is not None else None
        self._locks = KeyedLocks()
        # One forward pass at a time: torch already spreads each one over all cores, and serializing
        # keeps concurrent callers from oversubscribing them. Replay runs concurrently.
        self._model_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._work = self._work_seconds = 0.0  # decode cost model (expected_decode_seconds)
        self._image_memo: dict[int, tuple[Any, ...]] = {}
        self.reset_stats()

    # ------------------------------------------------------------------ stats
    def reset_stats(self) -> None:
        """Zero the counters."""
        with self._stats_lock:
            self._counts = {k: 0 for k in ("calls", "embedding_hits", "embedding_misses", "proposal_hits",
                                           "proposal_misses", "disk_hits", "stability_recomputes")}
            self._seconds = {k: 0.0 for k in _STAGES}
            self._disk_rejected0 = self.disk.rejected if self.disk is not None else 0

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += n

    @contextmanager
    def _timed(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._stats_lock:
                self._seconds[stage] += time.perf_counter() - t0

    @property
    def stats(self) -> EngineStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return EngineStats(
                **self._counts,
                disk_rejected=(self.disk.rejected - self._disk_rejected0) if self.disk is not None else 0,
                seconds=dict(self._seconds),
                cache_bytes=self.memory.nbytes,
                cache_entries=len(self.memory),
            )

    # ------------------------------------------------------------------ keys
    def _prepared(self, image: Any) -> tuple[np.ndarray, str]:
        """SAM's input for ``image`` and its hash, memoized per Micrograph and per array.

        A Micrograph's pixels are read-only, so its conversion and hash (about 2 ms at 512²,
        as much as a whole threshold replay) can be kept while the object lives. An array may be
        changed in place, so its memo holds a private copy and is used only while the array still
        equals it: the comparison reads the pixels as 8-byte words, several times faster than
        hashing them again (0.1 ms against 1.8 ms at 1024²).
        """
        if isinstance(image, Micrograph):
            hit = self._image_memo.get(id(image))
            if hit is not None and hit[0]() is image:
                return hit[1], hit[2]
            rgb = to_sam_image(image)
            fp = image_fingerprint(rgb)
            self._remember(image, (weakref.ref(image), rgb, fp))
            return rgb, fp
        if isinstance(image, np.ndarray):
            hit = self._image_memo.get(id(image))
            if hit is not None and hit[0]() is image and _same_pixels(image, hit[3]):
                return hit[1], hit[2]
            rgb = to_sam_image(image)
            fp = image_fingerprint(rgb)
            if image.flags.c_contiguous and image.nbytes <= _ARRAY_MEMO_BYTES:
                self._remember(image, (weakref.ref(image), rgb, fp, image.copy()))
            return rgb, fp
        rgb = to_sam_image(image)
        return rgb, image_fingerprint(rgb)

    def _remember(self, image: Any, entry: tuple[Any, ...]) -> None:
        # Oldest first out, within an entry count and a byte bound on the arrays' private copies.
        with self._stats_lock:
            self._image_memo.pop(id(image), None)
            self._image_memo[id(image)] = entry

            def copies() -> int:
                return sum(e[3].nbytes for e in self._image_memo.values() if len(e) > 3)

            while len(self._image_memo) > _IMAGE_MEMO_ENTRIES or (len(self._image_memo) > 1 and copies() > _ARRAY_MEMO_BYTES):
                self._image_memo.pop(next(iter(self._image_memo)))

    def _scope(self, image_key: str) -> tuple[tuple[str, ...], str]:
        """What every key of one call shares: the numerics' identity and the image's hash.

        Versioned: the disk format, the torch and segment_anything builds (numerics), the device and
        the weights all change the stored numbers, so they are part of every key. Computed once per
        public call (re-checking the weights per key cost more than the whole replay of a small image).
        """
        import segment_anything

        dev = next(self.model.parameters()).device.type
        sa_version = getattr(segment_anything, "__version__", "1.0")
        # Re-checked per call (cheap unless the weights changed), so entries never outlive the weights.
        self.fingerprint = model_fingerprint(self.model)
        ident: tuple[str, ...] = (f"torch={torch.__version__}", f"sam={sa_version}", f"dev={dev}", f"model={self.fingerprint}")
        if self.backbone == "sam2":
            ident = (*ident, f"sam2={sam2_version()}")
        return ident, image_key

    @staticmethod
    def _tile_scope(scope: tuple[tuple[str, ...], str], tile: tuple[int, int, int, int] | None) -> tuple[tuple[str, ...], str]:
        # A tile is its own image for the cache: the whole image's hash and the tile's padded box
        # (hashing each tile's pixels again would cost more than its replay).
        if tile is None:
            return scope
        return scope[0], f"{scope[1]}@tile={','.join(map(str, tile))}"

    @staticmethod
    def _tile_pixels(rgb: np.ndarray, tile: tuple[int, int, int, int] | None) -> np.ndarray:
        if tile is None:
            return rgb
        x0, y0, x1, y1 = tile
        return rgb[y0:y1, x0:x1]  # a view: AMG itself hands crop views to SamPredictor

    def _key(self, kind: str, scope: tuple[tuple[str, ...], str], *parts: Any) -> str:
        ident, image_key = scope
        return "|".join([f"samstar-engine/{DISK_FORMAT_VERSION}", kind, *ident, image_key, *map(str, parts)])

    # ------------------------------------------------------------------ stages
    def _embedding(self, image: np.ndarray, scope: tuple[tuple[str, ...], str], crop_box: list[int]) -> Any:
        key = self._key("embedding", scope, tuple(crop_box))

        def compute() -> tuple[Any, int]:
            if self.backbone == "sam2":
                return self._sam2_embedding(image, key, crop_box)
            if self.disk is not None:
                arrays = self.disk.load(key)
                if arrays is not None:
                    self._count("disk_hits")
                    emb = CropEmbedding(
                        features=torch.from_numpy(np.array(arrays["features"])).to(next(self.model.parameters()).device),
                        original_size=tuple(int(v) for v in arrays["original_size"]),
                        input_size=tuple(int(v) for v in arrays["input_size"]),
                    )
                    return emb, emb.nbytes
            self._count("embedding_misses")
            with self._timed("embed"), self._model_lock:
                emb = embed_crop(self.model, image, crop_box)
            if self.disk is not None:
                self.disk.save(key, {"features": emb.features.cpu().numpy(),
                                     "original_size": np.asarray(emb.original_size),
                                     "input_size": np.asarray(emb.input_size)})
            return emb, emb.nbytes

        emb, hit = get_or_compute(key, memory=self.memory, locks=self._locks, compute=compute)
        if hit:
            self._count("embedding_hits")
        return emb

    def _sam2_embedding(self, image: np.ndarray, key: str, crop_box: list[int]) -> tuple[Sam2Embedding, int]:
        if self.disk is not None:
            arrays = self.disk.load(key)
            if arrays is not None:
                self._count("disk_hits")
                emb = Sam2Embedding.from_arrays(arrays, next(self.model.parameters()).device)
                return emb, emb.nbytes
        self._count("embedding_misses")
        with self._timed("embed"), self._model_lock:
            emb = embed_crop_sam2(self.model, image, crop_box)
        if self.disk is not None:
            self.disk.save(key, emb.to_arrays())
        return emb, emb.nbytes

    def _proposal_key(self, scope: tuple[tuple[str, ...], str], crop_box: list[int], grid: np.ndarray, points_per_batch: int,
                      variant: Sam2Variant | None = None) -> str:
        grid = np.asarray(grid, dtype=np.float64)
        grid_key = hashlib.sha256(f"{grid.shape}".encode() + grid.tobytes()).hexdigest()[:32]
        extra = variant.key_parts() if variant is not None else ()
        return self._key("proposals", scope, tuple(crop_box), grid_key, f"ppb={points_per_batch}", *extra)

    def _proposals(
        self,
        image: np.ndarray,
        scope: tuple[tuple[str, ...], str],
        crop_box: list[int],
        grid: np.ndarray,
        points_per_batch: int,
        offset: float,
        variant: Sam2Variant | None = None,
    ) -> CropProposals:
        grid = np.asarray(grid, dtype=np.float64)
        variant = self._variant(variant)
        key = self._proposal_key(scope, crop_box, grid, points_per_batch, variant)
        orig_size = (int(image.shape[0]), int(image.shape[1]))

        def decode(emb: Any, offsets: tuple[float, ...], thresholds: tuple[float, ...] = ()) -> dict[float, CropProposals]:
            # SAM 1: one result; SAM 2: one per mask threshold asked for (the variant's first). The
            # embedding is fetched by the caller before it takes the model lock (an embedding miss takes it too).
            if variant is None:
                return {0.0: decode_crop(emb.predictor(self.model), crop_box=crop_box, orig_size=orig_size, grid=grid,
                                         points_per_batch=points_per_batch, offsets=offsets, max_bytes=self.logit_bytes)}
            return decode_crop_sam2(self.model, emb, crop_box=crop_box, orig_size=orig_size, grid=grid,
                                    points_per_batch=points_per_batch, multimask=variant.multimask, use_m2m=variant.use_m2m,
                                    mask_thresholds=(variant.mask_threshold, *thresholds), offsets=offsets,
                                    min_area=variant.min_area, max_bytes=self.logit_bytes)

        own = 0.0 if variant is None else variant.mask_threshold

        def compute() -> tuple[CropProposals, int]:
            if self.disk is not None:
                arrays = self.disk.load(key)
                if arrays is not None:
                    self._count("disk_hits")
                    props = CropProposals.from_arrays(arrays)
                    return props, props.nbytes
            emb = self._embedding(image, scope, crop_box)
            self._count("proposal_misses")
            unit = DecodeUnit(tuple(crop_box), 0, grid, variant=variant)
            _log.info("decoding %d prompts on crop %s%s", unit.n_points, tuple(crop_box), _about(self.expected_decode_seconds([unit])))
            # SAM 2: the other mask thresholds of the grid come from the same logits, kept for later calls.
            others = () if variant is None else tuple(
                t for t in self.mask_thresholds
                if t != own and not self._is_cached_key(self._proposal_key(scope, crop_box, grid, points_per_batch,
                                                                           variant.with_threshold(t))))
            t0 = time.perf_counter()
            with self._timed("decode"), self._model_lock:
                out = decode(emb, (*self.stability_offsets, offset), others)
            with self._stats_lock:
                self._work += self._work_of(unit)
                self._work_seconds += time.perf_counter() - t0
            for t in others:
                assert variant is not None
                other_key = self._proposal_key(scope, crop_box, grid, points_per_batch, variant.with_threshold(t))
                self.memory.put(other_key, out[t], nbytes=out[t].nbytes)
                if self.disk is not None:
                    self.disk.save(other_key, out[t].to_arrays())
            props = out[own]
            if self.disk is not None:
                self.disk.save(key, props.to_arrays())
            return props, props.nbytes

        props, hit = get_or_compute(key, memory=self.memory, locks=self._locks, compute=compute)
        props.engine_key = key  # lets generate() re-account the entry when its region memo grows
        if hit:
            self._count("proposal_hits")
        if offset not in props.stability:
            with self._locks(key + "|stability"):
                if offset not in props.stability:
                    emb = self._embedding(image, scope, crop_box)
                    self._count("stability_recomputes")
                    with self._timed("stability"), self._model_lock:
                        if variant is None:
                            props.add_stability(decode_stability(emb.predictor(self.model), crop_box=crop_box, grid=grid,
                                                                 points_per_batch=points_per_batch, offsets=[offset],
                                                                 max_bytes=self.logit_bytes))
                        else:
                            props.add_stability({offset: decode(emb, (offset,))[own].stability[offset]})
                    if self.disk is not None:
                        self.disk.save(key, props.to_arrays())
                    self.memory.put(key, props, nbytes=props.nbytes)
        return props

    def _variant(self, variant: Sam2Variant | None) -> Sam2Variant | None:
        # A unit built without SAM 2's parameters (SAM 1 params, a calibration decode) decodes with SAM 2's defaults.
        return Sam2Variant.of(Sam2AmgParams()) if variant is None and self.backbone == "sam2" else variant

    def _is_cached_key(self, key: str) -> bool:
        return key in self.memory or (self.disk is not None and self.disk.path_for(key).is_file())

    def _as_params(self, params: AmgParams | None) -> AmgParams:
        """``params`` as this engine's AMG reads them (SAM 2: SAM 1's 13 with SAM 2's three at their defaults)."""
        if params is None:
            return Sam2AmgParams() if self.backbone == "sam2" else AmgParams()
        if self.backbone == "sam2":
            return Sam2AmgParams.from_sam1(params)
        if isinstance(params, Sam2AmgParams):
            raise InputError("Sam2AmgParams (mask_threshold, use_m2m, multimask_output) need a SAM 2 model; this engine "
                             "runs a SAM 1 model (segment_anything): pass AmgParams, or load a SAM 2 checkpoint")
        return params

    # ------------------------------------------------------------------ public
    def proposals(self, image: Any, params: AmgParams) -> list[CropProposals]:
        """The cached proposals of every crop ``params`` uses (decoding what is missing), in AMG's crop
        order (tile after tile when ``params`` tiles the image)."""
        params = self._as_params(params)
        rgb, fp = self._prepared(image)
        scope = self._scope(fp)
        return [self._proposals(self._tile_pixels(rgb, u.tile), self._tile_scope(scope, u.tile), list(u.crop_box), u.grid,
                                params.points_per_batch, params.stability_score_offset, u.variant)
                for u in decode_units(rgb.shape[:2], params)]

    def _crop_proposals(self, rgb: np.ndarray, scope: tuple[tuple[str, ...], str], params: AmgParams) -> list[CropProposals]:
        # The crops of one (untiled) image, or of one tile's pixels with the tile's scope.
        return [self._proposals(rgb, scope, list(u.crop_box), u.grid, params.points_per_batch, params.stability_score_offset,
                                u.variant)
                for u in _crop_units(rgb.shape[:2], params, None)]

    def missing_units(self, image: Any, params: AmgParams) -> list[DecodeUnit]:
        """The crops and grids of ``params`` on ``image`` that a ``generate`` call would decode now."""
        params = self._as_params(params)
        rgb, fp = self._prepared(image)
        scope = self._scope(fp)
        return [u for u in decode_units(rgb.shape[:2], params) if not self._is_cached(scope, u, params.points_per_batch)]

    def _is_cached(self, scope: tuple[tuple[str, ...], str], unit: DecodeUnit, points_per_batch: int) -> bool:
        key = self._proposal_key(self._tile_scope(scope, unit.tile), list(unit.crop_box), unit.grid, points_per_batch,
                                 self._variant(unit.variant))
        return self._is_cached_key(key)

    def _work_of(self, unit: DecodeUnit) -> float:
        # Decoder work per prompt is about that of upsampling img_size² pixels (measured with
        # samstar-tiny at 512²), then upsampling and scanning grow with the crop's pixels.
        side = int(model_input_size(self.model) or 0)  # known for every SAM; it only weights an estimate
        passes = 1 if unit.variant is None else unit.variant.decoder_passes
        return float(unit.n_points) * passes * (unit.pixels + side * side)

    def expected_decode_seconds(self, units: Iterable[DecodeUnit]) -> float | None:
        """Seconds ``units`` should take to decode, from this engine's own decodes so far (None before the first)."""
        with self._stats_lock:
            if self._work <= 0:
                return None
            rate = self._work_seconds / self._work
        return rate * sum(self._work_of(u) for u in units)

    def is_cached(self, image: Any, unit: DecodeUnit, *, points_per_batch: int) -> bool:
        """Whether ``unit``'s proposals are in memory or in the disk cache (a file, not yet verified)."""
        _, fp = self._prepared(image)
        return self._is_cached(self._scope(fp), unit, points_per_batch)

    @torch.no_grad()
    def ensure(self, image: Any, unit: DecodeUnit, *, points_per_batch: int) -> bool:
        """Decode ``unit`` unless it is cached (for ``samstar cache warm``); True when it decoded now."""
        misses = self.stats.proposal_misses
        rgb, fp = self._prepared(image)
        self._proposals(self._tile_pixels(rgb, unit.tile), self._tile_scope(self._scope(fp), unit.tile), list(unit.crop_box),
                        unit.grid, points_per_batch, self.stability_offsets[0], unit.variant)
        return self.stats.proposal_misses > misses

    @torch.no_grad()
    def generate(self, image: Any, params: AmgParams | None = None, *, max_masks: int | None = None) -> MaskSet:
        """The masks ``SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(image)`` returns.

        Parameters
        ----------
        image : Micrograph or array
            Converted by :func:`samstar_env.engine.image_input.to_sam_image`.
        params : AmgParams, optional
            Defaults to SAM's defaults. ``output_mode`` is ignored (a MaskSet holds binary masks).
        max_masks : int, optional
            Raise :class:`~samstar_env.errors.MaskBudgetExceeded` when more masks than this pass
            the thresholds and NMS, before any per-mask work. Small-region post-processing can only
            remove masks, so that count bounds the result's length from above. With tiles, the
            count is summed over the tiles before stitching.

        Returns
        -------
        MaskSet
            In AMG's order. Thread-safe: concurrent calls share the cache and compute each missing
            entry once. With ``params.tile_shape`` smaller than the image, each tile is generated
            on its own (cached per tile) and the masks are stitched by the rule of
            :mod:`samstar_env.engine.tiles`; a tile covering the image is the untiled call.
        """
        params = self._as_params(params)
        self._count("calls")
        rgb, fp = self._prepared(image)
        scope = self._scope(fp)
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        tiles = tile_grid(shape, tile_shape=params.tile_shape, halo=params.halo)
        if len(tiles) == 1:
            return self._generate_on(rgb, scope, params, max_masks=max_masks)[0]
        parts: list[tuple[Tile, MaskSet]] = []
        found = 0
        for tile in tiles:
            box = tile.crop_box
            budget = None if max_masks is None else max_masks - found
            try:
                ms, n_selected = self._generate_on(self._tile_pixels(rgb, box), self._tile_scope(scope, box), params,
                                                   max_masks=budget)
            except MaskBudgetExceeded as exc:
                raise MaskBudgetExceeded(found + exc.count, int(max_masks)) from None  # type: ignore[arg-type]
            found += n_selected
            parts.append((tile, ms))
        with self._timed("stitch"):
            return stitch(parts, shape)

    def _generate_on(self, rgb: np.ndarray, scope: tuple[tuple[str, ...], str], params: AmgParams, *,
                     max_masks: int | None) -> tuple[MaskSet, int]:
        """AMG on one image (or tile): the MaskSet and the count that passed the filters and NMS."""
        shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        crops = self._crop_proposals(rgb, scope, params)
        with self._timed("replay"):
            sel = select(crops, params)
        n_selected = len(sel)
        if max_masks is not None and n_selected > max_masks:
            raise MaskBudgetExceeded(n_selected, max_masks)
        changed = None
        # SAM 2's generator never runs SAM 1's small-region post-processing (its min area acts in the decode).
        if params.min_mask_region_area > 0 and self.backbone == "sam1":
            with self._timed("postprocess"):
                sel, changed = postprocess(crops, sel, params, shape)
            # The region memo grew: re-account the entries' sizes in the LRU bound.
            for props in {id(p): p for p in crops}.values():
                for key in self._keys_of(props):
                    self.memory.put(key, props, nbytes=props.nbytes)
        with self._timed("assemble"):
            return assemble(crops, sel, shape, offset=params.stability_score_offset, changed=changed), n_selected

    def _keys_of(self, props: CropProposals) -> list[str]:
        key = getattr(props, "engine_key", None)
        return [key] if key is not None and key in self.memory else []

    def clear_cache(self) -> None:
        """Empty the in-memory cache (the disk cache is kept)."""
        self.memory.clear()


@dataclass(frozen=True, eq=False)
class DecodeUnit:
    """One (crop box, point grid) that costs a full decode: the unit of caching and of ``cache warm``.

    Parameters
    ----------
    crop_box : (x0, y0, x1, y1)
        The crop, as ``generate_crop_boxes`` gives it.
    layer : int
        Its crop layer.
    grid : ndarray of float64, shape (P, 2)
        The layer's normalized point grid.
    tile : (x0, y0, x1, y1) or None
        The padded tile (image pixels) the crop lies in, ``crop_box`` being relative to it; None
        when the image is not tiled.
    variant : Sam2Variant or None
        SAM 2: the parameters that change the decode itself (None for SAM 1).
    """

    crop_box: tuple[int, int, int, int]
    layer: int
    grid: np.ndarray
    tile: tuple[int, int, int, int] | None = None
    variant: Sam2Variant | None = None

    @property
    def n_points(self) -> int:
        """Prompts decoded."""
        return int(self.grid.shape[0])

    @property
    def pixels(self) -> int:
        """Pixels of the crop (its logits are upsampled to this size)."""
        x0, y0, x1, y1 = self.crop_box
        return int((x1 - x0) * (y1 - y0))

    @property
    def identity(self) -> tuple[Any, ...]:
        """Hashable identity (crop box and grid), for de-duplicating units across parameter sets."""
        return (self.tile, self.crop_box, self.grid.shape, self.grid.tobytes(), self.variant)


def decode_units(image_shape: tuple[int, int], params: AmgParams) -> list[DecodeUnit]:
    """The crops and grids ``SamAutomaticMaskGenerator`` decodes for ``params``, in its crop order
    (for each tile in turn when ``params`` tiles the image)."""
    tiles = tile_grid(tuple(image_shape[:2]), tile_shape=params.tile_shape, halo=params.halo)
    if len(tiles) == 1:
        return _crop_units(tuple(image_shape[:2]), params, None)
    return [u for tile in tiles for u in _crop_units(tile.shape, params, tile.crop_box)]


def _crop_units(shape: tuple[int, int], params: AmgParams, tile: tuple[int, int, int, int] | None) -> list[DecodeUnit]:
    # AMG's crops and grids on one image (or one tile, whose pixels it is given as an image).
    crop_boxes, layer_idxs = generate_crop_boxes(tuple(shape[:2]), params.crop_n_layers, params.crop_overlap_ratio)
    grids = _point_grids(params)
    variant = Sam2Variant.of(params) if isinstance(params, Sam2AmgParams) else None
    return [DecodeUnit(tuple(int(v) for v in box), int(layer), np.asarray(grids[layer], np.float64), tile, variant)
            for box, layer in zip(crop_boxes, layer_idxs, strict=True)]


def _point_grids(params: AmgParams) -> list[np.ndarray]:
    # As SamAutomaticMaskGenerator.__init__ builds them.
    if params.point_grids is not None:
        return [np.asarray(g, dtype=np.float64) for g in params.point_grids]
    return build_all_layer_point_grids(params.points_per_side, params.crop_n_layers, params.crop_n_points_downscale_factor)
