"""``samstar train-policy TASK|task.toml``: train an amortized policy (one step: image -> AMG parameters)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from samstar_env.errors import InputError
from samstar_env.policy.pool import POOL_TEST, POOL_TRAIN


def _weights(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise InputError(f"train-policy: --weights must be comma-separated numbers, one per reward, got {text!r}") from None


def default_workers() -> int:
    """Env worker processes by default: one per core, at most 4 (measured on 2 cores: 2 workers made
    1.41x the steps per second of 1; ``benchmarks/scripts/amortized.py --throughput``)."""
    return max(1, min(4, os.cpu_count() or 1))


def _run(args: argparse.Namespace) -> int:
    from samstar_env.policy.train import PolicyTrainConfig, train_policy

    config = PolicyTrainConfig(
        task=args.task, out=args.out, algo=args.algo, steps=args.steps, weights=_weights(args.weights),
        obs_mode=args.obs, thumbnail_size=args.thumbnail_size, n_train=args.pool_size, n_test=args.test_size,
        size=args.size, model=args.model, seed=args.seed, workers=args.workers or default_workers(),
        checkpoint_every=args.checkpoint_every,
    )
    train_policy(config, resume=args.resume)
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar train-policy``."""
    p = subparsers.add_parser(
        "train-policy", help="train an amortized policy: image -> AMG parameters in one step",
        description=__doc__.split("\n\n")[0] + " The pool is warmed first (its cost is printed); every training "
        "step is then a cached replay. Writes policy.zip + policy.json (use with `samstar segment --policy` and "
        "`samstar stream --policy`), held_out.json, checkpoints/ and TensorBoard logs in tb/.",
    )
    p.add_argument("task", help="perovskite, ito, auco or a task .toml file (its last images are held out)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--algo", choices=("ppo", "sac"), default="ppo", help="stable-baselines3 algorithm (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20_000, help="environment steps, one evaluation each (default: %(default)s)")
    p.add_argument("--weights", default=None, help="comma-separated scalarization weights, one per reward (default: the preset's)")
    p.add_argument("--obs", choices=("features", "thumbnail"), default="features",
                   help="what the policy sees: image descriptors (MLP), or descriptors + a thumbnail (CNN) (default: %(default)s)")
    p.add_argument("--thumbnail-size", type=int, default=64, help="thumbnail side with --obs thumbnail (default: %(default)s)")
    p.add_argument("--pool-size", type=int, default=POOL_TRAIN, help="training images (default: %(default)s)")
    p.add_argument("--test-size", type=int, default=POOL_TEST, help="held-out images (default: %(default)s)")
    p.add_argument("--size", type=int, default=512, help="side of the synthetic images, pixels (default: %(default)s)")
    p.add_argument("--model", default=None, help="model name or checkpoint path (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="environment processes (default: one per core, at most 4)")
    p.add_argument("--checkpoint-every", type=int, default=2048, help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.set_defaults(func=_run)
