"""Find a model's recommended operating point: label-free tuning, then the rule that best matches ground truth.

What the registry's ``operating_point`` of samstar-tiny comes from (issue "samstar-tiny v4", item 4):

1. one label-free NSGA-II run with the ``generic`` reward preset and a vague size prior over
   training images only -- the synthetic tasks' ``tune`` split and the first ``--emps-images`` of
   emps-train (emps-dev is not read until step 4);
2. every operating-point rule (:data:`~samstar_env.agents.operating_points.RULES` and each
   reward's extreme) picks a point from the same front;
3. each rule's point is scored by ground-truth F1@0.5 on the same training images (they carry
   instance masks) and by its mask count against the true particle count. By default
   (``--rule training-labels``) the rule with the best mean F1 there is shipped: the labels of the
   training images judge the rules, as the issue on SAM*'s phenomena judged them on held-out
   images (``benchmarks/scripts/operating_rules.py``, whose winner is
   :data:`~samstar_env.agents.operating_points.DEFAULT_RULE`). ``--rule NAME`` ships that rule's
   point instead; the table always shows both;
4. only then, the chosen point and SAM's defaults are reported on emps-dev (validation: it never
   chooses anything).

Prints one row per rule and writes ``operating_point.json`` (the shipped parameters, the rule, the
table) to ``--out``. Run from the repo root::

    python benchmarks/scripts/operating_point.py --model samstar-tiny --out runs/operating-point
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from script_args import parse_dataclass_args

from samstar_env.agents.operating_points import DEFAULT_RULE, RULES, choose
from samstar_env.agents.registry import make_agent
from samstar_env.data import PhysicsPrior
from samstar_env.data.loaders import load_folder
from samstar_env.data.paths import data_root
from samstar_env.metrics import gt_metrics
from samstar_env.params import AmgParams, Dimension, ParamSpace
from samstar_env.problem import TuningProblem
from samstar_env.rewards.presets import configure_suite
from samstar_env.task import Task, make_task


@dataclass(frozen=True)
class Args:
    """Command-line arguments."""

    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    images_per_task: int = 2
    """synthetic tune-split images per task (perovskite, ito, auco)"""
    emps_images: int = 6
    """first N images of emps-train (sorted by name)"""
    size: int = 512
    """side of the synthetic images in px"""
    budget: int = 120
    """NSGA-II evaluations"""
    pop_size: int = 24
    """NSGA-II population"""
    seed: int = 0
    """NSGA-II seed"""
    diameter_range_nm: str = "3,150"
    """the vague prior's diameter range (EMPS images carry no calibration: 1 nm per px is assumed)"""
    out: str = "runs/operating-point"
    """output folder"""
    dev_images: int = 10
    """after the choice: report the chosen point's mask count and F1@0.5 on the first N emps-dev images (0: skip)"""
    validate: str = ""
    """skip tuning: only report an existing operating_point.json on emps-dev"""
    rule: str = "training-labels"
    """the rule whose point is shipped: 'training-labels' (best F1@0.5 on the training images) or a rule name"""


#: EMPS images carry no calibration: every script that tunes or scores them assumes 1 nm per px.
EMPS_PIXEL_SIZE_NM = 1.0


def emps_prior(diameter_range_nm: str = Args.diameter_range_nm) -> PhysicsPrior:
    """The vague prior for EMPS images: any diameter in the range (nm, ``"lo,hi"``), any shape, 1 nm per px.

    The one definition for the scripts that tune or score EMPS images (``operating_rules.py`` and
    ``reward_fidelity.py`` import it), so they all measure the rewards the recommended operating
    point was tuned with.
    """
    lo, hi = (float(v) for v in diameter_range_nm.split(","))
    return PhysicsPrior(diameter_range_nm=(lo, hi), shape="irregular", modality="unknown", pixel_size_nm=EMPS_PIXEL_SIZE_NM)


def training_images(args: Args) -> list:
    """The synthetic tasks' tune split plus the first emps-train images (never emps-dev)."""
    images = []
    for name in ("perovskite", "ito", "auco"):
        images += list(make_task(name, n_images=args.images_per_task, size=(args.size, args.size)).images)
    emps = data_root(required=True) / "emps-train"
    images += load_folder(emps, pixel_size_nm=1.0)[: args.emps_images]
    return images


def operating_space() -> ParamSpace:
    """Every replayed filter, plus one crop layer or none, at SAM's 32-point grid.

    A crop layer zooms the model 2x onto four tiles, which is how a 256-px-input model reaches small
    particles; its grid is downscaled 2x so that it costs one more full-image decode, not four.
    """
    by_name = {d.name: d for d in ParamSpace.default().dimensions}
    names = ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "crop_nms_thresh", "min_mask_region_area")
    dims = (*(by_name[n] for n in names), Dimension("crop_n_layers", "grid", choices=(0, 1)))
    return ParamSpace(dimensions=dims, base=AmgParams(crop_n_points_downscale_factor=2))


def rules(reward_names: tuple[str, ...]) -> list[str]:
    """Every operating-point rule a tuning run offers: the named rules, then each reward's extreme."""
    return [*RULES, *reward_names]


def report_on_dev(params: AmgParams, *, model: str, n: int) -> dict:
    """Mask count and F1@0.5 of ``params`` (and of SAM's defaults) on the first ``n`` emps-dev images.

    Read only after the choice is made: emps-dev validates, it never chooses.
    """
    from samstar_env.problem import shared_engine

    engine = shared_engine(model)
    images = load_folder(data_root(required=True) / "emps-dev", pixel_size_nm=1.0)[:n]
    doc = {}
    for label, p in (("operating_point", params), ("sam_defaults", AmgParams())):
        rows = [gt_metrics(engine.generate(im, p), im) for im in images]
        doc[label] = {
            "images": len(images),
            "masks": int(sum(r["n_pred"] for r in rows)),
            "particles": int(sum(r["n_gt"] for r in rows)),
            "f1": float(np.mean([r["f1"] for r in rows])),
        }
        d = doc[label]
        print(f"emps-dev ({d['images']} images), {label}: {d['masks']} masks for {d['particles']} particles, "
              f"mean F1@0.5 {d['f1']:.3f}", flush=True)
    return doc


def main(argv: list[str] | None = None) -> int:
    args = Args(**parse_dataclass_args(Args, __doc__.split("\n\n")[0], argv))
    if args.validate:
        doc = json.loads(Path(args.validate).read_text())
        report_on_dev(AmgParams.from_dict(doc["params"]), model=args.model, n=args.dev_images)
        return 0
    images = training_images(args)
    prior = emps_prior(args.diameter_range_nm)
    task = Task(name="generic", images=tuple(images), prior=prior, rewards=configure_suite("generic"),
                space=operating_space(), model=args.model)
    problem = TuningProblem(task)
    t0 = time.perf_counter()
    result = make_agent("nsga2", pop_size=args.pop_size).run(problem, budget=args.budget, seed=args.seed)
    print(f"tuned {len(images)} images, {args.budget} evaluations in {time.perf_counter() - t0:.0f} s", flush=True)
    n_gt = np.array([int(im.labels.max()) if im.labels is not None else 0 for im in images])
    rows = []
    for rule in rules(problem.reward_names):
        point = choose(result, rule, problem=problem)
        f1, counts = [], []
        for im in images:
            masks = problem.engine.generate(im, point.trial.params)
            f1.append(float(gt_metrics(masks, im)["f1"]))
            counts.append(len(masks))
        rows.append({"rule": rule, "f1": float(np.mean(f1)), "count_ratio": float(np.mean(np.array(counts) / np.maximum(n_gt, 1))),
                     "params": point.trial.params.to_dict()})
        print(f"{rule:>28s}  F1@0.5 {rows[-1]['f1']:.3f}  masks/particles {rows[-1]['count_ratio']:.2f}", flush=True)
    by_rule = {r["rule"]: r for r in rows}
    on_training = max(rows, key=lambda r: r["f1"])
    if args.rule != "training-labels" and args.rule not in by_rule:
        raise SystemExit(f"--rule {args.rule!r}: expected 'training-labels' or one of {list(by_rule)}")
    best = on_training if args.rule == "training-labels" else by_rule[args.rule]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made_with = " ".join(["python", "benchmarks/scripts/operating_point.py", *(argv if argv is not None else sys.argv[1:])])
    doc = {"model": args.model, "rule": best["rule"], "f1": best["f1"], "count_ratio": best["count_ratio"], "params": best["params"],
           "best_rule_on_training_labels": on_training["rule"], "default_rule": DEFAULT_RULE, "made_with": made_with, "rows": rows}
    (out / "operating_point.json").write_text(json.dumps(doc, indent=1) + "\n")
    dflt = by_rule[DEFAULT_RULE]
    print(f"shipped rule: {best['rule']} (F1@0.5 {best['f1']:.3f} on the training images, {best['count_ratio']:.1f} masks per particle); "
          f"the held-out comparison's {DEFAULT_RULE}: {dflt['f1']:.3f}, {dflt['count_ratio']:.1f}; written to {out / 'operating_point.json'}")
    if args.dev_images:
        report_on_dev(AmgParams.from_dict(best["params"]), model=args.model, n=args.dev_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
