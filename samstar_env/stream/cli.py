"""Segment frames as they arrive in a folder: ``samstar stream DIR --params best_params.json``.

The ``samstar stream`` subcommand: :func:`add_cli` adds its parser, whose options fill a
:class:`~samstar_env.stream.run.StreamConfig`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.engine.tiles import add_tiling_arguments
from samstar_env.stream.run import StreamConfig, run_stream

__all__ = ["add_cli"]


def _run_cli(args: argparse.Namespace) -> int:
    config = StreamConfig(
        directory=args.directory,
        params=args.params,
        policy=args.policy,
        drift_level=args.drift_level,
        tile_shape=args.tile_shape,
        halo=args.halo,
        model=args.model,
        out_dir=args.out,
        poll_s=args.poll_s,
        max_frames=args.max_frames,
        idle_timeout_s=args.idle_timeout_s,
        task=args.task,
        drift=not args.no_drift,
        drift_tol=args.drift_tol,
        baseline_frames=args.baseline_frames,
        retune=args.retune,
        pixel_size_nm=args.pixel_size_nm,
        overlay=args.overlay,
        device=args.device,
    )
    rep = run_stream(config)
    lat = np.asarray(rep.latencies_s)
    med = f"{np.median(lat):.3f} s" if lat.size else "n/a"
    print(
        f"processed {len(rep.processed)} frame(s), skipped {len(rep.skipped)}, flagged {len(rep.flagged)}, "
        f"{rep.already_done} already done; median latency {med}; log {rep.log_path}",
        file=sys.stderr,
    )
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar stream``."""
    p = subparsers.add_parser("stream", help="segment frames as they arrive in a folder (with a drift monitor)", description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="folder the frames are written into")
    p.add_argument("--params", default=None, help="best_params.json (default: the model's recommended operating point; SAM's defaults for a SAM checkpoint)")
    p.add_argument("--policy", default=None, help="a trained policy (samstar train-policy's policy.zip or folder): "
                   "parameters chosen per frame in one forward pass, instead of --params")
    p.add_argument("--model", default=None, help=f"samstar-tiny or a SAM checkpoint path (default: the policy's model, else {DEFAULT_MODEL})")
    p.add_argument("-o", "--out", default=None, help="output folder (default: DIRECTORY/samstar_stream)")
    p.add_argument("--poll-s", type=float, default=0.5, help="seconds between folder scans (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--idle-timeout-s", type=float, default=None, help="stop after this long without a new frame")
    p.add_argument("--task", default=None, help="perovskite, ito or auco: rewards and prior of the drift monitor")
    p.add_argument("--no-drift", action="store_true", help="do not compute rewards per frame")
    p.add_argument("--drift-tol", type=float, default=0.1, help="absolute reward drop that flags a frame (default: %(default)s)")
    p.add_argument("--baseline-frames", type=int, default=5, help="first frames averaged into the drift level (default: %(default)s)")
    p.add_argument("--drift-level", choices=("auto", "frames", "params", "policy"), default="auto",
                   help="the drift monitor's level: the first --baseline-frames frames, the policy's held-out images, or the "
                   "rewards the params file records (biased high: opt-in) (default: policy with --policy, else frames)")
    p.add_argument("--retune", action="store_true", help="re-tune in the background on drift; switch when the new params dominate")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="nm per pixel; overrides the files' calibration")
    p.add_argument("--overlay", action="store_true", help="also write overlay PNGs per frame")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    add_tiling_arguments(p)
    p.set_defaults(func=_run_cli)
