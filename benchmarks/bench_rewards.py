"""Benchmark: milliseconds per reward call for ~300 masks on a 512x512 micrograph.

Run ``python benchmarks/bench_rewards.py`` (about half a minute on 2 CPU cores). Prints, read top to
bottom:

1. the one-off per-IMAGE cost (foreground estimate, gradient, LoG blob counts), paid once per
   micrograph for a whole tuning run (cached on the Micrograph);
2. the per-MASKSET cost of :func:`samstar_env.rewards.mask_geometry` (per-mask measurements on box
   crops), paid once per evaluation and shared by every reward;
3. each reward's own cost once both caches are warm (what a suite adds per reward);
4. a whole preset evaluated on a fresh MaskSet (the real per-step cost of the environment).

The masks are the ground truth of a synthetic perovskite micrograph (dense touching cubes) plus
eroded duplicates of some of them, to reach ``n_masks``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage as ndi

from samstar_env.data.synthetic import generate, prior
from samstar_env.engine.maskset import MaskSet
from samstar_env.params import AmgParams
from samstar_env.rewards import get_reward, list_rewards, mask_geometry, preset
from samstar_env.rewards.geometry import image_features


@dataclass(frozen=True)
class Args:
    task: str = "perovskite"
    """synthetic task whose image and ground truth are used"""
    size: int = 512
    """side of the micrograph in pixels"""
    n_masks: int = 300
    """number of masks (ground truth plus eroded duplicates)"""
    repeats: int = 5
    """timed repetitions per measurement (the median is reported)"""
    seed: int = 0
    """seed of the micrograph"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


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


def main(args: Args) -> None:
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

    # 2. per-MaskSet geometry
    sets = [MaskSet.from_masks(masks) for _ in range(args.repeats)]
    it = iter(sets)
    print(f"  mask_geometry (per MaskSet, shared):                 {median_ms(lambda: mask_geometry(next(it)), args.repeats):8.1f} ms")

    # 3. each reward with warm caches
    ms = MaskSet.from_masks(masks)
    mask_geometry(ms)
    print("  reward (warm caches)                 ms/call")
    for name in list_rewards():
        fn = get_reward(name)
        kw = {"params": params} if name == "latency" else {}
        fn(ms, m, p, **kw)
        print(f"    {name:32s} {median_ms(lambda fn=fn, kw=kw: fn(ms, m, p, **kw), args.repeats):8.2f}")

    # 4. whole presets on a fresh MaskSet (geometry included)
    for task in ("perovskite", "ito", "auco", "generic"):
        suite = preset(task)
        fresh = iter([MaskSet.from_masks(masks) for _ in range(args.repeats)])
        t = median_ms(lambda suite=suite, fresh=fresh: suite.evaluate(next(fresh), m, p), args.repeats)
        print(f"  preset {task:10s} ({suite.reward_dim} rewards, fresh MaskSet): {t:8.1f} ms  = {t / suite.reward_dim:6.1f} ms/reward")


if __name__ == "__main__":
    main(parse_args())
