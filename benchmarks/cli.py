"""``samstar bench`` and ``samstar report``: run a suite, then render it."""

from __future__ import annotations

import argparse
from typing import Any


def _seeds(text: str) -> tuple[int, ...]:
    """``"10"`` -> seeds 0..9; ``"0,3,7"`` -> those seeds."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        n = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected a count (e.g. 10) or a list (e.g. 0,3,7)") from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected at least 1")
    return tuple(range(n))


def _bench(args: argparse.Namespace) -> int:
    from samstar_env.benchmarks.executors import DaskExecutor, LocalExecutor, dask_evaluator
    from samstar_env.benchmarks.runner import run_suite
    from samstar_env.benchmarks.suites import load_suite
    from samstar_env.benchmarks.summary import format_ranks, format_table

    suite = load_suite(args.suite).override(
        agents=tuple(a for a in args.agents.split(",") if a) if args.agents else None,
        # --agents names everything to run, baselines included: the suite's own baselines go.
        baselines=() if args.agents else None,
        seeds=args.seeds,
        budget=args.budget,
        model=args.model,
        tile_shape=args.tile_shape,
        halo=args.halo,
    )
    executor: Any
    if args.executor == "dask":
        executor = DaskExecutor(scheduler=args.scheduler, n_workers=args.workers)
    elif args.executor == "dask-evaluations":
        dask = DaskExecutor(scheduler=args.scheduler, n_workers=args.workers)
        executor = LocalExecutor(evaluator=dask_evaluator(dask.client))
    else:
        executor = LocalExecutor()
    try:
        summary = run_suite(suite, args.out, executor=executor)
    finally:
        close = getattr(executor, "close", None)
        if close:
            close()
    print(format_table(summary))
    print(format_ranks(summary))
    print(f"results: {args.out}/runs/*.json, summary: {args.out}/summary.json; render with `samstar report {args.out} -o report.html`")
    return 0


def _report(args: argparse.Namespace) -> int:
    from samstar_env.benchmarks.report import write_report

    out = write_report(args.folder, args.output, tensorboard=not args.no_tensorboard)
    print(f"wrote {out}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``bench`` and ``report``."""
    p = subparsers.add_parser("bench", help="run a benchmark suite (task x agent x seed); resumable")
    p.add_argument("suite", help="a shipped suite (default, quick) or a suite .toml file")
    p.add_argument(
        "--agents",
        help="comma-separated agents and baselines to run, e.g. nsga2,watershed,gt-grid (default: the suite's agents and baselines; "
        "baselines: watershed = classical watershed tuned by NSGA-II on the rewards, gt-grid = micro-sam's grid picked by ground truth, an oracle)",
    )
    p.add_argument("--seeds", type=_seeds, help="a count N (seeds 0..N-1) or a comma-separated list (default: the suite's)")
    p.add_argument("--budget", type=int, help="evaluations per run (default: the suite's)")
    p.add_argument("--model", help="model name or checkpoint path (default: the suite's)")
    p.add_argument(
        "--executor", choices=("local", "dask", "dask-evaluations"), default="local",
        help="local: runs in this process; dask: each run on a Dask worker; dask-evaluations: runs here, each population's evaluations on Dask workers",
    )
    p.add_argument("--scheduler", help="Dask scheduler address (default: start a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    p.add_argument("--out", required=True, help="output folder (finished runs in it are skipped)")
    from samstar_env.engine.tiles import add_tiling_arguments

    add_tiling_arguments(p)
    p.set_defaults(func=_bench)

    r = subparsers.add_parser("report", help="render a benchmark folder as a static HTML page")
    r.add_argument("folder", help="output folder of `samstar bench`")
    r.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    r.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files beside the runs")
    r.set_defaults(func=_report)
