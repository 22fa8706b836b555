"""Performance benchmark: frames per second of ``samstar stream`` vs. a bare SamAutomaticMaskGenerator call.

Issue 9's speed goal: a streamed frame costs no more than one AMG call at the same parameters (reading,
measuring and writing the particle table are the only extras; the drift monitor's rewards are
optional and reported separately). Run::

    python benchmarks/scripts/bench_stream.py                           # SAM defaults, points_per_side 16
    python benchmarks/scripts/bench_stream.py --params runs/perovskite/best_params.json --frames 6
    python benchmarks/scripts/bench_stream.py --drift-task perovskite   # also time the rewards

Frames are synthetic ``--task`` micrographs (512 x 512, uint8 TIFF with pixel size) written into a
folder before the stream starts, so the stream never waits for a writer: its wall time is processing
only. The bare reference is ``SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(rgb)``
on the same frames, in the same process, after one warm-up call, interleaved frame by frame with the
stream (the machine's load drifts; one stream run per frame, each resuming from the journal). The model is samstar-tiny when its
weights are installed, else a random-weight model of the same architecture (the printout says which):
speed does not depend on the weights, only the number of masks kept does.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from script_args import parse_dataclass_args


@dataclass(frozen=True)
class Args:
    params: str | None = None
    """best_params.json (or AmgParams JSON); default: SAM's defaults with points_per_side 16"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    frames: int = 4
    """frames streamed (and segmented by the bare AMG)"""
    size: int = 512
    """frame side in pixels"""
    task: str = "perovskite"
    """synthetic generator of the frames"""
    drift_task: str | None = None
    """compute this task's rewards per frame too (timed separately)"""
    threads: int = 2
    """torch intra-op threads"""


def parse_args(argv: list[str] | None = None) -> Args:
    return Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))


def load_model(name: str):
    from samstar_env.models import SAMSTAR_TINY_CONFIG, build_tiny_sam
    from samstar_env.models.registry import load_sam

    try:
        return load_sam(name, device="cpu"), f"{name} (trained weights)"
    except (FileNotFoundError, ValueError) as exc:
        if name != "samstar-tiny":
            raise
        return build_tiny_sam(SAMSTAR_TINY_CONFIG, seed=0).eval(), f"samstar-tiny architecture, RANDOM weights ({exc})"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from samstar_env.data.loaders import load_image, save_tiff_with_pixel_size
    from samstar_env.data.synthetic import generate
    from samstar_env.engine import to_sam_image
    from samstar_env.params import AmgParams
    from samstar_env.stream import LOG_NAME, StreamConfig, run_stream

    torch.set_num_threads(args.threads)
    params = AmgParams.from_json(args.params) if args.params else AmgParams(points_per_side=16)
    sam, model_note = load_model(args.model)
    print(f"model: {model_note}")
    print(f"params: {args.params or 'SAM defaults, points_per_side=16'} -> {params.to_dict()}")

    work = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    src = work / "frames"
    src.mkdir()
    for i in range(args.frames):
        m = generate(args.task, seed=1000 + i, size=(args.size, args.size))
        save_tiff_with_pixel_size(src / f"frame_{i:03d}.tif", np.rint(m.image * 255).astype(np.uint8), m.pixel_size_nm)

    # Warm-up (first torch call allocates and picks kernels) on an image that is not a frame.
    warm = to_sam_image(generate(args.task, seed=999, size=(args.size, args.size)))
    SamAutomaticMaskGenerator(sam, **params.to_kwargs()).generate(warm)

    # The machine is shared, so its load drifts over minutes: interleave one streamed frame with one
    # bare AMG call on the same frame. Each stream run handles one frame and stops; the next run
    # resumes from the journal (which also exercises the restart path).
    import json

    stream_wall, bare, n_bare = 0.0, [], []
    for _ in range(args.frames):
        config = StreamConfig(
            src, params=params, model=sam, out_dir=work / "out", settle_s=0.0, max_frames=1,
            task=args.drift_task, drift=args.drift_task is not None,
        )
        rep = run_stream(config, echo=None)
        stream_wall += rep.wall_s
        rgb = to_sam_image(load_image(src / rep.processed[0]))
        t0 = time.perf_counter()
        out = SamAutomaticMaskGenerator(sam, **params.to_kwargs()).generate(rgb)
        bare.append(time.perf_counter() - t0)
        n_bare.append(len(out))
    recs = [r for r in map(json.loads, (work / "out" / LOG_NAME).read_text().splitlines()) if r["event"] == "frame"]

    lat = np.array([r["latency_s"] for r in recs])
    seg = np.array([r["segment_s"] for r in recs])
    extra = {k: np.median([r[k] for r in recs]) for k in ("read_s", "measure_s", "write_s")}
    rewards = [r["rewards_s"] for r in recs if "rewards_s" in r]
    b = np.array(bare)
    print(f"\n{'frame':<16}{'stream s':>10}{'(AMG part)':>12}{'bare AMG s':>12}{'masks':>7}{'bare':>6}")
    for r, bt, nb in zip(recs, b, n_bare, strict=True):
        print(f"{r['frame']:<16}{r['latency_s']:>10.3f}{r['segment_s']:>12.3f}{bt:>12.3f}{r['n_particles']:>7}{nb:>6}")
    print(f"\nframes: {len(recs)} of {args.size}x{args.size}, torch threads {args.threads}")
    print(f"stream: {len(recs) / stream_wall:.3f} frames/s (wall {stream_wall:.2f} s incl. start-up, polling and the journal)")
    print(f"median per frame: stream {np.median(lat):.3f} s = AMG part {np.median(seg):.3f} s + read {extra['read_s']:.3f} + "
          f"measure {extra['measure_s']:.3f} + write {extra['write_s']:.3f}")
    print(f"bare SamAutomaticMaskGenerator: median {np.median(b):.3f} s/frame ({1 / np.median(b):.3f} frames/s)")
    print(f"ratio stream/bare (median per frame): {np.median(lat) / np.median(b):.3f}; AMG part/bare: {np.median(seg) / np.median(b):.3f}")
    if rewards:
        print(f"drift-monitor rewards ({args.drift_task}): median {np.median(rewards):.3f} s/frame (not in the latency above)")


if __name__ == "__main__":
    main()
