"""Benchmark: `samstar cache warm` per registered env id, then the cost of random env steps.

Run ``python benchmarks/scripts/bench_env.py`` (about 10 minutes per task on 2 CPU cores with
samstar-tiny) or ``--tasks perovskite --steps 20``. For each task it

1. warms the env's default space (``samstar cache warm TASK``: every crop and point grid of
   ``ParamSpace.env_default()`` on the tune image) and prints the estimate and the time it took;
2. makes the README's environment (``gym.make("samstar/<Task>-v4")``) in a fresh engine reading that
   cache, and times ``env.step(env.action_space.sample())`` for random actions: first, median, max;
3. steps through the corner of the space that keeps the most masks (points_per_side 64, crop layer
   1 at downscale 1, pred_iou 0, the lowest stability, the highest NMS thresholds) at every
   ``min_mask_region_area``: with the default mask budget (``max_masks=1000``) and, once, without
   it (``max_masks=None``), the cost the budget avoids;
4. runs Gymnasium's ``check_env`` on the scalarized env and times it.

The cache folder is ``SAMSTAR_CACHE`` (default: the user cache folder) or ``--cache-dir``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from script_args import parse_dataclass_args


@dataclass(frozen=True)
class Args:
    tasks: tuple[str, ...] = ("perovskite", "ito", "auco")
    """registered tasks to measure"""
    steps: int = 50
    """random steps per task after warming"""
    seed: int = 0
    """seed of the env and its action space"""
    cache_dir: str = ""
    """cache folder (default: SAMSTAR_CACHE or the user cache folder)"""
    threads: int = 2
    """torch CPU threads"""


def parse_args(argv: list[str] | None = None) -> Args:
    return Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cache_dir:
        os.environ["SAMSTAR_CACHE"] = args.cache_dir
    import gymnasium as gym
    import numpy as np
    import torch
    from gymnasium.utils.env_checker import check_env

    torch.set_num_threads(args.threads)
    import samstar_env  # noqa: F401  (registers the ids)
    from samstar_env.cache import resolve_task, warm
    from samstar_env.engine import default_cache_dir
    from samstar_env.problem import clear_shared_engines
    from samstar_env.wrappers import ScalarizeReward

    ids = {"perovskite": "samstar/Perovskite-v4", "ito": "samstar/ITO-v4", "auco": "samstar/AuCo-v4"}
    print(f"cache: {default_cache_dir()}; torch {torch.__version__}, {args.threads} threads")
    rows = []
    for task_name in args.tasks:
        task = resolve_task(task_name)
        t0 = time.perf_counter()
        report = warm(task, progress=False)
        warm_s = time.perf_counter() - t0
        clear_shared_engines()  # the env below starts from the disk cache, as a new process would
        env = gym.make(ids[task_name])
        env.reset(seed=args.seed)
        env.action_space.seed(args.seed)
        times, slowest = [], None
        for _ in range(args.steps):
            t0 = time.perf_counter()
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            times.append(time.perf_counter() - t0)
            if slowest is None or times[-1] > slowest[0]:
                engine_s = sum(v for k, v in env.unwrapped.last_cost.engine.items() if k.startswith("seconds."))
                slowest = (times[-1], info["params"], info["n_masks"], engine_s)
            if terminated or truncated:
                env.reset()
        u = env.unwrapped
        dims = {d.name: d for d in u.space.dimensions}
        corner = u.space.decode(np.zeros(u.space.dim)).replace(
            points_per_side=64, crop_n_layers=1, crop_n_points_downscale_factor=1, pred_iou_thresh=0.0,
            stability_score_thresh=dims["stability_score_thresh"].low, box_nms_thresh=dims["box_nms_thresh"].high,
            crop_nms_thresh=dims["crop_nms_thresh"].high)
        corner_t = []
        for area in dims["min_mask_region_area"].choices:
            env.reset()
            t0 = time.perf_counter()
            _, _, _, _, info = env.step(u.space.encode(corner.replace(min_mask_region_area=area)))
            corner_t.append((time.perf_counter() - t0, info["n_masks"], area))
        free = gym.make(ids[task_name], max_masks=None)
        free.reset(seed=args.seed)
        t0 = time.perf_counter()
        _, _, _, _, info = free.step(u.space.encode(corner.replace(min_mask_region_area=0)))
        free_s, free_n = time.perf_counter() - t0, info["n_masks"]
        decodes = u.problem.engine.stats.proposal_misses
        t0 = time.perf_counter()
        check_env(ScalarizeReward(gym.make(ids[task_name])), skip_render_check=True)
        check_s = time.perf_counter() - t0
        t = np.array(times)
        worst_corner = max(corner_t)
        t = np.append(t, [c[0] for c in corner_t])
        rows.append((task_name, report, warm_s, t, decodes, check_s))
        print(f"{ids[task_name]}: warm {report.decoded} decodes ({report.already_cached} already cached) in {warm_s:.0f} s; "
              f"{args.steps} random steps: first {t[0]:.2f} s, median {np.median(t):.3f} s, max {t.max():.2f} s, "
              f"decodes during the steps {decodes}; check_env {check_s:.1f} s", flush=True)
        _, p, n, engine_s = slowest
        print(f"  slowest step: {n} masks (points_per_side {p.points_per_side}, crop_n_layers {p.crop_n_layers}, "
              f"pred_iou {p.pred_iou_thresh:.2f}, stability {p.stability_score_thresh:.2f}, min_mask_region_area "
              f"{p.min_mask_region_area}); engine {engine_s:.2f} s, the rest (rewards, observation) "
              f"{slowest[0] - engine_s:.2f} s", flush=True)
        print(f"  loosest corner (points_per_side 64, crop layer 1, pred_iou 0, max NMS), each min_mask_region_area: "
              f"slowest {worst_corner[0]:.2f} s ({worst_corner[1]} masks, over the budget of {u.max_masks}); "
              f"without the budget (max_masks=None) one such step took {free_s:.1f} s to score {free_n} masks", flush=True)
    worst = max(r[3].max() for r in rows)
    print(f"\nslowest step after warming, random and corner actions: {worst:.2f} s (goal <= 1 s); slowest warm: {max(r[2] for r in rows) / 60:.1f} min "
          "(goal <= 10 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
