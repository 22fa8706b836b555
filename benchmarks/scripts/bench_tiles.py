"""Benchmark: tiles against the whole image and AMG's crop layers on camera-sized micrographs.

Run ``python benchmarks/scripts/bench_tiles.py`` for the full grid (4096² synthetic perovskite and
AuCo and a 768 x 1024 perovskite frame, the size of common SEM images; the whole image, crop layers
1 and 2, and tiles of 256 / 512 / 768 px with halos of 32 / 64 / 128; several hours on 2 CPU cores
with samstar-tiny, since every configuration is a cold decode of every tile), or fewer, e.g.
``--images perovskite:768x1024 --tiles 256 512 --halos 64``.

Each configuration runs in a child process of its own holding only the model and the image, cold
(no cache), and reports its wall time, its peak resident memory (``ru_maxrss``) and the
ground-truth F1@0.5 and mean segmentation accuracy of the masks against the generator's labels.
"Whole image" is ``SamAutomaticMaskGenerator`` itself where the image is at most ``--amg-max-side``
(AMG needs about 30 GB at 4096²), else ``MaskEngine`` untiled, which returns AMG's masks exactly
with bounded memory. Parameters: the model's recommended operating point with
``--points-per-side`` and no crop layers unless the row says so. A configuration that runs past
``--timeout-s`` is reported as such.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from script_args import parse_dataclass_args

MAKE_IMAGE = r"""
import sys, numpy as np
from samstar_env.data.synthetic import generate
task, h, w, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
m = generate(task, seed=0, size=(h, w))
np.save(out + ".rgb.npy", m.to_rgb_uint8())
np.save(out + ".labels.npy", m.labels)
np.save(out + ".image.npy", m.image)
"""

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from samstar_env.data.micrograph import Micrograph
from samstar_env.engine import MaskEngine
from samstar_env.metrics.ground_truth import gt_metrics
from samstar_env.models import load_sam
from samstar_env.params import AmgParams
cfg = json.loads(sys.argv[2])
stem = cfg["stem"]
rgb = np.load(stem + ".rgb.npy")
model = load_sam(cfg["model"], device="cpu")
params = AmgParams.from_dict(cfg["params"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if cfg["amg"]:
    from segment_anything import SamAutomaticMaskGenerator
    from samstar_env.segmentation import maskset_from_records
    masks = maskset_from_records(SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(rgb), rgb.shape[:2])
else:
    masks = MaskEngine(model).generate(rgb, params)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
truth = Micrograph(image=np.load(stem + ".image.npy"), labels=np.load(stem + ".labels.npy"), name="truth")
gt = gt_metrics(masks, truth)
print(json.dumps({"seconds": seconds, "masks": len(masks), "rss_before_kb": before, "rss_peak_kb": peak,
                  "f1": gt["f1"], "msa": gt["mean_seg_accuracy"], "particles": int(truth.labels.max())}))
"""


@dataclass(frozen=True)
class Args:
    images: tuple[str, ...] = ("perovskite:4096x4096", "auco:4096x4096", "perovskite:768x1024")
    """synthetic images as TASK:HxW"""
    tiles: tuple[int, ...] = (256, 512, 768)
    """tile sides in pixels"""
    halos: tuple[int, ...] = (32, 64, 128)
    """halos in pixels"""
    crop_layers: tuple[int, ...] = (1, 2)
    """AMG crop layers run on the whole image (0: none)"""
    whole: bool = True
    """also run the whole image untiled"""
    points_per_side: int = 16
    """points_per_side of every configuration (per tile, per crop)"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    amg_max_side: int = 1024
    """largest side run through SamAutomaticMaskGenerator itself for the whole-image row"""
    timeout_s: float = 1800.0
    """seconds after which a configuration is stopped and reported as timed out"""
    threads: int = 2
    """torch threads"""
    out: str = ""
    """write the rows as JSON here too"""


def _configs(args: Args, h: int, w: int, base: dict) -> list[tuple[str, dict, bool]]:
    rows = [("whole image" + (" (AMG)" if max(h, w) <= args.amg_max_side else " (engine, AMG's masks)"), base,
             max(h, w) <= args.amg_max_side)] if args.whole else []
    rows += [(f"crop layers {n}", {**base, "crop_n_layers": n}, False) for n in args.crop_layers if n > 0]
    rows += [(f"tiles {t} halo {hl}", {**base, "tile_shape": t, "halo": hl}, False)
             for t in args.tiles for hl in args.halos if hl <= t]
    return rows


def main(argv: list[str] | None = None) -> None:
    from samstar_env.models.registry import recommended_params

    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    point, source = recommended_params(args.model)
    base = point.replace(points_per_side=args.points_per_side, crop_n_layers=0, tile_shape=0, halo=0).to_dict()
    print(f"parameters: {source}, points_per_side {args.points_per_side}, crop layers 0 unless the row says so")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.images:
            task, hw = spec.split(":")
            h, w = (int(v) for v in hw.lower().split("x"))
            stem = str(Path(tmp) / f"{task}-{h}x{w}")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", MAKE_IMAGE, task, str(h), str(w), stem], check=True)
            print(f"\n{task} {h} x {w} (generated in {time.perf_counter() - t0:.1f} s)")
            print(f"{'configuration':34s} {'seconds':>8s} {'peak GB':>8s} {'masks':>6s} {'F1@0.5':>7s} {'mSA':>6s}")
            for name, params, amg in _configs(args, h, w, base):
                cfg = {"stem": stem, "model": args.model, "params": params, "amg": amg}
                try:
                    run = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), json.dumps(cfg)],
                                         capture_output=True, text=True, timeout=args.timeout_s)
                except subprocess.TimeoutExpired:
                    print(f"{name:34s} {'> ' + str(int(args.timeout_s)):>8s}  (timed out)")
                    results.append({"image": spec, "config": name, "timed_out": True})
                    continue
                if run.returncode != 0:
                    print(f"{name:34s} failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
                    results.append({"image": spec, "config": name, "error": run.stderr[-2000:]})
                    continue
                r = json.loads(run.stdout.strip().splitlines()[-1])
                r.update(image=spec, config=name)
                results.append(r)
                print(f"{name:34s} {r['seconds']:8.1f} {r['rss_peak_kb'] / 2**20:8.2f} {r['masks']:6d} {r['f1']:7.3f} {r['msa']:6.3f}"
                      f"   ({r['particles']} particles)")
    done = [r for r in results if "f1" in r]
    for spec in args.images:
        rows = [r for r in done if r["image"] == spec]
        if rows:
            best = max(rows, key=lambda r: r["f1"])
            whole = next((r for r in rows if r["config"].startswith("whole")), None)
            ratio = f"; {best['f1'] / whole['f1']:.1f}x the whole image's F1" if whole and whole["f1"] > 0 else ""
            print(f"best on {spec}: {best['config']} (F1 {best['f1']:.3f}, {best['seconds']:.0f} s{ratio})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
