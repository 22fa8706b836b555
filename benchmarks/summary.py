"""Aggregate run records into the suite summary: mean +- standard error over seeds, and ranks.

Summary schema (``SUMMARY_SCHEMA``): ``schema``, ``suite``, ``n_runs``, ``metrics`` (the list of
aggregated metric names and whether higher is better), ``table`` — a list of rows, one per
(task, agent), each with ``task``, ``agent``, ``n_seeds`` and for every metric ``<metric>_mean``,
``<metric>_se`` and ``<metric>_n`` — and ``ranks``: per task, agent -> rank by mean final hypervolume
(1 = best; ties share the lower rank), plus ``mean_rank`` per agent across tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

SUMMARY_SCHEMA = "samstar-bench-summary/1"

# metric name -> (how to read it from a run record, higher is better)
METRICS: dict[str, tuple[Any, bool]] = {
    "final_hypervolume": (lambda r: r.get("final_hypervolume"), True),
    "igd_plus": (lambda r: r.get("igd_plus"), False),
    "evals_to_90pct": (lambda r: r.get("evals_to_90pct"), False),
    "test_f1": (lambda r: (r.get("test_gt") or {}).get("f1"), True),
    "test_msa": (lambda r: (r.get("test_gt") or {}).get("mean_seg_accuracy"), True),
    "wall_s": (lambda r: r.get("wall_s"), False),
}


def mean_se(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, standard error (ddof=1) and count of the finite values; (nan, nan, 0) when none.

    Examples
    --------
    >>> mean_se([1.0, 3.0, None])
    (2.0, 1.0, 2)
    """
    v = np.array([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se, int(len(v))


def summarize(records: Sequence[dict[str, Any]], *, suite: Any | None = None) -> dict[str, Any]:
    """Aggregate run records (see the module docstring for the schema)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["task"], r["agent"]), []).append(r)
    table = []
    for (task, agent), runs in sorted(groups.items()):
        row: dict[str, Any] = {"task": task, "agent": agent, "n_seeds": len(runs)}
        for name, (get, _) in METRICS.items():
            m, se, n = mean_se(get(r) for r in runs)
            row[f"{name}_mean"], row[f"{name}_se"], row[f"{name}_n"] = m, se, n
        table.append(row)
    ranks: dict[str, dict[str, float]] = {}
    for task in sorted({row["task"] for row in table}):
        rows = [row for row in table if row["task"] == task]
        hv = np.array([row["final_hypervolume_mean"] for row in rows])
        # rankdata on -hv: the highest hypervolume gets rank 1; "min" gives ties the better rank.
        rk = rankdata(-np.nan_to_num(hv, nan=-np.inf), method="min")
        ranks[task] = {row["agent"]: float(k) for row, k in zip(rows, rk, strict=True)}
    agents = sorted({row["agent"] for row in table})
    mean_rank = {a: float(np.mean([ranks[t][a] for t in ranks if a in ranks[t]])) for a in agents}
    return {
        "schema": SUMMARY_SCHEMA,
        "suite": suite.to_dict() if suite is not None else None,
        "n_runs": len(records),
        "metrics": {name: {"higher_is_better": hib} for name, (_, hib) in METRICS.items()},
        "table": table,
        "ranks": ranks,
        "mean_rank": mean_rank,
    }


def format_table(summary: dict[str, Any], *, metrics: Sequence[str] = ("final_hypervolume", "igd_plus", "evals_to_90pct", "test_f1", "wall_s")) -> str:
    """A Markdown table of ``summary`` (mean +- SE per task x agent, with the rank by hypervolume)."""
    head = ["task", "agent", "seeds", "rank", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["table"]:
        cells = [row["task"], row["agent"], str(row["n_seeds"]), f"{summary['ranks'][row['task']][row['agent']]:g}"]
        for m in metrics:
            mean, se, n = row[f"{m}_mean"], row[f"{m}_se"], row[f"{m}_n"]
            cells.append("n/a" if n == 0 else f"{mean:.4g} ± {se:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
