"""Benchmark: MaskEngine vs. a fresh SamAutomaticMaskGenerator per evaluation, on a tuner-like sequence.

Run ``python benchmarks/bench_engine.py`` (about ten minutes on 2 CPU cores) or ``--quick`` (under a
minute). Both runs happen in this one process, on the same image, model and parameter sequence;
every engine output is checked against the naive one (masks, boxes, areas, points and crop boxes
identical; predicted IoU and stability to 1e-6).

A tuner on the default ParamSpace mostly moves thresholds; it changes points_per_side rarely. The
sequence therefore draws a few points_per_side values and, for each evaluation, fresh thresholds
(pred_iou, stability and its offset on the ParamSpace grid, both NMS thresholds, min_mask_region_area).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator


@dataclass(frozen=True)
class Args:
    quick: bool = False
    """small run (256 px image, 12 evaluations, smaller grids) to check the script"""
    size: int = 512
    """side of the synthetic micrograph in pixels"""
    n_evals: int = 48
    """number of parameter evaluations in the tuner-like sequence (>= 40)"""
    points_per_side: tuple[int, ...] = (8, 12)
    """the few points_per_side values the tuner visits"""
    model: str = "auto"
    """"auto" (samstar-tiny if its weights exist, else random), "random", or a checkpoint path / registered name"""
    seed: int = 0
    """seed of the image and of the parameter sequence"""
    threads: int = 2
    """torch CPU threads"""
    json_out: str = ""
    """optional path for a JSON file with every timing"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Args):
        if f.type in ("bool", bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true")
        elif f.name == "points_per_side":
            parser.add_argument("--points-per-side", type=int, nargs="+", default=list(f.default))
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ns = vars(parser.parse_args())
    ns["points_per_side"] = tuple(ns["points_per_side"])
    args = Args(**ns)
    if args.quick:
        args = Args(quick=True, size=256, n_evals=12, points_per_side=(8, 12), model=args.model, seed=args.seed,
                    threads=args.threads, json_out=args.json_out)
    return args


args = parse_args()
torch.set_num_threads(args.threads)

from samstar_env.engine import MaskEngine  # noqa: E402  (after the thread setting)
from samstar_env.engine.testing import structure_random_sam  # noqa: E402
from samstar_env.models import build_tiny_sam, list_models, load_sam  # noqa: E402
from samstar_env.params import AmgParams, ParamSpace  # noqa: E402

# --- the image -------------------------------------------------------------------------------------
try:
    from samstar_env.data.synthetic import generate as synth

    micrograph = synth("perovskite", seed=args.seed, size=(args.size, args.size))
    image_source = f"synthetic perovskite micrograph (seed {args.seed})"
    rgb = micrograph.to_rgb_uint8()
except ImportError:
    rng0 = np.random.default_rng(args.seed)
    yy, xx = np.mgrid[: args.size, : args.size]
    grey = np.full((args.size, args.size), 60.0)
    for _ in range(60):
        cy, cx, r = rng0.uniform(0, args.size, 2).tolist() + [rng0.uniform(6, 20)]
        grey[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng0.uniform(150, 230)
    rgb = np.repeat((grey + rng0.normal(0, 10, grey.shape)).clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    image_source = "FALLBACK random discs (samstar_env.data.synthetic not available)"

# --- the model -------------------------------------------------------------------------------------
tiny = next(m for m in list_models() if m.name == "samstar-tiny")
use_random = args.model == "random" or (args.model == "auto" and not tiny.available)
if not use_random:
    name = "samstar-tiny" if args.model == "auto" else args.model
    model = load_sam(name, device="cpu")
    model_source = f"{name} (loaded weights)"
else:
    # Plain random weights give one whole-image mask per crop; structure them so that the comparison
    # (and the replay work) is realistic: dozens of localized masks per evaluation.
    model = structure_random_sam(build_tiny_sam(seed=0), rgb, foreground_percentile=95.0)
    model_source = ("build_tiny_sam(seed=0) RANDOM weights, structured by samstar_env.engine.testing."
                    "structure_random_sam " + ("(samstar-tiny weights not present yet)" if not tiny.available else "(--model random)"))

# --- the tuner-like parameter sequence --------------------------------------------------------------
rng = np.random.default_rng(args.seed)
space = ParamSpace.subset(
    ["pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "min_mask_region_area"],
    base=AmgParams(crop_n_layers=0),
)
sequence: list[AmgParams] = []
for i in range(args.n_evals):
    pps = args.points_per_side[i % len(args.points_per_side)] if i < len(args.points_per_side) else int(rng.choice(args.points_per_side))
    p = space.sample(rng).replace(points_per_side=pps)
    # A random-weight model predicts low IoU and stability; keep thresholds where some masks survive.
    if use_random:
        p = p.replace(pred_iou_thresh=float(rng.uniform(0.0, 0.6)), stability_score_thresh=float(rng.uniform(0.3, 0.9)))
    sequence.append(p)
structural = [(p.points_per_side, p.points_per_batch) for p in sequence]
threshold_only = [structural[i] in structural[:i] for i in range(len(sequence))]


def digest(records: list[dict]) -> tuple[str, np.ndarray]:
    """Exact hash of masks and geometry, plus the scores (compared to 1e-6)."""
    h = hashlib.sha256()
    for r in records:
        h.update(np.packbits(r["segmentation"]).tobytes())
        h.update(json.dumps([r["area"], [float(v) for v in r["bbox"]], r["point_coords"], [float(v) for v in r["crop_box"]]]).encode())
    scores = np.array([[r["predicted_iou"], r["stability_score"]] for r in records], np.float64).reshape(-1, 2)
    return h.hexdigest(), scores


# --- run 1: naive -------------------------------------------------------------------------------------
print(f"image: {image_source}, {rgb.shape[1]}x{rgb.shape[0]}\nmodel: {model_source}")
print(f"sequence: {len(sequence)} evaluations, points_per_side in {sorted(set(args.points_per_side))}, "
      f"{sum(threshold_only)} threshold-only; torch threads {args.threads}; {platform.processor() or platform.machine()}")
naive_t, naive_d = [], []
for p in sequence:
    t0 = time.perf_counter()
    records = SamAutomaticMaskGenerator(model, **p.to_kwargs()).generate(rgb)
    naive_t.append(time.perf_counter() - t0)
    naive_d.append(digest(records))
    del records

# --- run 2: engine --------------------------------------------------------------------------------------
engine = MaskEngine(model)
eng_t, n_masks, mismatches = [], [], []
for i, p in enumerate(sequence):
    t0 = time.perf_counter()
    masks = engine.generate(rgb, p)
    eng_t.append(time.perf_counter() - t0)
    h, s = digest(masks.to_amg_records())
    n_masks.append(len(masks))
    if h != naive_d[i][0] or s.shape != naive_d[i][1].shape or not np.allclose(s, naive_d[i][1], rtol=0, atol=1e-6, equal_nan=True):
        mismatches.append(i)

# --- report ----------------------------------------------------------------------------------------------
naive_t, eng_t, thr = np.array(naive_t), np.array(eng_t), np.array(threshold_only)


def row(name: str, sel: np.ndarray) -> str:
    if not sel.any():
        return f"{name:<26} {'-':>6}"
    a, b = naive_t[sel], eng_t[sel]
    return (f"{name:<26} {sel.sum():>6} {np.median(a) * 1e3:>12.1f} {np.median(b) * 1e3:>12.2f} "
            f"{np.median(a) / np.median(b):>10.1f}x {a.sum():>10.1f} {b.sum():>10.2f} {a.sum() / b.sum():>9.1f}x")


print()
print(f"{'evaluations':<26} {'n':>6} {'naive med ms':>12} {'engine med ms':>12} {'med ratio':>11} "
      f"{'naive tot s':>10} {'engine tot s':>10} {'tot ratio':>10}")
print(row("all", np.ones(len(sequence), bool)))
print(row("threshold-only", thr))
print(row("new points grid (miss)", ~thr))
st = engine.stats
print(f"\nmasks per evaluation: median {int(np.median(n_masks))}, min {min(n_masks)}, max {max(n_masks)}; "
      f"outputs equal: {'YES' if not mismatches else f'NO, {len(mismatches)} differ: {mismatches}'}")
print(f"engine: {st.proposal_misses} decodes, {st.proposal_hits} proposal hits, {st.stability_recomputes} stability re-decodes, "
      f"cache {st.cache_bytes / 2**20:.1f} MiB in {st.cache_entries} entries; seconds per stage "
      + ", ".join(f"{k} {v:.2f}" for k, v in st.seconds.items()))
goals = (naive_t.sum() / eng_t.sum() >= 20, np.median(naive_t[thr]) / np.median(eng_t[thr]) >= 100 if thr.any() else False)
print(f"goals: >=20x overall (totals) {'met' if goals[0] else 'NOT met'}; >=100x threshold-only (medians) {'met' if goals[1] else 'NOT met'}")
if args.json_out:
    with open(args.json_out, "w", encoding="utf-8") as fh:
        json.dump({"args": asdict(args), "image": image_source, "model": model_source, "naive_s": naive_t.tolist(),
                   "engine_s": eng_t.tolist(), "threshold_only": thr.tolist(), "n_masks": n_masks,
                   "mismatches": mismatches, "engine_stats": st.as_dict()}, fh, indent=1)
sys.exit(1 if mismatches else 0)
