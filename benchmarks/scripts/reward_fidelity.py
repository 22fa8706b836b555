"""Reward fidelity: do the label-free rewards point the same way as ground-truth F1?

For each synthetic task, draw ``n_params`` random AMG parameter sets, segment the task's first
``n_images`` tune images with each, and compute every reward (mean over the images) and the
ground-truth F1 at IoU 0.5 (:func:`samstar_env.metrics.ground_truth.gt_metrics`, mean over the same
images). The table gives the Spearman rank correlation (``scipy.stats.spearmanr``) between each
reward and F1 across the parameter sets, and the same for the task preset's scalarization. A tuner
can only be as good as its rewards' correlation with quality: positive is the right direction;
weak or negative means the reward misleads on that task.

Run ``python benchmarks/scripts/reward_fidelity.py`` (needs samstar-tiny's weights; about 10-20 minutes on 2
CPU cores with the defaults, dominated by mask decoding), ``--quick`` to check the script, or
``--random-model`` to exercise the plumbing with an untrained SAM (its correlations mean nothing).

Segmentation goes through :class:`samstar_env.engine.MaskEngine`; where the engine is missing it
falls back to ``segment_anything.SamAutomaticMaskGenerator`` + ``MaskSet.from_masks``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from script_args import parse_dataclass_args

from samstar_env.data.synthetic import generate, prior, split_seeds
from samstar_env.engine.maskset import MaskSet
from samstar_env.metrics.ground_truth import gt_metrics
from samstar_env.params import AmgParams, Dimension, ParamSpace
from samstar_env.rewards import RewardSuite, list_rewards, preset


@dataclass(frozen=True)
class Args:
    tasks: str = "perovskite,ito,auco"
    """comma-separated synthetic tasks"""
    n_params: int = 40
    """random parameter sets per task"""
    n_images: int = 2
    """tune images per task (seeds 0, 1, ...)"""
    size: int = 256
    """side of the synthetic micrographs in pixels"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path for samstar_env.models.load_sam"""
    random_model: bool = False
    """use an untrained tiny SAM (plumbing check only; correlations are meaningless)"""
    segmenter: str = "sam"
    """"sam" (the AMG through MaskEngine), or "watershed": a classical proxy with its own random
    parameters (smoothing, threshold scale, marker spacing), for when no trained SAM is at hand;
    it produces merges, splits, misses and leakage but never duplicates or overlaps"""
    quick: bool = False
    """8 parameter sets, 1 image, 128 px: checks the script in a minute"""
    full_space: bool = False
    """sample the whole default ParamSpace (crop layers included: much slower) instead of the
    single-crop subspace with points_per_side in (8, 12, 16, 24, 32)"""
    seed: int = 0
    """seed of the parameter draws"""
    json_out: str = ""
    """optional path for a JSON file with every evaluation and the table"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    if args.quick:
        args = Args(**{**vars(args), "n_params": 8, "n_images": 1, "size": 128})
    return args


def param_space(full: bool) -> ParamSpace:
    if full:
        return ParamSpace.default()
    # Each new point grid costs a full decode (DESIGN.md); a few grid sizes and no crop layers keep
    # the run to minutes while the thresholds, NMS and region filter still vary freely.
    dims = tuple(
        Dimension("points_per_side", "grid", choices=(8, 12, 16, 24, 32)) if d.name == "points_per_side" else d
        for d in ParamSpace.default().dimensions
        if d.name not in ("crop_n_layers", "crop_overlap_ratio", "crop_n_points_downscale_factor")
    )
    return ParamSpace(dimensions=dims, base=AmgParams(crop_n_layers=0))


def make_segmenter(args: Args):
    """A function (micrograph, params) -> MaskSet."""
    if args.random_model:
        from samstar_env.models.tiny import TinySamConfig, build_tiny_sam

        model = build_tiny_sam(TinySamConfig(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
                                             global_attn_indexes=(1,), prompt_dim=32, decoder_heads=2, decoder_mlp_dim=64), seed=0)
    else:
        from samstar_env.models import load_sam

        model = load_sam(args.model, device="cpu")
    try:
        from samstar_env.engine import MaskEngine
    except ImportError:
        MaskEngine = None  # noqa: N806
    if MaskEngine is not None:
        engine = MaskEngine(model)
        return engine.generate
    from segment_anything import SamAutomaticMaskGenerator

    def generate_amg(m, params: AmgParams) -> MaskSet:
        recs = SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(m.to_rgb_uint8())
        if not recs:
            return MaskSet.empty(m.shape)
        return MaskSet.from_masks(np.array([r["segmentation"] for r in recs]), predicted_iou=np.array([r["predicted_iou"] for r in recs]))

    return generate_amg


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of the classical proxy segmenter."""

    sigma_px: float
    """Gaussian smoothing before thresholding"""
    threshold_scale: float
    """multiplier of Li's threshold (below 1: leakage and merges; above: misses and shrinkage)"""
    min_distance_px: int
    """minimum spacing of distance-transform markers (small: splits; large: merges)"""

    @classmethod
    def sample(cls, rng: np.random.Generator) -> WatershedParams:
        return cls(float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.6, 1.4)), int(rng.integers(2, 40)))

    def to_dict(self) -> dict:
        return {"sigma_px": self.sigma_px, "threshold_scale": self.threshold_scale, "min_distance_px": self.min_distance_px}


def watershed_segment(m, params: WatershedParams) -> MaskSet:
    """Threshold (Li, polarity from the modality) + distance-transform watershed."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_li
    from skimage.segmentation import watershed

    img = gaussian(m.image, sigma=params.sigma_px, preserve_range=True)
    if m.polarity == "dark":
        img = 1.0 - img
    lo = float(img.min())
    fg = img > lo + params.threshold_scale * (threshold_li(img) - lo)
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=params.min_distance_px, labels=ndi.label(fg)[0], exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=fg)
    return MaskSet.from_labels(labels)


def fidelity_table(rewards: dict[str, np.ndarray], f1: np.ndarray) -> dict[str, float | None]:
    """Spearman rho of each reward series against F1 (None where either is constant)."""
    out: dict[str, float | None] = {}
    for name, series in rewards.items():
        if np.ptp(series) == 0 or np.ptp(f1) == 0:
            out[name] = None
        else:
            out[name] = float(spearmanr(series, f1).statistic)
    return out


def run(args: Args) -> int:
    try:
        segment = watershed_segment if args.segmenter == "watershed" else make_segmenter(args)
    except (FileNotFoundError, ImportError) as exc:
        print(f"reward_fidelity: cannot load a model ({exc}); train samstar-tiny or pass --model PATH "
              "(or --random-model for a plumbing check)", file=sys.stderr)
        return 2
    names = [n for n in list_rewards() if n != "latency"]
    space = param_space(args.full_space)
    draw = (lambda rng: WatershedParams.sample(rng)) if args.segmenter == "watershed" else space.sample
    results: dict[str, dict] = {}
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        t0 = time.perf_counter()
        p = prior(task)
        images = [generate(task, s, size=(args.size, args.size)) for s in split_seeds(task, "tune")[: args.n_images]]
        suite, ps = RewardSuite(names), preset(task)
        rng = np.random.default_rng(args.seed)
        rows = []
        for _ in range(args.n_params):
            params = draw(rng)
            vecs, scal, f1s, counts = [], [], [], []
            for m in images:
                ms = segment(m, params)
                counts.append(len(ms))
                vecs.append(suite.evaluate(ms, m, p))
                scal.append(ps.scalarize(ps.evaluate(ms, m, p)))
                f1s.append(gt_metrics(ms, m)["f1"])
            rows.append({"params": params.to_dict(), "rewards": np.mean(vecs, axis=0).tolist(),
                         "preset": float(np.mean(scal)), "f1": float(np.mean(f1s)), "min_masks": int(min(counts))})
        f1 = np.array([r["f1"] for r in rows])
        series = {n: np.array([r["rewards"][k] for r in rows]) for k, n in enumerate(names)}
        series[f"preset:{task}"] = np.array([r["preset"] for r in rows])
        table = fidelity_table(series, f1)
        # Parameter sets that leave an image without masks score 0 on F1 and on most rewards alike,
        # and those ties alone make every correlation look strong; the second column ranks only the
        # sets that segment every image, which is where a tuner has to choose.
        some = np.array([r["min_masks"] > 0 for r in rows])
        table_some = fidelity_table({n: v[some] for n, v in series.items()}, f1[some]) if some.sum() >= 3 else {}
        results[task] = {"table": table, "table_with_masks": table_some, "n_with_masks": int(some.sum()), "rows": rows,
                         "f1_range": [float(f1.min()), float(f1.max())], "seconds": time.perf_counter() - t0}
        print(f"\n{task}: {args.n_params} params x {len(images)} images, F1 in [{f1.min():.3f}, {f1.max():.3f}], "
              f"{int(some.sum())} params segment every image, {time.perf_counter() - t0:.0f} s")
        print(f"  {'reward':30s} {'all':>6s} {'masks>0':>8s}")
        for n, rho in table.items():
            rho_some = table_some.get(n)
            print(f"  {n:30s} {'   n/a' if rho is None else f'{rho:+.2f}':>6s} {'n/a' if rho_some is None else f'{rho_some:+.2f}':>8s}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
