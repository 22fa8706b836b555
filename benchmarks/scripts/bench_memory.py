"""Benchmark: peak memory of one cold evaluation, MaskEngine against SamAutomaticMaskGenerator.

Run ``python benchmarks/scripts/bench_memory.py`` (2048² with both, then 4096² with the engine alone: about
6 minutes on 2 CPU cores with samstar-tiny) or ``--sizes 1024 --points-per-side 16`` to check it.
Each measurement runs in a child process of its own, holding only the model and the image, and
reports that process's peak resident memory (``ru_maxrss``) before and after the call, so one
call's allocations never hide in another's freed heap. Images are made in children too (Linux
keeps a peak RSS across fork and exec, so the parent must stay small). 4096² images are the 2048² synthetic
micrograph tiled 2 x 2, as when the figures in the README were first measured (the generators now make
4096² frames directly: ``benchmarks/scripts/bench_tiles.py`` uses them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from script_args import parse_dataclass_args

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from segment_anything import SamAutomaticMaskGenerator
from samstar_env.engine import MaskEngine
from samstar_env.models import load_sam
from samstar_env.params import AmgParams
which, size, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rgb = np.load(sys.argv[5])
model = load_sam(sys.argv[6], device="cpu")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
p = AmgParams(points_per_side=pps, pred_iou_thresh=0.2, stability_score_thresh=0.8)
t0 = time.perf_counter()
n = len(SamAutomaticMaskGenerator(model, **p.to_kwargs()).generate(rgb)) if which == "amg" else len(MaskEngine(model).generate(rgb, p))
print(json.dumps({"seconds": time.perf_counter() - t0, "masks": n, "rss_before_kb": before,
                  "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


MAKE_IMAGE = r"""
import sys, numpy as np
from samstar_env.data.synthetic import generate
size = int(sys.argv[1]); src = min(size, 2048)
im = generate("perovskite", seed=0, size=(src, src)).to_rgb_uint8()
np.save(sys.argv[2], np.tile(im, (size // src, size // src, 1)) if src != size else im)
"""


@dataclass(frozen=True)
class Args:
    sizes: tuple[int, ...] = (2048, 4096)
    """image sides in pixels"""
    amg_max_size: int = 2048
    """largest side also run through SamAutomaticMaskGenerator (4096² needs about 30 GB there)"""
    points_per_side: int = 32
    """points_per_side of the call"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    threads: int = 2
    """torch CPU threads"""


def parse_args(argv: list[str] | None = None) -> Args:
    return Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))


def main(argv: list[str] | None = None) -> int:
    import tempfile
    from pathlib import Path

    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    print(f"model {args.model}, points_per_side {args.points_per_side}, {args.threads} threads; peak RSS of a child "
          "process holding the model and the image")
    print(f"{'size':>5} {'segmenter':>9} {'seconds':>8} {'masks':>6} {'RSS before GB':>14} {'peak GB':>8}")
    for size in args.sizes:
        path = work / f"img{size}.npy"
        # Made in a child too: Linux keeps a process's peak RSS across fork and exec, so this process
        # must stay small.
        subprocess.run([sys.executable, "-c", MAKE_IMAGE, str(size), str(path)], check=True)
        for which in ("engine", "amg") if size <= args.amg_max_size else ("engine",):
            out = subprocess.run([sys.executable, "-c", CHILD, which, str(size), str(args.points_per_side), str(args.threads),
                                  str(path), args.model], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{size:>5} {which:>9} {r['seconds']:>8.1f} {r['masks']:>6} {r['rss_before_kb'] / 1e6:>14.2f} "
                  f"{r['rss_peak_kb'] / 1e6:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
