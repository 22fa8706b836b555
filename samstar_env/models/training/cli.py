"""``samstar train-model``: the command line of the training recipe (an application, above ``models``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from samstar_env.errors import MissingFileError
from samstar_env.models.training.config import TrainConfig, config_from_dict, load_recipe
from samstar_env.models.training.loop import train

DESCRIPTION = "Training recipe for samstar-tiny: promptable segmentation training as SAM was trained."


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``samstar train-model``."""
    d = TrainConfig()
    p = subparsers.add_parser(
        "train-model",
        help="train a small SAM (samstar-tiny) on synthetic + emps-train micrographs",
        description=DESCRIPTION,
    )
    p.add_argument("--run-dir", default=d.run_dir, help="checkpoints, logs and synthetic cache (default %(default)s)")
    p.add_argument("--output", default=None, help="final weights path (default <run-dir>/samstar_tiny.pt)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of init and data sampling (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="optimizer steps (default %(default)s)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops and exports weights")
    p.add_argument("--schedule", choices=("steps", "time"), default=d.schedule, help="anneal over steps or over --max-minutes")
    p.add_argument("--images-per-step", type=int, default=d.images_per_step, help="images per step (default %(default)s)")
    p.add_argument("--prompts-per-image", type=int, default=d.prompts_per_image, help="prompts per image (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="warm-up steps (default %(default)s)")
    p.add_argument("--tasks", default=",".join(d.tasks), help="synthetic tasks, comma-separated ('' for none)")
    p.add_argument("--shapes-fraction", type=float, default=d.shapes_fraction, help="share of crude drawn particles, the curriculum's first stage (default %(default)s)")
    p.add_argument("--synthetic-pool", type=int, default=d.synthetic_pool, help="synthetic images per task (default %(default)s)")
    p.add_argument("--real-fraction", type=float, default=d.real_fraction, help="share of emps-train images (default %(default)s)")
    p.add_argument("--checkpoint-minutes", type=float, default=d.checkpoint_minutes, help="checkpoint interval (default %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="device (default %(default)s)")
    p.add_argument("--data-workers", type=int, default=d.data_workers, help="processes drawing batches, e.g. on a GPU machine (default %(default)s: in the loop)")
    p.add_argument("--attn-match-init", type=float, default=d.attn_match_init, help="decoder attention init k=q=scale*q; 0 for PyTorch's init (default %(default)s)")
    p.add_argument("--init-weights", default=None, help="start from these weights (fine-tuning) instead of random init")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    p.add_argument("--stop-at-step", type=int, default=None, help="stop (checkpoint and export) at this step without changing the schedule, as an interruption would")
    p.add_argument(
        "--recipe",
        default=None,
        help="a TrainConfig JSON (e.g. samstar_env/models/recipes/*.json, or a run's config.json): every field "
        "comes from it except --run-dir, --output, --init-weights, --max-minutes, --threads, --device and --data-workers when given",
    )
    p.set_defaults(func=_run_cli)


def _recipe_config(args: argparse.Namespace) -> TrainConfig:
    """--recipe: the file's fields, then the run-specific options the user gave explicitly."""
    path = Path(args.recipe)
    if not path.is_file():
        raise MissingFileError(f"--recipe {path}: no such file (expected a TrainConfig JSON)")
    config = load_recipe(path)
    defaults = TrainConfig()
    overrides: dict[str, Any] = {"run_dir": args.run_dir} if args.run_dir != defaults.run_dir else {}
    for key in ("output", "init_weights", "max_minutes"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.threads != defaults.threads:
        overrides["threads"] = args.threads
    if args.device != defaults.device:
        overrides["device"] = args.device
    if args.data_workers != defaults.data_workers:
        overrides["data_workers"] = args.data_workers
    return replace(config, **overrides)


def _run_cli(args: argparse.Namespace) -> int:
    if args.recipe and not args.resume:
        train(_recipe_config(args), stop_at_step=args.stop_at_step)
        return 0
    config = TrainConfig(
        run_dir=args.run_dir,
        output=args.output,
        seed=args.seed,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        schedule=args.schedule,
        images_per_step=args.images_per_step,
        prompts_per_image=args.prompts_per_image,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        tasks=tuple(t for t in args.tasks.split(",") if t),
        shapes_fraction=args.shapes_fraction,
        synthetic_pool=args.synthetic_pool,
        real_fraction=args.real_fraction,
        checkpoint_minutes=args.checkpoint_minutes,
        threads=args.threads,
        device=args.device,
        data_workers=args.data_workers,
        init_weights=args.init_weights,
        attn_match_init=args.attn_match_init,
    )
    if args.resume:
        # A resumed run keeps the stored recipe; only the budget and the output may change.
        stored_path = Path(config.run_dir) / "config.json"
        if not stored_path.is_file():
            raise MissingFileError(f"--resume: no {stored_path} (not a training run folder)")
        stored = json.loads(stored_path.read_text())
        config = replace(
            config_from_dict(stored),
            max_minutes=config.max_minutes if config.max_minutes is not None else stored.get("max_minutes"),
            output=config.output or stored["output"],
            data_workers=config.data_workers if args.data_workers != TrainConfig.data_workers else stored.get("data_workers", 0),
        )
    train(config, resume=args.resume, stop_at_step=args.stop_at_step)
    return 0
