"""Benchmark: MaskEngine against a fresh SamAutomaticMaskGenerator (or SAM 2's), cold and warm, side by side.

Run ``python benchmarks/scripts/bench_engine.py`` (about 20 minutes on 2 CPU cores with samstar-tiny),
``--quick`` (a minute: 256 px, points_per_side 8/16) or ``--large`` (adds 2048² against AMG and
4096² for the engine alone, the memory goals). For each image size x crop_n_layers x
points_per_side it runs, in this one process and on the same image and model:

1. AMG cold: ``SamAutomaticMaskGenerator(model, **params).generate(image)``;
2. engine cold: a new ``MaskEngine`` (no disk cache), the same parameters;
3. engine warm: the same engine with other thresholds (pred_iou, stability and its offset, NMS), the
   median of five replays, against AMG's cold time (AMG recomputes everything on every call); the
   replay returns each mask as its cached bytes, so "+read" also times reading every mask once on
   its box (what the rewards do; the dense (N, H, W) array is never built);

checks that 1 and 2 give identical records (masks, boxes, areas, points, crop boxes; scores to
1e-6), and prints the ratios, the engine's seconds per stage, the peak memory above the baseline of
each call (RSS sampled every 2 ms), and the cached bytes per proposal. The engine also computes
what AMG skips: stability for every offset of the grid and the boxes and bits of masks today's
thresholds drop; its cold time includes that.

``--backbone sam2`` runs the same comparison against SAM 2's
``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator`` (the engine on a SAM 2 model, with
``Sam2AmgParams``). The model is ``--sam2-model`` (a SAM 2 checkpoint) or, by default, a
random-weight ``sam2.1_hiera_t`` at full size (1024-px input: the real encoder's cost) made to give
localized, stable masks by ``structure_random_sam2`` on the first size's image: its timings are a
real hiera-tiny's, its masks are not; ``--quick --backbone sam2`` uses the shrunk ``build_tiny_sam2``
(256-px input) instead. The warm replays also vary ``mask_threshold`` over the engine's grid
(-1, -0.5, 0, 0.5, 1; the cold call binarizes every grid threshold from its one decode, so these are
replays too, and the summary says whether any replay decoded again); one more row (``m2m`` yes) runs
``use_m2m=True`` (about 3.5x the decode time) on the first size and crop layer at the second
points_per_side given. The min_mask_region_area front is SAM 1's alone (SAM 2 fills holes inside the
decode, and only with sam2's CUDA extension). Run times on 2 CPU cores shared with other work:
``--quick --backbone sam2`` (256 px, points_per_side 4/8) under a minute; ``--backbone sam2 --sizes
512 --crop-layers 0 --points-per-side 32 16`` (m2m row at 16) 12 minutes, the full-size decoder
taking 0.1 to 0.2 s per prompt at 512²; the default grid decodes about 65,000 prompts for each of
AMG and the engine, so it takes hours (not run): restrict it with ``--sizes``, ``--crop-layers`` and
``--points-per-side``.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from script_args import parse_dataclass_args


@dataclass(frozen=True)
class Args:
    quick: bool = False
    """small run (256 px, points_per_side 8 and 16; 4 and 8 with --backbone sam2) to check the script"""
    large: bool = False
    """also 2048² (engine and AMG) and 4096² (engine only) at points_per_side 32: the memory goals"""
    sizes: tuple[int, ...] = (512, 1024)
    """image sides in pixels"""
    crop_layers: tuple[int, ...] = (0, 1)
    """crop_n_layers values"""
    points_per_side: tuple[int, ...] = (16, 32, 64)
    """points_per_side values"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    seed: int = 0
    """seed of the synthetic perovskite image"""
    threads: int = 2
    """torch CPU threads"""
    backbone: str = "sam1"
    """sam1 (against SamAutomaticMaskGenerator) or sam2 (against SAM2AutomaticMaskGenerator)"""
    sam2_model: str = ""
    """--backbone sam2: a SAM 2 checkpoint; empty: a random-weight sam2.1_hiera_t made structured (build_tiny_sam2 with --quick)"""
    json_out: str = ""
    """optional path for a JSON file with every figure"""


def parse_args(argv: list[str] | None = None) -> Args:
    ns = parse_dataclass_args(Args, __doc__.splitlines()[0], argv)
    if ns["quick"]:
        # SAM 2's decoder (full size even in the shrunk model) costs about 4x SAM 1 tiny's per point.
        ns.update(sizes=(256,), crop_layers=(0, 1), points_per_side=(4, 8) if ns["backbone"] == "sam2" else (8, 16))
    if ns["backbone"] not in ("sam1", "sam2"):
        raise SystemExit(f"--backbone {ns['backbone']!r}: expected sam1 or sam2")
    return Args(**ns)


class PeakRss:
    """Peak resident memory above the value at entry, sampled in a thread (psutil, else /proc)."""

    def __init__(self, period_s: float = 0.002) -> None:
        self.period_s = period_s
        try:
            import psutil

            proc = psutil.Process()
            self._rss = lambda: proc.memory_info().rss
        except ImportError:  # pragma: no cover - Linux fallback
            import os

            page = os.sysconf("SC_PAGE_SIZE")
            self._rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.period_s)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def gb(self) -> float:
        return (self.peak - self.base) / 1e9


AmgRun = Callable[[dict[str, Any], Any], list[dict]]


def load_backbone(args: Args, image: Callable[[int], Any]) -> tuple[Any, str, AmgRun]:
    """The model, how the header names it, and AMG cold: ``amg(kwargs, rgb)`` runs a fresh generator.

    SAM 1: ``SamAutomaticMaskGenerator`` on ``--model``. SAM 2: ``SAM2AutomaticMaskGenerator`` on
    ``--sam2-model``, else on a random-weight SAM 2 structured on ``image(first size)``; its predictor's
    feature sizes (sam2 fixes them for 1024 px) are the model's, and an empty result is [] (sam2's
    cross-crop NMS raises on one, as SAM 1's does).
    """
    from samstar_env.models import load_sam

    if args.backbone == "sam1":
        from segment_anything import SamAutomaticMaskGenerator

        sam = load_sam(args.model, device="cpu")

        def amg1(kwargs: dict[str, Any], rgb: Any) -> list[dict]:
            return SamAutomaticMaskGenerator(sam, **kwargs).generate(rgb)

        return sam, args.model, amg1
    import warnings
    from importlib.metadata import version

    import torch

    from samstar_env.engine.testing import structure_random_sam2
    from samstar_env.models.sam2_models import (
        build_sam2_model,
        build_tiny_sam2,
        is_sam2_model,
        sam2_generator,
    )

    # sam2's predictor scripts its transforms with torch.jit.script, which torch now flags on every generator.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    if args.sam2_model:
        model = load_sam(args.sam2_model, device="cpu")
        if not is_sam2_model(model):
            raise SystemExit(f"--sam2-model {args.sam2_model}: not a SAM 2 checkpoint")
        name = f"SAM 2 checkpoint {args.sam2_model}"
    else:
        if args.quick:
            raw, what = build_tiny_sam2(seed=args.seed), "build_tiny_sam2 (sam2.1_hiera_t shrunk, 256-px input)"
        else:
            torch.manual_seed(args.seed)
            raw, what = build_sam2_model("sam2.1_hiera_t"), "sam2.1_hiera_t (full size, 1024-px input)"
        model = structure_random_sam2(raw, image(args.sizes[0]))
        name = (f"SAM 2 {what} with RANDOM weights, structured (structure_random_sam2 on the {args.sizes[0]}² image): "
                "the real model's compute, not its masks")

    def amg2(kwargs: dict[str, Any], rgb: Any) -> list[dict]:
        gen = sam2_generator(model, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # without sam2's CUDA extension, hole filling warns per batch
            try:
                return gen.generate(rgb)
            except IndexError:
                return []

    return model, f"{name}; AMG: SAM2AutomaticMaskGenerator, sam2 {version('sam2')}", amg2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from samstar_env.data.synthetic import generate
    from samstar_env.engine import MaskEngine
    from samstar_env.engine.engine import DEFAULT_MASK_THRESHOLDS
    from samstar_env.params import AmgParams, Sam2AmgParams

    images: dict[int, np.ndarray] = {}

    def image(size: int) -> np.ndarray:
        if size not in images:
            src = size if size <= 2048 else 2048
            im = generate("perovskite", seed=args.seed, size=(src, src)).to_rgb_uint8()
            images[size] = im if src == size else np.tile(im, (size // src, size // src, 1))
        return images[size]

    sam2 = args.backbone == "sam2"
    model, model_name, amg = load_backbone(args, image)
    params_cls = Sam2AmgParams if sam2 else AmgParams
    base = params_cls(pred_iou_thresh=0.2, stability_score_thresh=0.8)
    # SAM 2: mask_threshold over the engine's grid too (binarized from the cold call's decodes).
    extra = [{"mask_threshold": DEFAULT_MASK_THRESHOLDS[i % len(DEFAULT_MASK_THRESHOLDS)]} if sam2 else {} for i in range(5)]
    replays = [base.replace(pred_iou_thresh=0.1 + 0.05 * i, stability_score_thresh=0.7 + 0.04 * i,
                            stability_score_offset=(0.5, 1.0, 1.5, 2.0)[i % 4], box_nms_thresh=0.6 + 0.05 * i, **extra[i])
               for i in range(5)]

    def same(a: list[dict], b: list[dict]) -> bool:
        if len(a) != len(b):
            return False
        for r, g in zip(a, b, strict=True):
            if not np.array_equal(r["segmentation"], g["segmentation"]):
                return False
            if any(r[k] != g[k] for k in ("area", "bbox", "point_coords", "crop_box")):
                return False
            if any(not np.isclose(r[k], g[k], rtol=0, atol=1e-6, equal_nan=True) for k in ("predicted_iou", "stability_score")):
                return False
        return True

    # One-time costs per process are paid before timing: torch's first forward pass (AMG and the
    # engine share it) and numba's loading of the engine's compiled kernels, reported on its own.
    warm_img = generate("perovskite", seed=args.seed, size=(128, 128)).to_rgb_uint8()
    amg({"points_per_side": 4}, warm_img)
    t0 = time.perf_counter()
    MaskEngine(model).generate(warm_img, params_cls(points_per_side=4))
    first_engine_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    MaskEngine(model).generate(warm_img, params_cls(points_per_side=4))
    print(f"one-time per process: the engine's first call took {first_engine_s - (time.perf_counter() - t0):.2f} s more "
          "than its second (numba loading its cached kernels; compiling them, once per install, takes seconds)")
    mid_pps = args.points_per_side[min(1, len(args.points_per_side) - 1)]
    configs = [(s, c, p, False) for s in args.sizes for c in args.crop_layers for p in args.points_per_side]
    if sam2:  # one row with use_m2m=True (every proposal refined once more through the decoder)
        configs.append((args.sizes[0], args.crop_layers[0], mid_pps, True))
    if args.large:
        configs += [(2048, 0, 32, False), (4096, 0, 32, False)]
    print(f"model: {model_name}; torch {torch.__version__}, {args.threads} threads; {platform.processor() or platform.machine()}")
    print("image: synthetic perovskite, seed", args.seed, "(4096²: the 2048² image tiled 2x2)")
    m2m_head = f" {'m2m':>3}" if sam2 else ""
    header = (f"{'size':>5} {'crops':>5} {'pps':>4}{m2m_head} {'masks':>5} {'AMG s':>8} {'engine s':>9} {'cold':>6} {'warm ms':>8} "
              f"{'warm':>8} {'+read ms':>8} {'+read':>7} {'AMG GB':>7} {'eng GB':>7} {'B/prop':>7} {'same':>4}  engine stages (s)")
    print(header)
    rows = []
    for size, layers, pps, m2m in configs:
        rgb = image(size)
        variant = {"use_m2m": True} if m2m else {}
        p = base.replace(points_per_side=pps, crop_n_layers=layers, **variant)
        amg_s = amg_gb = None
        ref = None
        if size <= 2048:
            with PeakRss() as mem:
                t0 = time.perf_counter()
                ref = amg(p.to_kwargs(), rgb)
                amg_s = time.perf_counter() - t0
            amg_gb = mem.gb
        engine = MaskEngine(model)
        with PeakRss() as mem:
            t0 = time.perf_counter()
            masks = engine.generate(rgb, p)
            eng_s = time.perf_counter() - t0
        eng_gb = mem.gb
        ok = same(masks.to_amg_records(), ref) if ref is not None else None
        n = len(masks)
        del ref, masks
        stats0 = engine.stats
        stages = stats0.seconds
        warm = []
        for q in replays:
            q = q.replace(points_per_side=pps, crop_n_layers=layers, **variant)
            t0 = time.perf_counter()
            engine.generate(rgb, q)
            warm.append(time.perf_counter() - t0)
        warm_s = float(np.median(warm))
        # A replay hands out each mask as its cached bytes (decoded on first read, see MaskSet); what
        # a consumer that reads every mask once on its box (the rewards) pays on top is timed too.
        read = []
        for q in replays:
            q = q.replace(points_per_side=pps, crop_n_layers=layers, **variant)
            t0 = time.perf_counter()
            got = engine.generate(rgb, q)
            for i in range(len(got)):
                got.crop(i)
            read.append(time.perf_counter() - t0)
        read_s = float(np.median(read))
        stats1 = engine.stats
        # Embeddings, decodes or stability recomputations that the replays caused (0: all replayed).
        recomputed = sum(getattr(stats1, k) - getattr(stats0, k) for k in ("embedding_misses", "proposal_misses", "stability_recomputes"))
        props = engine.proposals(rgb, p)
        bpp = sum(x.nbytes for x in props) / max(sum(len(x) for x in props), 1)
        row = {"size": size, "crop_n_layers": layers, "points_per_side": pps, "masks": n, "amg_s": amg_s, "engine_s": eng_s,
               "cold_ratio": eng_s / amg_s if amg_s else None, "warm_s": warm_s, "warm_speedup": amg_s / warm_s if amg_s else None,
               "warm_read_s": read_s, "warm_read_speedup": amg_s / read_s if amg_s else None,
               "amg_peak_gb": amg_gb, "engine_peak_gb": eng_gb, "bytes_per_proposal": bpp, "identical": ok,
               "stages_s": {k: round(v, 3) for k, v in stages.items() if v > 0}}
        if sam2:
            row.update(use_m2m=m2m, warm_recomputes=recomputed)
        rows.append(row)

        def f(v: Any, fmt: str, width: int) -> str:
            return f"{'-':>{width}}" if v is None else format(v, f">{width}{fmt}")

        m2m_cell = f" {'yes' if m2m else 'no':>3}" if sam2 else ""
        print(f"{size:>5} {layers:>5} {pps:>4}{m2m_cell} {n:>5} {f(amg_s, '.2f', 8)} {eng_s:>9.2f} {f(row['cold_ratio'], '.2f', 5)}x "
              f"{warm_s * 1e3:>8.1f} {f(row['warm_speedup'], '.0f', 7)}x {read_s * 1e3:>8.1f} {f(row['warm_read_speedup'], '.0f', 6)}x {f(amg_gb, '.2f', 7)} {eng_gb:>7.2f} {bpp:>7.0f} "
              f"{'-' if ok is None else ('yes' if ok else 'NO'):>4}  " + ", ".join(f"{k} {v}" for k, v in row["stages_s"].items()),
              flush=True)
        del engine
    # Re-evaluating a front with min_mask_region_area > 0: the small-region results are memoized per
    # (proposal, area), so the second pass over the same parameter sets replays them.
    # SAM 2 has no such memo: its min_mask_region_area fills holes in the low-resolution logits, inside
    # the decode (and only with sam2's CUDA extension), so the front is SAM 1's alone.
    size0 = args.sizes[0]
    passes: list[float] | None = None
    if not sam2:
        engine = MaskEngine(model)
        front = [base.replace(points_per_side=mid_pps, pred_iou_thresh=t, stability_score_thresh=0.6, min_mask_region_area=a)
                 for t, a in ((0.1, 25), (0.2, 25), (0.3, 50), (0.4, 100), (0.5, 10))]
        engine.proposals(images[size0], front[0])
        passes = []
        for _ in range(2):
            t0 = time.perf_counter()
            counts = [len(engine.generate(images[size0], q)) for q in front]
            passes.append((time.perf_counter() - t0) / len(front))
        print(f"\nfront of {len(front)} parameter sets with min_mask_region_area > 0 ({size0}², points_per_side "
              f"{front[0].points_per_side}, {min(counts)}-{max(counts)} masks): first pass {passes[0] * 1e3:.0f} ms per "
              f"evaluation, re-evaluation {passes[1] * 1e3:.1f} ms (goal <= 50 ms at 200 masks)")
    timed = [r for r in rows if r["cold_ratio"] is not None]
    replayed = ""
    if sam2:
        redone = sum(r["warm_recomputes"] for r in rows)
        replayed = (f"; warm replays (mask_threshold {', '.join(f'{t:g}' for t in DEFAULT_MASK_THRESHOLDS)} among them) "
                    f"{'recomputed nothing' if redone == 0 else f'recomputed {redone} embeddings/decodes/stabilities'}")
    print(f"\ncold engine/AMG: worst {max(r['cold_ratio'] for r in timed):.2f}x, best {min(r['cold_ratio'] for r in timed):.2f}x "
          f"(goal <= 1.0x everywhere, 0.75x where reachable); warm replay vs AMG: worst "
          f"{min(r['warm_speedup'] for r in timed):.0f}x (goal >= 1000x), reading every mask too: worst "
          f"{min(r['warm_read_speedup'] for r in timed):.0f}x; identical outputs: "
          f"{'all' if all(r['identical'] for r in timed) else 'NO'}" + replayed)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"args": asdict(args), "rows": rows, "front_pass_s": passes}, fh, indent=1)
    return 0 if all(r["identical"] for r in timed) else 1


if __name__ == "__main__":
    raise SystemExit(main())
