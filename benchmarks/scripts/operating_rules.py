"""Which operating-point rule picks the best parameters? Each rule judged by ground truth on held-out images.

A tuner's front holds many parameter sets; a rule (``samstar_env.agents.operating_points``) picks
one without labels. Here every rule picks from the same label-free NSGA-II runs, and its point is
scored by ground-truth F1@0.5 on images the tuning never saw, as a fraction of the *oracle*: the
best held-out F1 of any parameter set the run evaluated (what a person with labels would have
picked from the same search). Datasets:

- ``perovskite``, ``ito``, ``auco``: the task's reward preset, tuned on its ``tune`` split, judged
  on its ``test`` split;
- ``emps-dev``: the ``generic`` preset and a vague prior (diameter 3-150 nm, 1 nm per pixel
  assumed: EMPS images carry no calibration), tuned on the first emps-train images, judged on the
  first emps-dev images (train on train, validate on dev).

The rule with the best mean fraction over datasets and seeds is the default of ``samstar tune``,
``samstar bench`` and ``samstar reproduce`` (``DEFAULT_RULE``). ``--readme README.md`` writes the
table between the ``operating-rules`` markers. Run from the repo root::

    python benchmarks/scripts/operating_rules.py --readme README.md
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from operating_point import EMPS_PIXEL_SIZE_NM, emps_prior
from script_args import parse_dataclass_args

from samstar_env.agents.operating_points import RULES, choose
from samstar_env.agents.registry import make_agent
from samstar_env.data.loaders import load_folder
from samstar_env.data.paths import data_root
from samstar_env.metrics import gt_metrics
from samstar_env.params import ParamSpace
from samstar_env.problem import TuningProblem
from samstar_env.rewards.presets import configure_suite
from samstar_env.task import Task, make_task
from samstar_env.tune import DEFAULT_SPACE

BEGIN, END = "<!-- operating-rules:begin -->", "<!-- operating-rules:end -->"


@dataclass(frozen=True)
class Args:
    """Command-line arguments."""

    datasets: str = "perovskite,ito,auco,emps-dev"
    """comma-separated: synthetic task names and/or emps-dev"""
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    seeds: int = 3
    """NSGA-II runs per dataset (seeds 0..N-1)"""
    budget: int = 60
    """NSGA-II evaluations per run"""
    pop_size: int = 12
    """NSGA-II population"""
    tune_images: int = 2
    """images tuned on per dataset"""
    test_images: int = 8
    """held-out images each point is judged on"""
    size: int = 256
    """side of the synthetic images in px"""
    out: str = "runs/operating-rules"
    """output folder (rules.json)"""
    readme: str = ""
    """write the table into this README between the operating-rules markers"""


def dataset_task(name: str, args: Args) -> tuple[Task, tuple]:
    """(task on the tune images, held-out images) of one dataset."""
    space = ParamSpace.subset(list(DEFAULT_SPACE))
    if name != "emps-dev":
        task = make_task(name, n_images=args.tune_images, n_test_images=args.test_images, size=(args.size, args.size),
                         model=args.model, space=space)
        return task, task.test_images
    root = data_root(required=True)
    prior = emps_prior()
    tune = tuple(load_folder(root / "emps-train", pixel_size_nm=EMPS_PIXEL_SIZE_NM)[: args.tune_images])
    held = tuple(load_folder(root / "emps-dev", pixel_size_nm=EMPS_PIXEL_SIZE_NM)[: args.test_images])
    task = Task(name="emps-dev", images=tune, prior=prior, rewards=configure_suite("generic"), space=space, model=args.model)
    return task, held


def held_out_f1(engine, params, images, memo: dict) -> float:
    """Mean ground-truth F1@0.5 of ``params`` over ``images`` (memoized: fronts repeat settings)."""
    if params not in memo:
        memo[params] = float(np.mean([gt_metrics(engine.generate(im, params), im)["f1"] for im in images]))
    return memo[params]


def run(args: Args) -> dict:
    rows = []
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        task, held = dataset_task(name, args)
        problem = TuningProblem(task)
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            result = make_agent("nsga2", pop_size=args.pop_size).run(problem, budget=args.budget, seed=seed)
            memo: dict = {}
            oracle = max(held_out_f1(problem.engine, t.params, held, memo) for t in result.trials)
            row = {"dataset": name, "seed": seed, "oracle_f1": oracle, "rules": {}}
            for rule in RULES:
                op = choose(result, rule, problem=problem)
                f1 = held_out_f1(problem.engine, op.trial.params, held, memo)
                masks = float(np.mean([len(problem.engine.generate(im, op.trial.params)) for im in held]))
                row["rules"][rule] = {"f1": f1, "fraction": f1 / oracle if oracle > 0 else None, "masks_per_image": masks,
                                      "trial": op.trial.index}
            row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            print(f"{name} seed {seed}: oracle F1 {oracle:.3f}; "
                  + ", ".join(f"{r} {v['f1']:.3f}" for r, v in row["rules"].items()) + f" ({row['wall_s']:.0f} s)", flush=True)
    return {"args": vars(args) if hasattr(args, "__dict__") else {}, "rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> dict:
    """Per rule: mean F1 and mean fraction of the oracle per dataset and over all (dataset, seed) pairs."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    out: dict = {"datasets": datasets, "rules": {}}
    for rule in RULES:
        per = {}
        for d in datasets:
            rs = [r for r in rows if r["dataset"] == d]
            fr = [r["rules"][rule]["fraction"] for r in rs if r["rules"][rule]["fraction"] is not None]
            per[d] = {"f1": float(np.mean([r["rules"][rule]["f1"] for r in rs])),
                      "fraction": float(np.mean(fr)) if fr else None,
                      "masks_per_image": float(np.mean([r["rules"][rule]["masks_per_image"] for r in rs]))}
        # Mean over datasets (each the mean of its seeds); SE over every (dataset, seed) pair.
        fr_all = [v["fraction"] for v in per.values() if v["fraction"] is not None]
        pairs = [r["rules"][rule]["fraction"] for r in rows if r["rules"][rule]["fraction"] is not None]
        se = float(np.std(pairs, ddof=1) / np.sqrt(len(pairs))) if len(pairs) > 1 else None
        out["rules"][rule] = {"per_dataset": per, "mean_fraction": float(np.mean(fr_all)) if fr_all else None, "se_fraction": se}
    ranked = sorted((r for r in RULES if out["rules"][r]["mean_fraction"] is not None),
                    key=lambda r: -out["rules"][r]["mean_fraction"])
    out["best_rule"] = ranked[0] if ranked else None
    out["oracle_f1"] = {d: float(np.mean([r["oracle_f1"] for r in rows if r["dataset"] == d])) for d in datasets}
    return out


def markdown(summary: dict, args: Args) -> str:
    """The README table: F1@0.5 as a fraction of the oracle, per dataset and rule."""
    ds = summary["datasets"]
    lines = [
        f"`python benchmarks/scripts/operating_rules.py --readme README.md` ({args.model}, NSGA-II {args.budget} evaluations "
        f"x {args.seeds} seeds, {args.tune_images} tune and {args.test_images} held-out images per dataset; each cell: "
        "held-out F1@0.5 as a fraction of the best F1 among the run's evaluated parameter sets, mean over seeds; "
        "mean: over datasets, ± SE over (dataset, seed) pairs; bold: the best mean, the default rule):",
        "",
        "| rule | " + " | ".join(ds) + " | mean |",
        "|---|" + "---|" * (len(ds) + 1),
    ]
    for rule in RULES:
        r = summary["rules"][rule]
        cells = []
        for d in ds:
            v = r["per_dataset"][d]
            cells.append("n/a" if v["fraction"] is None else f"{v['fraction']:.2f} (F1 {v['f1']:.3f})")
        mean = "n/a" if r["mean_fraction"] is None else f"{r['mean_fraction']:.2f}"
        if r["mean_fraction"] is not None and r["se_fraction"] is not None:
            mean += f" ± {r['se_fraction']:.2f}"
        name = f"**{rule}**" if rule == summary["best_rule"] else rule
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    lines.append("| oracle F1 | " + " | ".join(f"{summary['oracle_f1'][d]:.3f}" for d in ds) + " | |")
    return "\n".join(lines)


def write_readme(path: Path, text: str) -> None:
    """Replace what lies between the markers (idempotent)."""
    doc = path.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    doc = run(args)
    doc["args"] = {k: getattr(args, k) for k in Args.__dataclass_fields__}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.json").write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(doc["summary"], args)
    print(table)
    print(f"best rule: {doc['summary']['best_rule']}")
    if args.readme:
        write_readme(Path(args.readme), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
