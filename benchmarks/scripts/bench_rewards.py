"""Benchmark: milliseconds per reward call for ~300 masks on a 512x512 micrograph.

Run ``python benchmarks/scripts/bench_rewards.py`` (about 20 s on 2 CPU cores). Prints, read top to
bottom:

1. the one-off per-IMAGE cost (foreground estimate, gradient, LoG blob counts), paid once per
   micrograph for a whole tuning run (cached on the Micrograph);
2. the per-MASKSET cost of :func:`samstar_env.rewards.mask_geometry`: its eager part (each mask's
   pixels, area, flags), paid at every evaluation, and the first read of each lazily measured
   feature alone (shape features, pairwise intersections), paid only when a reward of the suite
   reads it;
3. each reward's own cost once both caches are warm (what a suite adds per reward);
4. each task preset evaluated on a fresh MaskSet (the real per-step cost of the environment), on
   that task's own micrograph, prior and masks, side by side with the eager path (every shape
   feature measured for every mask first, as before the geometry became lazy); the target of
   issue 5 is <= 20 ms per reward.

The masks are the ground truth of a synthetic micrograph plus eroded duplicates of some of them, to
reach ``n_masks`` (perovskite: dense touching cubes, ~20 px; ito: large grains, ~50 px, the costliest
per mask; auco: many 3-10 px particles and a few aggregates).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from script_args import parse_dataclass_args

from samstar_env.data.synthetic import generate, prior
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards import get_reward, list_rewards, mask_geometry, preset
from samstar_env.rewards.geometry import SHAPE_FEATURES, image_features

#: Lazily measured MaskGeometry attributes timed in section 2 (shape features and pair overlaps).
LAZY_FEATURES = (*SHAPE_FEATURES, "intersections_px", "union", "centroid_rc")


@dataclass(frozen=True)
class Args:
    task: str = "perovskite"
    """synthetic task whose image and ground truth are used in sections 1-3 (and for the generic preset)"""
    size: int = 512
    """side of the micrograph in pixels"""
    n_masks: int = 300
    """number of masks (ground truth plus eroded duplicates)"""
    repeats: int = 5
    """timed repetitions per measurement (the median is reported)"""
    seed: int = 0
    """seed of the micrograph"""
    preset_data: str = "own"
    """section 4: 'own' runs each preset on its own task's data, 'task' runs all on --task's"""


def parse_args(argv: list[str] | None = None) -> Args:
    return Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))


def build_masks(m, n: int) -> np.ndarray:
    gt = MaskSet.from_labels(m.labels).masks
    extra = []
    for k in range(max(0, n - len(gt))):
        extra.append(ndi.binary_erosion(gt[k % len(gt)], iterations=1))
    return np.concatenate([gt, np.array(extra).reshape(-1, *gt.shape[1:])])[:n]


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def fresh(ms: MaskSet) -> MaskSet:
    """A new MaskSet object with the same arrays: nothing cached for it yet (the caches are per object)."""
    return dataclasses.replace(ms)


def run(args: Args) -> None:
    m = generate(args.task, args.seed, size=(args.size, args.size))
    p = prior(args.task)
    masks = build_masks(m, args.n_masks)
    params = AmgParams(points_per_side=32)
    print(f"{args.task} seed {args.seed}: {masks.shape[0]} masks on {args.size}x{args.size}, median of {args.repeats}")

    # 1. per-image caches (a fresh Micrograph each time so nothing is cached)
    def image_once():
        mm = type(m)(image=m.image, pixel_size_nm=m.pixel_size_nm, modality=m.modality)
        image_features(mm, p)
        get_reward("count_plausibility")(MaskSet.from_masks(masks[:1]), mm, p)
        get_reward("small_particle_detection")(MaskSet.from_masks(masks[:1]), mm, p)

    print(f"  per-image caches (foreground, gradient, LoG counts): {median_ms(image_once, args.repeats):8.1f} ms (once per image)")

    # 2. per-MaskSet geometry: the eager part, then the first read of each lazy feature alone
    ms = MaskSet.from_masks(masks)
    print(f"  mask_geometry, eager part (per MaskSet, shared):     {median_ms(lambda: mask_geometry(fresh(ms)), args.repeats):8.1f} ms")
    for name in LAZY_FEATURES:
        sets = [mask_geometry(fresh(ms)) for _ in range(args.repeats)]
        it = iter(sets)
        print(f"    first read of {name:36s} {median_ms(lambda name=name, it=it: getattr(next(it), name), args.repeats):8.1f} ms")

    # 3. each reward with warm caches
    mask_geometry(ms)
    print("  reward (warm caches)                 ms/call")
    for name in list_rewards():
        fn = get_reward(name)
        kw = {"params": params} if name == "latency" else {}
        fn(ms, m, p, **kw)
        print(f"    {name:32s} {median_ms(lambda fn=fn, kw=kw: fn(ms, m, p, **kw), args.repeats):8.2f}")

    # 4. whole presets on a fresh MaskSet (geometry included), lazy and eager interleaved so that
    #    both see the same load (the 2 cores are shared)
    print("  preset on a fresh MaskSet      rewards |  lazy ms  ms/reward | eager ms  ms/reward | eager/lazy")
    for task in ("perovskite", "ito", "auco", "generic"):
        data_task = task if args.preset_data == "own" and task != "generic" else args.task
        if data_task == args.task:
            tm, tp, tms = m, p, ms
        else:
            tm = generate(data_task, args.seed, size=(args.size, args.size))
            tp, tms = prior(data_task), MaskSet.from_masks(build_masks(tm, args.n_masks))
        suite = preset(task)
        suite.evaluate(fresh(tms), tm, tp)  # warm the per-image caches
        times: dict[str, list[float]] = {"lazy": [], "eager": []}
        for _ in range(args.repeats):
            for mode in times:
                s = fresh(tms)
                t = time.perf_counter()
                if mode == "eager":
                    g = mask_geometry(s)
                    for name in SHAPE_FEATURES:
                        getattr(g, name)
                suite.evaluate(s, tm, tp)
                times[mode].append((time.perf_counter() - t) * 1e3)
        lazy, eager = float(np.median(times["lazy"])), float(np.median(times["eager"]))
        k = suite.reward_dim
        print(f"    {task:10s} on {data_task:10s} {k:4d}    | {lazy:8.1f} {lazy / k:8.1f}   | {eager:8.1f} {eager / k:8.1f}   | {eager / lazy:6.1f}x")
    print("  target (issue 5): <= 20 ms per reward")


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
