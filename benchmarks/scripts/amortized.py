"""Amortized tuning: a trained policy (1 evaluation) against SAM's defaults, random parameters,
per-image NSGA-II (60 evaluations) and the ground-truth oracle, on each task's held-out images.

For each task the policy comes from ``--policy-dir/<task>/policy.zip`` (``samstar train-policy``); when
it is missing the script trains it there first (``--steps``, the pool warmed first). Then, on the
pool's held-out images (the task's ``test`` split, never trained on):

* ``defaults``: SAM's default parameters (``AmgParams()``, 32 points per side);
* ``random``: ``--n-random`` parameter sets drawn from the policy's space, their mean;
* ``policy``: the policy's parameters for the image (one evaluation);
* ``nsga2``: NSGA-II on the image alone with a budget of ``--nsga-budget``, its best scalarized
  evaluation (the reading most favourable to NSGA-II);
* ``oracle``: the best ground-truth F1@0.5 over ``--n-oracle`` random parameter sets of the same space
  plus every point above (labels used: not deployable).

Columns: the task preset's scalarized reward and F1@0.5, means over the images, and the wall time per
image. Rewards and F1 come from the warm cache; the wall times are measured separately, cold, on the
first ``--timing-images`` images with a fresh engine that has no cache (a new micrograph as it
arrives: every decode it needs is paid), so they say what each method costs on a new image.

Drift (``--drift``): the stream's drift monitor with the policy, on 16 in-distribution frames (the
task's ``policy`` seeds after the pool, never trained on) and on 8 test frames of each other task:
the false-alarm rate (in-distribution frames flagged) and the detection rate (other tasks' frames
flagged), for the two level sources ``samstar stream`` offers (the policy's held-out level, and the
first 5 frames).

Run ``python benchmarks/scripts/amortized.py`` (needs samstar-tiny; trains three policies of 20k steps
when none are there: about 20 minutes to warm the three pools and 14 minutes per policy with 2 workers on 2
CPU cores; the tables then take about 11 minutes), ``--quick`` to
check the script.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from script_args import parse_dataclass_args

from samstar_env.agents import make_agent
from samstar_env.data.synthetic import TASKS, generate, split_seeds
from samstar_env.engine import MaskEngine
from samstar_env.models import load_sam
from samstar_env.params import AmgParams
from samstar_env.policy.policy_file import load_policy, policy_suite
from samstar_env.policy.pool import POOL_TEST, POOL_TRAIN, policy_pool
from samstar_env.policy.train import PolicyTrainConfig, scalarize, train_policy
from samstar_env.problem import TuningProblem, shared_engine
from samstar_env.stream.drift import DriftMonitor


@dataclass(frozen=True)
class Args:
    tasks: str = "perovskite,ito,auco"
    """comma-separated synthetic tasks"""
    policy_dir: str = "runs/policy"
    """policies are read from (or trained into) POLICY_DIR/<task>/"""
    steps: int = 20_000
    """training steps of a policy that is not there yet"""
    algo: str = "ppo"
    """algorithm of a policy trained here"""
    obs: str = "features"
    """observation of a policy trained here (features or thumbnail)"""
    n_train: int = POOL_TRAIN
    """training images of a pool"""
    n_test: int = POOL_TEST
    """held-out images judged"""
    size: int = 512
    """image side, pixels"""
    n_random: int = 20
    """random parameter sets per image"""
    nsga_budget: int = 60
    """NSGA-II evaluations per image"""
    n_oracle: int = 200
    """random parameter sets the oracle searches per image (besides every other method's points)"""
    timing_images: int = 4
    """images whose cold wall time is measured per method (0: skip the timing)"""
    drift: bool = True
    """also measure the drift monitor's false-alarm and detection rates"""
    seed: int = 0
    """seed of the random draws and of NSGA-II"""
    throughput: int = 0
    """instead of the tables: train this many steps on the first task's warm pool with 1 and with 2
    env worker processes, side by side, and print steps per second and their ratio"""
    quick: bool = False
    """perovskite only, small pools and budgets: checks the script in minutes"""
    json_out: str = ""
    """optional path for a JSON file with every number"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    if args.quick:
        args = Args(**{**vars(args), "tasks": "perovskite", "steps": 512, "n_train": 8, "n_test": 4, "size": 256,
                       "n_random": 4, "nsga_budget": 16, "n_oracle": 16, "timing_images": 1,
                       "policy_dir": str(Path(args.policy_dir) / "quick")})
    return args


def _policy(task: str, args: Args) -> Any:
    folder = Path(args.policy_dir) / task
    if not (folder / "policy.zip").is_file():
        print(f"[{task}] training a policy into {folder} ({args.steps} steps)", flush=True)
        cfg = PolicyTrainConfig(task=task, out=str(folder), algo=args.algo, steps=args.steps, obs_mode=args.obs,
                                n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed)
        train_policy(cfg, resume=(folder / "train_config.json").is_file())
    return load_policy(folder)


def _evaluate(problem: TuningProblem, image: Any, params: AmgParams, weights: Any) -> dict[str, Any]:
    ev = problem.evaluate(params, images=(image,))
    gt = dict(ev.gt or {})
    return {"scalar": scalarize(problem.task.rewards, ev.rewards, weights), "f1": float(gt.get("f1", np.nan)),
            "masks": int(sum(ev.n_masks)), "params": params}


def _nsga(problem: TuningProblem, image: Any, *, budget: int, seed: int, weights: Any) -> tuple[AmgParams, float]:
    """NSGA-II on one image; its best scalarized evaluation and the run's wall time."""
    one = TuningProblem(problem.task.replace(images=(image,)), engine=problem.engine, max_masks=problem.max_masks)
    t0 = time.perf_counter()
    res = make_agent("nsga2").run(one, budget=budget, seed=seed)
    secs = time.perf_counter() - t0
    best = max(res.trials, key=lambda t: scalarize(problem.task.rewards, t.rewards, weights))
    return best.params, secs


def judge_task(task: str, args: Args, engine: MaskEngine, cold_model: Any) -> dict[str, Any]:
    policy = _policy(task, args)
    weights = policy.info.weights
    pool = policy_pool(task, n_train=args.n_train, n_test=args.n_test, size=args.size)
    policy.check_compatible(space=pool.space, reward_names=pool.rewards.names, where="amortized.py")
    problem = TuningProblem(pool, gt_metrics=True, engine=engine)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in ("defaults", "random", "policy", "nsga2", "oracle")}
    for i, im in enumerate(pool.test_images):
        d = _evaluate(problem, im, AmgParams(), weights)
        rnd = [_evaluate(problem, im, pool.space.sample(rng), weights) for _ in range(args.n_random)]
        pol = _evaluate(problem, im, policy.propose(im).params, weights)
        nsga_params, _ = _nsga(problem, im, budget=args.nsga_budget, seed=args.seed + i, weights=weights)
        ns = _evaluate(problem, im, nsga_params, weights)
        extra = [_evaluate(problem, im, pool.space.sample(rng), weights) for _ in range(args.n_oracle)]
        best = max([d, pol, ns, *rnd, *extra], key=lambda r: r["f1"])
        rows["defaults"].append(d)
        rows["random"].append({"scalar": float(np.mean([r["scalar"] for r in rnd])), "f1": float(np.mean([r["f1"] for r in rnd])),
                               "masks": float(np.mean([r["masks"] for r in rnd]))})
        rows["policy"].append(pol)
        rows["nsga2"].append(ns)
        rows["oracle"].append(best)
        print(f"[{task}] {im.name}: policy {pol['scalar']:.3f} / F1 {pol['f1']:.3f}; nsga2 {ns['scalar']:.3f} / F1 {ns['f1']:.3f}; "
              f"random {rows['random'][-1]['scalar']:.3f}; oracle F1 {best['f1']:.3f}", flush=True)
    times = _cold_times(pool, policy, args, cold_model, weights)
    table = {
        m: {"scalar": float(np.mean([r["scalar"] for r in rs])), "f1": float(np.mean([r["f1"] for r in rs])),
            "scalar_se": float(np.std([r["scalar"] for r in rs], ddof=1) / np.sqrt(len(rs))) if len(rs) > 1 else float("nan"),
            "masks": float(np.mean([r["masks"] for r in rs])), "seconds": times.get(m)}
        for m, rs in rows.items()
    }
    out = {"task": task, "images": len(pool.test_images), "table": table, "policy": str(policy.path),
           "policy_steps": policy.info.steps, "train_seconds": policy.info.extra.get("train_seconds")}
    if args.drift:
        out["drift"] = _drift(task, policy, args, engine)
    return out


def _cold_times(pool: Any, policy: Any, args: Args, cold_model: Any, weights: Any) -> dict[str, float]:
    """Mean cold wall time per image of each deployable method, on a fresh engine without a cache."""
    if args.timing_images <= 0:
        return {}
    ims = pool.test_images[: args.timing_images]
    rng = np.random.default_rng(args.seed + 7)
    out: dict[str, list[float]] = {"defaults": [], "random": [], "policy": [], "nsga2": []}
    def fresh(im: Any) -> TuningProblem:
        return TuningProblem(pool.replace(images=(im,)), engine=MaskEngine(cold_model))

    for i, im in enumerate(ims):
        p = fresh(im)
        t0 = time.perf_counter()
        p.evaluate(AmgParams(), images=(im,))
        out["defaults"].append(time.perf_counter() - t0)
        p = fresh(im)
        t0 = time.perf_counter()
        for _ in range(args.n_random):
            p.evaluate(pool.space.sample(rng), images=(im,))
        out["random"].append(time.perf_counter() - t0)
        p = fresh(im)
        t0 = time.perf_counter()
        p.evaluate(policy.propose(im).params, images=(im,))
        out["policy"].append(time.perf_counter() - t0)
        p = fresh(im)
        t0 = time.perf_counter()
        _nsga(p, im, budget=args.nsga_budget, seed=args.seed + i, weights=weights)
        out["nsga2"].append(time.perf_counter() - t0)
    return {k: float(np.mean(v)) for k, v in out.items()}


def _drift(task: str, policy: Any, args: Args, engine: MaskEngine) -> dict[str, Any]:
    """False alarms on in-distribution frames, detections on other tasks' frames, per level source."""
    n_in = 4 if args.quick else 16
    n_other = 2 if args.quick else 8
    seeds = split_seeds(task, "policy")[args.n_train: args.n_train + n_in]
    size = (args.size, args.size)
    inside = [generate(task, seed=s, size=size) for s in seeds]
    others = [generate(t, seed=s, size=size) for t in TASKS if t != task for s in split_seeds(t, "test")[:n_other]]
    suite, prior = policy_suite(policy.info), policy.info.prior
    held = dict((policy.info.held_out or {}).get("rewards", {}))
    out: dict[str, Any] = {"in_distribution_frames": len(inside), "other_task_frames": len(others)}
    for source in ("policy", "frames"):
        mon = DriftMonitor(suite, prior, tuned_level=held if source == "policy" else None, baseline_frames=5,
                           tolerance=0.1, level_source=source)
        flags_in = [mon.check(engine.generate(im, p), im, p).flagged for im in inside for p in [policy.propose(im).params]]
        # Frames that built the baseline are never flagged: the rate is over the rest.
        judged_in = flags_in if source == "policy" else flags_in[5:]
        flags_other = []
        for im in others:
            # The level as the in-distribution stream left it (a baseline of in-distribution frames).
            p = policy.propose(im).params
            flags_other.append(mon.check(engine.generate(im, p), im, p).flagged)
        out[source] = {"false_alarm_rate": float(np.mean(judged_in)) if judged_in else float("nan"),
                       "detection_rate": float(np.mean(flags_other)) if flags_other else float("nan"),
                       "judged_in": len(judged_in)}
    return out


def _fmt_s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def throughput(task: str, args: Args) -> int:
    """Training steps per second with 1 and 2 env worker processes (fresh runs, same seed)."""
    import tempfile

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            cfg = PolicyTrainConfig(task=task, out=f"{tmp}/w{workers}", algo=args.algo, steps=args.throughput, obs_mode=args.obs,
                                    n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed, workers=workers,
                                    checkpoint_every=10 * args.throughput)
            t0 = time.perf_counter()
            rep = train_policy(cfg, log=lambda _line: None)
            rates[workers] = rep.steps / rep.seconds
            print(f"[{task}] workers {workers}: {rep.steps} steps in {rep.seconds:.0f} s ({rates[workers]:.1f} steps/s; "
                  f"{time.perf_counter() - t0:.0f} s with warm check and held-out evaluation)", flush=True)
    print("\n| task | steps | workers 1 (steps/s) | workers 2 (steps/s) | ratio | 20k steps with 2 workers |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {task} | {args.throughput} | {rates[1]:.1f} | {rates[2]:.1f} | {rates[2] / rates[1]:.2f} | "
          f"{20_000 / rates[2] / 60:.1f} min |")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.throughput > 0:
        return throughput(tasks[0], args)
    engine = shared_engine("samstar-tiny")
    cold_model = load_sam("samstar-tiny")
    results = []
    t0 = time.perf_counter()
    for task in tasks:
        results.append(judge_task(task, args, engine, cold_model))
    print(f"\nAmortized tuning on held-out images (samstar-tiny, 2 CPU cores, {time.perf_counter() - t0:.0f} s in all); "
          "scalarized reward (preset weights) and F1@0.5, means over the images; seconds per new image, cold")
    print("| task | method | evaluations | scalar reward | F1@0.5 | masks | s / image (cold) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    evals = {"defaults": "1", "random": f"1 (mean of {args.n_random})", "policy": "1", "nsga2": str(args.nsga_budget),
             "oracle": f"{args.n_oracle}+ (labels)"}
    for r in results:
        for m, row in r["table"].items():
            print(f"| {r['task']} | {m} | {evals[m]} | {row['scalar']:.3f} ± {row['scalar_se']:.3f} | {row['f1']:.3f} | "
                  f"{row['masks']:.0f} | {_fmt_s(row['seconds'])} |")
    print("\n| task | policy / nsga2 scalar | policy / oracle F1 | policy beats random | policy beats defaults |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        t = r["table"]
        print(f"| {r['task']} | {t['policy']['scalar'] / max(t['nsga2']['scalar'], 1e-12):.2f} | "
              f"{t['policy']['f1'] / max(t['oracle']['f1'], 1e-12):.2f} | {t['policy']['scalar'] > t['random']['scalar']} | "
              f"{t['policy']['scalar'] > t['defaults']['scalar']} |")
    if args.drift:
        print("\nDrift monitor with the policy (tolerance 0.1): false alarms on new in-distribution frames, "
              "detections on other tasks' frames")
        print("| task | level | false-alarm rate | detection rate |")
        print("| --- | --- | --- | --- |")
        for r in results:
            d = r["drift"]
            for source in ("policy", "frames"):
                print(f"| {r['task']} | {source} | {d[source]['false_alarm_rate']:.2f} ({d[source]['judged_in']} frames) | "
                      f"{d[source]['detection_rate']:.2f} ({d['other_task_frames']} frames) |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
