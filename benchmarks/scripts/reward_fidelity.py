"""Reward fidelity: do the label-free rewards point the same way as ground-truth F1?

For each dataset -- a synthetic task (``perovskite``, ``ito``, ``auco``: its first ``n_images`` tune
images, scored with the task's reward preset) or ``emps-dev`` (the first ``n_images`` real EMPS
micrographs by name, scored with the ``generic`` preset under the vague prior of
``operating_point.py``) -- draw ``n_params`` random AMG parameter sets, segment every image with each,
and compute every reward (mean over the images) and the ground-truth F1 at IoU 0.5
(:func:`samstar_env.metrics.ground_truth.gt_metrics`, mean over the same images). The preset's
scalarized reward of a parameter set is ``RewardSuite.scalarize`` of its mean preset vector.

Per dataset it reports, over the parameter sets that segment every image (where a tuner has to
choose), the Spearman rank correlation (``scipy.stats.spearmanr``) of the scalarized reward with F1,
its p-value and a 95% bootstrap interval over parameter sets (``scipy.stats.bootstrap``, BCa, fixed
seed), and the same rho for each single reward. A tuner can only be as good as its rewards'
correlation with quality: positive is the right direction; weak or negative means the reward misleads
on that dataset. ``--readme README.md`` writes the summary table between the README's
``<!-- reward-fidelity:begin -->`` and ``<!-- reward-fidelity:end -->`` markers.

Run ``python benchmarks/scripts/reward_fidelity.py --tasks perovskite,ito,auco,emps-dev --readme
README.md`` (needs samstar-tiny's weights), ``--quick`` to check the script, or ``--random-model`` to
exercise the plumbing with an untrained SAM (its correlations mean nothing). With the defaults (4
datasets x 4 images x 150 parameter sets) the cost is dominated by decoding each image's 5 point grids once,
about 45 CPU-seconds per image with samstar-tiny; the 2,400 replays, rewards and F1 add about 2 CPU-minutes.
That is about 13 CPU-minutes in all: an estimated 8-10 minutes on 2 otherwise idle cores, and 28 minutes
extrapolated from a run that got 44% of one core on 2 shared cores. Decodes go to the shared disk cache
(``SAMSTAR_CACHE``), so a rerun after a reward change only replays them, in 2-3 minutes.

Segmentation goes through :class:`samstar_env.engine.MaskEngine`; where the engine is missing it
falls back to ``segment_anything.SamAutomaticMaskGenerator`` + ``MaskSet.from_masks``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from operating_point import EMPS_PIXEL_SIZE_NM, emps_prior
from scipy.stats import bootstrap, rankdata, spearmanr
from script_args import parse_dataclass_args

from samstar_env.benchmarks.watershed import WatershedParams, WatershedSpace, watershed_segment
from samstar_env.data import Micrograph, PhysicsPrior
from samstar_env.data.loaders import load_folder
from samstar_env.data.paths import dataset_dir
from samstar_env.data.synthetic import TASKS, generate, prior, split_seeds
from samstar_env.engine.maskset import MaskSet
from samstar_env.errors import InputError
from samstar_env.metrics.ground_truth import gt_metrics
from samstar_env.params import AmgParams, Dimension, ParamSpace
from samstar_env.rewards import REWARDS_VERSION, RewardSuite, list_rewards, preset

SCRIPT = "benchmarks/scripts/reward_fidelity.py"
BEGIN_MARKER = "<!-- reward-fidelity:begin -->"
END_MARKER = "<!-- reward-fidelity:end -->"

EMPS_DEV = "emps-dev"
"""the real dataset (validation only: emps-train is never read here)"""
EMPS_PRESET = "generic"
"""EMPS papers span every material and shape: no task preset applies, so the balanced default"""


@dataclass(frozen=True)
class Args:
    """Command-line arguments."""

    tasks: str = "perovskite,ito,auco,emps-dev"
    """comma-separated datasets: synthetic tasks (their tune split, their own preset) and/or emps-dev
    (real micrographs, the generic preset)"""
    n_params: int = 150
    """random parameter sets drawn per dataset at least (the same draws on every dataset)"""
    min_used: int = 150
    """keep drawing (the same sequence) until this many sets segment every image of the dataset, the
    sets the agreement is measured on (a third of the draws with samstar-tiny, whose IoU head rarely
    passes the space's high pred_iou_thresh values)"""
    max_params: int = 1500
    """stop drawing here even when fewer than --min-used sets segment every image (the table says how many did)"""
    n_images: int = 4
    """images per dataset: a synthetic task's tune seeds 0, 1, ...; emps-dev's first N by name (with
    samstar-tiny the first emps-dev image alone gives F1 0 for every set: rho needs a few)"""
    size: int = 256
    """side of the synthetic micrographs in pixels (emps-dev images keep their own, about 512 x 600)"""
    points_per_side: tuple[int, ...] = (8, 12, 16, 24, 32)
    """point grids of the sampled space: each costs one full decode per image, everything else is a
    cached replay"""
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
    single-crop subspace with --points-per-side grids"""
    seed: int = 0
    """seed of the parameter draws and of the bootstrap"""
    n_resamples: int = 9999
    """bootstrap resamples of the parameter sets for rho's 95% interval"""
    json_out: str = ""
    """optional path for a JSON file with every evaluation and the tables"""
    readme: str = ""
    """optional Markdown file (README.md) whose reward-fidelity markers receive the summary table"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    if args.quick:
        args = Args(**{**vars(args), "n_params": 8, "min_used": 0, "n_images": 1, "size": 128})
    return args


def param_space(full: bool, points_per_side: tuple[int, ...] = Args.points_per_side) -> ParamSpace:
    """The sampled AMG space: every replayed filter, ``points_per_side`` grids, no crop layers."""
    if full:
        return ParamSpace.default()
    # Each new point grid costs a full decode (DESIGN.md); a few grid sizes and no crop layers keep
    # the run to minutes while the thresholds, NMS and region filter still vary freely. The
    # stability offsets of the space are counted in one pass over the logits, so they cost no decode.
    dims = tuple(
        Dimension("points_per_side", "grid", choices=tuple(points_per_side)) if d.name == "points_per_side" else d
        for d in ParamSpace.default().dimensions
        if d.name not in ("crop_n_layers", "crop_overlap_ratio", "crop_n_points_downscale_factor")
    )
    return ParamSpace(dimensions=dims, base=AmgParams(crop_n_layers=0))


@dataclass(frozen=True)
class Dataset:
    """One row of the table: its images, the prior their rewards see and the preset that scores them."""

    name: str
    """dataset name as given to --tasks"""
    images: tuple[Micrograph, ...]
    """the micrographs, with their instance labels (ground truth)"""
    prior: PhysicsPrior
    """what the rewards are told about the sample"""
    preset: str
    """reward preset (samstar_env.rewards.preset) whose scalarization is compared with F1"""
    description: str
    """a few words for the table: synthetic or real, image size"""


def load_dataset(name: str, *, n_images: int, size: int) -> Dataset:
    """The first ``n_images`` of dataset ``name`` (a synthetic task or ``emps-dev``), deterministic."""
    if name == EMPS_DEV:
        # load_folder sorts by file name, so "first N" is the same N images on every machine.
        images = load_folder(dataset_dir(EMPS_DEV), pixel_size_nm=EMPS_PIXEL_SIZE_NM)[:n_images]
        return Dataset(name, tuple(images), emps_prior(), EMPS_PRESET, "real EMPS")
    if name not in TASKS:
        raise InputError(f"reward_fidelity: unknown dataset {name!r}; expected some of {[*TASKS, EMPS_DEV]}")
    images = [generate(name, s, size=(size, size)) for s in split_seeds(name, "tune")[:n_images]]
    return Dataset(name, tuple(images), prior(name), name, f"synthetic, {size} px")


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
        from samstar_env.engine import default_cache_dir

        # Decodes do not depend on the rewards: with the shared disk cache (SAMSTAR_CACHE) a rerun
        # after a reward change replays every parameter set instead of decoding again. A throwaway
        # untrained model would only fill the cache with entries nobody reads.
        engine = MaskEngine(model, cache_dir=None if args.random_model else default_cache_dir())
        return engine.generate
    from segment_anything import SamAutomaticMaskGenerator

    def generate_amg(m, params: AmgParams) -> MaskSet:
        recs = SamAutomaticMaskGenerator(model, **params.to_kwargs()).generate(m.to_rgb_uint8())
        if not recs:
            return MaskSet.empty(m.shape)
        return MaskSet.from_masks(np.array([r["segmentation"] for r in recs]), predicted_iou=np.array([r["predicted_iou"] for r in recs]))

    return generate_amg


def watershed_proxy(m, params: WatershedParams) -> MaskSet:
    """The ``watershed`` bench baseline's segmenter (``samstar_env.benchmarks.watershed``): a classical
    proxy whose parameters are drawn uniformly over its tuned space, not through SAM."""
    return watershed_segment(m, params)


def draw_watershed(rng: np.random.Generator) -> WatershedParams:
    """One uniform draw of the watershed baseline's tuned space."""
    space = WatershedSpace()
    return space.decode(rng.uniform(-1.0, 1.0, size=space.dim))


def fidelity_table(rewards: dict[str, np.ndarray], f1: np.ndarray) -> dict[str, float | None]:
    """Spearman rho of each reward series against F1 (None where either is constant)."""
    out: dict[str, float | None] = {}
    for name, series in rewards.items():
        if np.ptp(series) == 0 or np.ptp(f1) == 0:
            out[name] = None
        else:
            out[name] = float(spearmanr(series, f1).statistic)
    return out


def spearman_rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis`` (vectorized, for the bootstrap; NaN where either side is constant)."""
    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))


def agreement(score: np.ndarray, f1: np.ndarray, *, seed: int, n_resamples: int = 9999) -> dict[str, Any]:
    """Spearman rho of ``score`` vs ``f1``, its p-value and a 95% bootstrap interval over the pairs.

    Parameters
    ----------
    score, f1 : ndarray
        One value per parameter set.
    seed : int
        Seed of the bootstrap resampling (the interval is reproducible).
    n_resamples : int
        Bootstrap resamples.

    Returns
    -------
    dict
        ``rho``, ``p_value``, ``ci95`` (``[lo, hi]``) and ``ci_method`` (``"BCa"``, or
        ``"percentile"`` where BCa is undefined); ``None`` where undefined (fewer than 3 pairs, a
        constant side, or NaN bounds from both methods).

    Examples
    --------
    >>> a = agreement(np.arange(20.0), np.arange(20.0) ** 2, seed=0, n_resamples=200)
    >>> a["rho"], a["ci95"][1]
    (1.0, 1.0)
    """
    out: dict[str, Any] = {"rho": None, "p_value": None, "ci95": None, "ci_method": None}
    if len(f1) < 3 or np.ptp(score) == 0 or np.ptp(f1) == 0:
        return out
    res = spearmanr(score, f1)
    out["rho"], out["p_value"] = float(res.statistic), float(res.pvalue)
    # Paired resampling of parameter sets: the interval says how much rho depends on which random
    # sets were drawn. BCa corrects the skew of rho's distribution near +-1, but it is undefined when
    # every resample gives the same rho (e.g. a perfect ranking); the percentile interval is not.
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # scipy warns on degenerate resamples (a constant side: NaN rho) and returns NaN bounds.
            warnings.simplefilter("ignore")
            ci = bootstrap((score, f1), spearman_rho, paired=True, vectorized=True, n_resamples=n_resamples,
                           confidence_level=0.95, method=method, rng=np.random.default_rng(seed)).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            out["ci95"], out["ci_method"] = [float(ci.low), float(ci.high)], method
            break
    return out


def extremes(table: dict[str, float | None]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The best and worst reward of ``table`` (name -> rho) by rho, ignoring undefined ones."""
    defined = [(n, r) for n, r in table.items() if r is not None]
    if not defined:
        return None, None
    best, worst = max(defined, key=lambda t: t[1]), min(defined, key=lambda t: t[1])
    return {"name": best[0], "rho": best[1]}, {"name": worst[0], "rho": worst[1]}


def evaluate_dataset(ds: Dataset, segment: Callable[[Micrograph, Any], MaskSet], draw: Callable[[np.random.Generator], Any], *,
                     names: list[str], n_params: int, seed: int, min_used: int = 0,
                     max_params: int | None = None) -> tuple[list[dict], dict[str, float]]:
    """Segment and score every image of ``ds`` with parameter sets drawn from ``seed``: ``n_params`` of
    them, and more (up to ``max_params``) until ``min_used`` segment every image.

    Returns one row per parameter set (mean reward vectors, scalarized preset reward, mean F1, the
    smallest mask count over the images) and the seconds spent segmenting, in rewards and in ground
    truth.
    """
    suite, ps = RewardSuite(names), preset(ds.preset)
    rng = np.random.default_rng(seed)
    seconds = {"segment": 0.0, "rewards": 0.0, "ground_truth": 0.0}
    rows: list[dict] = []
    used = 0
    cap = max(n_params, max_params or n_params)
    while len(rows) < n_params or (used < min_used and len(rows) < cap):
        params = draw(rng)
        vecs, pvecs, f1s, counts = [], [], [], []
        for m in ds.images:
            t0 = time.perf_counter()
            ms = segment(m, params)
            t1 = time.perf_counter()
            vecs.append(suite.evaluate(ms, m, ds.prior))
            # The preset's own vector, not a slice of the one above: a preset may set options
            # (AuCo's triangle threshold) that the default-option rewards do not have.
            pvecs.append(ps.evaluate(ms, m, ds.prior))
            t2 = time.perf_counter()
            f1s.append(gt_metrics(ms, m)["f1"])
            counts.append(len(ms))
            seconds["segment"] += t1 - t0
            seconds["rewards"] += t2 - t1
            seconds["ground_truth"] += time.perf_counter() - t2
        pmean = np.mean(pvecs, axis=0)
        rows.append({"params": params.to_dict(), "rewards": np.mean(vecs, axis=0).tolist(), "preset_rewards": pmean.tolist(),
                     "preset": float(ps.scalarize(pmean)), "f1": float(np.mean(f1s)), "min_masks": int(min(counts))})
        used += int(min(counts) > 0)
    return rows, seconds


def summarize(ds: Dataset, rows: list[dict], names: list[str], *, seed: int, n_resamples: int) -> dict[str, Any]:
    """The correlation tables of one dataset's rows (see the module docstring)."""
    ps = preset(ds.preset)
    f1 = np.array([r["f1"] for r in rows])
    series = {n: np.array([r["rewards"][k] for r in rows]) for k, n in enumerate(names)}
    series[f"preset:{ds.preset}"] = np.array([r["preset"] for r in rows])
    table = fidelity_table(series, f1)
    # Parameter sets that leave an image without masks score 0 on F1 and on most rewards alike,
    # and those ties alone make every correlation look strong; the headline numbers rank only the
    # sets that segment every image, which is where a tuner has to choose.
    some = np.array([r["min_masks"] > 0 for r in rows], dtype=bool)
    table_some = fidelity_table({n: v[some] for n, v in series.items()}, f1[some]) if some.sum() >= 3 else {}
    preset_series = {n: np.array([r["preset_rewards"][k] for r in rows])[some] for k, n in enumerate(ps.names)}
    preset_table = fidelity_table(preset_series, f1[some]) if some.sum() >= 3 else dict.fromkeys(ps.names)
    best, worst = extremes(preset_table)
    return {
        "dataset": {"preset": ds.preset, "images": len(ds.images), "description": ds.description,
                    "image_names": [m.name for m in ds.images]},
        "n_params": len(rows),
        "n_params_used": int(some.sum()),
        "agreement": {**agreement(series[f"preset:{ds.preset}"][some], f1[some], seed=seed, n_resamples=n_resamples),
                      "n_resamples": n_resamples, "bootstrap_seed": seed},
        "preset_rewards": preset_table,
        "best_reward": best,
        "worst_reward": worst,
        "table": table,
        "table_with_masks": table_some,
        "n_with_masks": int(some.sum()),
        "f1_range": [float(f1.min()), float(f1.max())] if len(f1) else None,
    }


def model_label(args: Args) -> str:
    """What segmented the images, for the table: the model name and its weights' sha256 prefix."""
    if args.segmenter == "watershed":
        return "watershed proxy (no SAM)"
    if args.random_model:
        return "untrained tiny SAM"
    from samstar_env.benchmarks.reference import model_sha256

    digest = model_sha256(args.model)
    return f"{args.model} ({digest[:8]})" if digest else args.model


def _fmt(rho: float | None) -> str:
    return "n/a" if rho is None else f"{rho:+.2f}"


def readme_block(results: dict[str, dict], *, command: str, model: str) -> str:
    """The Markdown that goes between the README markers: the command line, then the table."""
    lines = [f"Regenerated by `{command}`:", "",
             "| dataset | preset | images | parameter sets | best F1@0.5 | rho [95% CI] | best single reward | worst single reward "
             "| model | rewards |",
             "|---|---|---:|---:|---:|---|---|---|---|---|"]
    for name, r in results.items():
        ag = r["agreement"]
        ci = "" if ag["ci95"] is None else f" [{ag['ci95'][0]:+.2f}, {ag['ci95'][1]:+.2f}]"
        best, worst = (f"{x['name']} {_fmt(x['rho'])}" if x else "n/a" for x in (r["best_reward"], r["worst_reward"]))
        d = r["dataset"]
        # The best F1 says whether the model segments the dataset at all: where every set scores 0,
        # rho is undefined and the row measures the model, not the rewards.
        best_f1 = "n/a" if r["f1_range"] is None else f"{r['f1_range'][1]:.3f}"
        lines.append(f"| {name} ({d['description']}) | {d['preset']} | {d['images']} | {r['n_params_used']} of {r['n_params']} "
                     f"| {best_f1} | {_fmt(ag['rho'])}{ci} | {best} | {worst} | {model} | v{REWARDS_VERSION} |")
    return "\n".join(lines)


def replace_marked_block(text: str, block: str) -> str:
    """``text`` with everything between the reward-fidelity markers replaced by ``block``.

    Idempotent: replacing with the same block again gives the same text. The markers must each occur
    once, begin before end.

    Examples
    --------
    >>> doc = f"# A\\n{BEGIN_MARKER}\\nold\\n{END_MARKER}\\ntail\\n"
    >>> new = replace_marked_block(doc, "table")
    >>> new.splitlines()[1:4] == [BEGIN_MARKER, "table", END_MARKER], replace_marked_block(new, "table") == new
    (True, True)
    """
    if text.count(BEGIN_MARKER) != 1 or text.count(END_MARKER) != 1 or text.index(BEGIN_MARKER) > text.index(END_MARKER):
        raise InputError(f"expected one {BEGIN_MARKER} followed by one {END_MARKER}")
    head, rest = text.split(BEGIN_MARKER)
    _, tail = rest.split(END_MARKER)
    return f"{head}{BEGIN_MARKER}\n{block.strip()}\n{END_MARKER}{tail}"


def run(args: Args, *, command: str = SCRIPT) -> int:
    """Measure every dataset of ``args.tasks``; print the tables, write the JSON and the README block.

    ``command`` is the command line quoted above the README table.
    """
    names_given = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.readme:
        # Fail before the measurement, not after it.
        try:
            replace_marked_block(Path(args.readme).read_text(encoding="utf-8"), "")
        except (OSError, InputError) as exc:
            print(f"reward_fidelity: cannot update {args.readme}: {exc}", file=sys.stderr)
            return 2
    try:
        datasets = [load_dataset(n, n_images=args.n_images, size=args.size) for n in names_given]
    except (FileNotFoundError, InputError) as exc:
        print(f"reward_fidelity: {exc}", file=sys.stderr)
        return 2
    try:
        segment = watershed_proxy if args.segmenter == "watershed" else make_segmenter(args)
    except (FileNotFoundError, ImportError) as exc:
        print(f"reward_fidelity: cannot load a model ({exc}); train samstar-tiny or pass --model PATH "
              "(or --random-model for a plumbing check)", file=sys.stderr)
        return 2
    names = [n for n in list_rewards() if n != "latency"]
    space = param_space(args.full_space, args.points_per_side)
    draw = draw_watershed if args.segmenter == "watershed" else space.sample
    results: dict[str, dict] = {}
    for ds in datasets:
        t0 = time.perf_counter()
        rows, stage_seconds = evaluate_dataset(ds, segment, draw, names=names, n_params=args.n_params, seed=args.seed,
                                               min_used=args.min_used, max_params=args.max_params)
        res = summarize(ds, rows, names, seed=args.seed, n_resamples=args.n_resamples)
        res.update(rows=rows, seconds=time.perf_counter() - t0, seconds_by_stage=stage_seconds)
        results[ds.name] = res
        ag = res["agreement"]
        ci = "" if ag["ci95"] is None else f" [{ag['ci95'][0]:+.2f}, {ag['ci95'][1]:+.2f}]"
        f1_range = res["f1_range"]
        print(f"\n{ds.name} ({ds.description}, preset {ds.preset}): {len(rows)} params x {len(ds.images)} images, "
              f"F1 in [{f1_range[0]:.3f}, {f1_range[1]:.3f}], {res['n_params_used']} params segment every image, "
              f"{res['seconds']:.0f} s (segment {stage_seconds['segment']:.0f}, rewards {stage_seconds['rewards']:.0f}, "
              f"ground truth {stage_seconds['ground_truth']:.0f})")
        print(f"  preset scalarization vs F1 (masks>0): rho {_fmt(ag['rho'])}{ci}, p "
              f"{'n/a' if ag['p_value'] is None else format(ag['p_value'], '.2g')}")
        print(f"  {'reward':30s} {'all':>6s} {'masks>0':>8s}")
        for n, rho in res["table"].items():
            print(f"  {n:30s} {_fmt(rho):>6s} {_fmt(res['table_with_masks'].get(n)):>8s}")
        print(f"  preset {ds.preset}'s rewards (masks>0): " + ", ".join(f"{n} {_fmt(r)}" for n, r in res["preset_rewards"].items()))
    model = model_label(args)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "command": command, "model": model, "rewards_version": REWARDS_VERSION,
                       "results": results}, fh, indent=1)
    if args.readme:
        path = Path(args.readme)
        path.write_text(replace_marked_block(path.read_text(encoding="utf-8"), readme_block(results, command=command, model=model)),
                        encoding="utf-8")
        print(f"\ntable written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(parse_args(argv), command=shlex.join(["python", SCRIPT, *argv]))


if __name__ == "__main__":
    sys.exit(main())
