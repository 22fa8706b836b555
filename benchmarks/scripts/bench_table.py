"""Print a benchmark folder as a Markdown results table, and optionally put it into the README.

Reads the run records of a ``samstar bench`` output folder and prints, per task and agent, the
normalized hypervolume, test F1@0.5, test mSA and wall time (each mean ± standard error over seeds,
with the number of seeds), then the agents' mean ranks from the critical-difference comparison
(Friedman + Nemenyi over (task, seed) blocks; needs the ``bench`` extra for the test itself).
Agents that read ground-truth labels are named ``"<agent> (labels)"``.

``--readme README.md`` replaces the text between ``<!-- bench-default:begin -->`` and
``<!-- bench-default:end -->`` in that file (``--marker`` names another pair); running it twice on
the same records leaves the file as it was. ``--run`` first runs the suite into the folder, in this
process and resumable (finished runs are kept). Run from the repo root::

    python benchmarks/scripts/bench_table.py --run --workers 2 --readme README.md
    python benchmarks/scripts/bench_table.py --folder bench/quick
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from script_args import parse_dataclass_args

TABLE_METRICS = ("normalized_hypervolume", "test_f1", "test_msa", "wall_s")


@dataclass(frozen=True)
class Args:
    """Command-line arguments."""

    folder: str = "bench/default"
    """output folder of `samstar bench` (holds runs/*.json)"""
    suite: str = "default"
    """with --run: the suite to run (a shipped name or a TOML path)"""
    run: bool = False
    """first run the suite into --folder (resumable: finished runs are skipped)"""
    workers: int = 0
    """with --run: 0 runs the suite in this process; N > 0 on a Dask LocalCluster of N worker processes
    (as `samstar bench --executor dask --workers N`: the same records, only wall times differ)"""
    readme: str = ""
    """also write the table between the markers of this Markdown file"""
    marker: str = "bench-default"
    """marker name: the table goes between <!-- NAME:begin --> and <!-- NAME:end -->"""


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_between_markers(text: str, block: str, *, marker: str = "bench-default") -> str:
    """``text`` with everything between the ``marker`` pair replaced by ``block`` (markers kept).

    Raises ``ValueError`` unless each marker occurs exactly once, begin before end.
    """
    begin, end = markers(marker)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"expected one {begin} followed by one {end}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block.strip()}\n{end}{tail}"


def update_readme(path: str | Path, block: str, *, marker: str = "bench-default") -> bool:
    """Write ``block`` between the markers of ``path``; True when the file changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    new = replace_between_markers(old, block, marker=marker)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def markdown_block(folder: str | Path) -> str:
    """The Markdown for ``folder``: where it comes from, the table, the mean ranks, the normalization."""
    from samstar_env.benchmarks.report import load_records
    from samstar_env.benchmarks.summary import format_normalization, format_ranks, format_table, summarize

    folder = Path(folder)
    records = load_records(folder)
    summary = summarize(records)
    suite_file = folder / "suite.json"
    suite = json.loads(suite_file.read_text(encoding="utf-8")) if suite_file.is_file() else {}
    # No date or wall clock in the header: the same records give the same text, so --readme is idempotent.
    what = ", ".join(f"{k} {suite[k]}" for k in ("model", "budget") if k in suite)
    header = (
        f"Suite `{suite.get('name', folder.name)}`{f' ({what})' if what else ''}: {len(records)} runs in "
        f"`{folder.as_posix()}`, made into this table by `python benchmarks/scripts/bench_table.py`. "
        "Mean ± standard error over seeds; test F1@0.5 and mSA of each run's operating point on its held-out images "
        "(the default label-free rule; gt-grid: the best mSA on the tune images' labels); wall s per run."
    )
    return "\n\n".join(
        [header, format_table(summary, metrics=TABLE_METRICS, rank=False), format_ranks(summary), format_normalization(summary)]
    )


def main(argv: list[str] | None = None) -> int:
    args = Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))
    if args.run:
        from samstar_env.benchmarks.runner import run_suite
        from samstar_env.benchmarks.suites import load_suite

        executor = None
        if args.workers > 0:
            from samstar_env.benchmarks.executors import DaskExecutor

            executor = DaskExecutor(n_workers=args.workers)
        try:
            run_suite(load_suite(args.suite), args.folder, executor=executor)
        finally:
            if executor is not None:
                executor.close()
    block = markdown_block(args.folder)
    print(block)
    if args.readme:
        changed = update_readme(args.readme, block, marker=args.marker)
        print(f"\n{args.readme}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
