"""Aggregate run records into the suite summary: mean +- standard error over seeds, and ranks.

Summary schema (``SUMMARY_SCHEMA``, JSON object):

``schema``, ``suite`` (the Suite dict, or null), ``n_runs``, ``metrics`` (the aggregated metric names
and whether higher is better), ``agents`` (agent -> ``uses_labels``, ``segmenter``), ``table`` -- a
list of rows, one per (task, agent), each with ``task``, ``agent``, ``uses_labels``, ``segmenter``,
``n_seeds`` and for every metric ``<metric>_mean``, ``<metric>_se`` and ``<metric>_n`` -- ``ranks``
(per task, agent -> rank by mean final hypervolume; 1 = best, ties share the lower rank) and
``mean_rank`` (per agent, across tasks), ``normalization`` (per task: what the normalized hypervolume
was divided by, see :func:`normalized_hypervolumes`) and ``critical_difference`` (the Friedman /
Nemenyi comparison of the agents over (task, seed) blocks, see :func:`rank_agents`).

Version history: ``/2`` added ``normalized_hypervolume`` to the metrics, ``agents``, ``uses_labels``
and ``segmenter`` in the rows, ``normalization`` and ``critical_difference``.

Records of agents that read ground-truth labels (``"uses_labels": true``, e.g. the ``gt-grid``
oracle) are compared like any other but listed as ``"<agent> (labels)"`` in every table
(:func:`agent_label`); records written before those keys existed count as label-free SAM runs.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy.stats import friedmanchisquare, rankdata, studentized_range, wilcoxon

from samstar_env.errors import MissingExtraError

SUMMARY_SCHEMA = "samstar-bench-summary/2"

# metric name -> (how to read it from a run record, higher is better). normalized_hypervolume is
# not stored in run records: summarize() adds it to its copies (see normalized_hypervolumes).
METRICS: dict[str, tuple[Any, bool]] = {
    "normalized_hypervolume": (lambda r: r.get("normalized_hypervolume"), True),
    "final_hypervolume": (lambda r: r.get("final_hypervolume"), True),
    "igd_plus": (lambda r: r.get("igd_plus"), False),
    "evals_to_90pct": (lambda r: r.get("evals_to_90pct"), False),
    "test_f1": (lambda r: (r.get("test_gt") or {}).get("f1"), True),
    "test_msa": (lambda r: (r.get("test_gt") or {}).get("mean_seg_accuracy"), True),
    "wall_s": (lambda r: r.get("wall_s"), False),
}

#: Column headers of :func:`format_table`.
METRIC_LABELS: dict[str, str] = {
    "normalized_hypervolume": "norm. HV",
    "final_hypervolume": "HV",
    "igd_plus": "IGD+",
    "evals_to_90pct": "evals to 90%",
    "test_f1": "test F1@0.5",
    "test_msa": "test mSA",
    "wall_s": "wall s",
}

#: Fewest complete (task, seed) blocks for a test. Below 6 no two agents can differ significantly at
#: alpha 0.05: the smallest two-sided exact Wilcoxon p-value over N blocks is 2 / 2**N (0.0625 at
#: N = 5). Friedman's test could reject from 3 blocks of 3 agents, but its chi-square approximation
#: and Nemenyi's critical difference are large-sample results (Demsar 2006, sec. 3.2.2), so one
#: threshold serves both.
MIN_BLOCKS = 6

BENCH_EXTRA_HINT = "pip install 'samstar[bench]'"


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
    # Identical values (a deterministic agent over seeds) have SE exactly 0, not float round-off.
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 and np.ptp(v) > 0 else 0.0
    return float(v.mean()), se, int(len(v))


def uses_labels(record: dict[str, Any]) -> bool:
    """Whether the run's agent read ground-truth labels (records without the key did not)."""
    return bool(record.get("uses_labels", False))


def segmenter(record: dict[str, Any]) -> str:
    """The run's segmenter, ``"sam"`` for records written before the key existed."""
    return str(record.get("segmenter") or "sam")


def agent_label(agent: str, labels: bool) -> str:
    """How tables and figures name an agent: flagged when it reads ground-truth labels.

    Examples
    --------
    >>> agent_label("gt-grid", True), agent_label("nsga2", False)
    ('gt-grid (labels)', 'nsga2')
    """
    return f"{agent} (labels)" if labels else agent


def agent_labels(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Agent -> :func:`agent_label`, flagged when any of its records used labels."""
    flags: dict[str, bool] = {}
    for r in records:
        flags[r["agent"]] = flags.get(r["agent"], False) or uses_labels(r)
    return {a: agent_label(a, f) for a, f in sorted(flags.items())}


def _finite_positive(x: Any) -> bool:
    return x is not None and bool(np.isfinite(x)) and x > 0


def normalized_hypervolumes(records: Sequence[dict[str, Any]]) -> tuple[list[float | None], dict[str, dict[str, Any]]]:
    """Each run's final hypervolume as a fraction of its task's best known hypervolume.

    A record with a ``reference_hypervolume`` (the task's shipped reference front) is divided by it;
    one without is divided by the best final hypervolume of any run on the same task in
    ``records``. The latter depends on which agents ran: adding a stronger agent lowers everyone's
    value, so the returned ``normalization`` says which divisor each task used. A run above the
    reference front gets a value above 1.

    Parameters
    ----------
    records : sequence of dict
        Run records (``task``, ``final_hypervolume``, optionally ``reference_hypervolume``).

    Returns
    -------
    values : list of float or None
        One per record, in order; None where the final hypervolume or the divisor is missing or 0.
    normalization : dict
        Task -> ``{"by": "reference front" | "best run" | "reference front / best run",
        "reference_hypervolume": float | None, "best_final_hypervolume": float | None}``.

    Examples
    --------
    >>> recs = [{"task": "a", "final_hypervolume": 0.2, "reference_hypervolume": 0.4},
    ...         {"task": "b", "final_hypervolume": 0.3}, {"task": "b", "final_hypervolume": 0.6}]
    >>> values, how = normalized_hypervolumes(recs)
    >>> values
    [0.5, 0.5, 1.0]
    >>> how["a"]["by"], how["b"]["by"]
    ('reference front', 'best run')
    """
    best: dict[str, float] = {}
    for r in records:
        hv = r.get("final_hypervolume")
        if hv is not None and np.isfinite(hv):
            best[r["task"]] = max(best.get(r["task"], -np.inf), float(hv))
    values: list[float | None] = []
    used: dict[str, set[str]] = {}
    refs: dict[str, float] = {}
    for r in records:
        task, hv, ref = r["task"], r.get("final_hypervolume"), r.get("reference_hypervolume")
        div: float | None
        if ref is not None and _finite_positive(ref):
            by, div = "reference front", float(ref)
            refs.setdefault(task, div)
        else:
            by, div = "best run", best.get(task)
        used.setdefault(task, set()).add(by)
        if hv is not None and np.isfinite(hv) and div is not None and _finite_positive(div):
            values.append(float(hv) / div)
        else:
            values.append(None)
    normalization = {
        task: {
            "by": " / ".join(sorted(by)),
            "reference_hypervolume": refs.get(task),
            "best_final_hypervolume": best.get(task),
        }
        for task, by in sorted(used.items())
    }
    return values, normalization


@contextlib.contextmanager
def quiet_stats() -> Iterator[None]:
    """Within: no printing to stdout and no warnings (for the statistics and diagram calls; restored on exit)."""
    # scipy warns on degenerate samples and pandas / matplotlib deprecations surface inside
    # scikit-posthocs; keep that out of the caller's output, here only.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def import_posthocs() -> Any:
    """The ``scikit_posthocs`` module, or :class:`~samstar_env.errors.MissingExtraError` naming the extra."""
    try:
        with quiet_stats():
            import scikit_posthocs
    except ImportError as exc:
        raise MissingExtraError(
            f'the critical-difference diagram needs scikit-posthocs (the "bench" extra): {BENCH_EXTRA_HINT}'
        ) from exc
    return scikit_posthocs


def nemenyi_critical_difference(n_agents: int, n_blocks: int, *, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference: the smallest gap of mean ranks significant at ``alpha``.

    ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` for ``k`` agents ranked over ``N`` blocks, with
    ``q_alpha`` the studentized range quantile (infinite degrees of freedom) over ``sqrt(2)``
    (Demsar 2006, "Statistical comparisons of classifiers over multiple data sets", JMLR 7,
    sec. 3.2.2 and table 5a).

    Examples
    --------
    >>> round(nemenyi_critical_difference(3, 12), 4)  # q_0.05 = 2.343 for k = 3
    0.9568
    """
    q_alpha = float(studentized_range.ppf(1 - alpha, n_agents, np.inf)) / math.sqrt(2)
    return q_alpha * math.sqrt(n_agents * (n_agents + 1) / (6 * n_blocks))


def rank_agents(records: Sequence[dict[str, Any]], *, alpha: float = 0.05) -> dict[str, Any]:
    """Compare the agents over (task, seed) blocks by normalized hypervolume: Friedman, then Nemenyi.

    As CARP-S ranks optimizers: every (task, seed) pair on which every agent has a finite normalized
    hypervolume is one block (incomplete blocks are dropped and counted); within a block the agents
    are ranked (1 = highest, ties averaged). With three or more agents, Friedman's test
    (:func:`scipy.stats.friedmanchisquare`) asks whether any agent differs, Nemenyi's post-hoc test
    (:func:`scikit_posthocs.posthoc_nemenyi_friedman`, the ``bench`` extra) gives the pairwise
    p-values and its critical difference (:func:`nemenyi_critical_difference`) is the smallest gap of
    mean ranks that is significant at ``alpha``. With two agents the test is Wilcoxon's two-sided
    signed-rank test (:func:`scipy.stats.wilcoxon`, no extra needed) and there is no critical
    difference. At least :data:`MIN_BLOCKS` complete blocks are needed for either.

    Parameters
    ----------
    records : sequence of dict
        Run records (``task``, ``agent``, ``seed``, ``final_hypervolume``, optionally
        ``reference_hypervolume`` and ``uses_labels``).
    alpha : float, optional
        Family-wise significance level.

    Returns
    -------
    dict
        JSON-ready: ``measure``, ``higher_is_better``, ``alpha``, ``agents``, ``labels`` (agent ->
        table name), ``n_blocks``, ``n_blocks_dropped``, ``mean_ranks`` (agent -> mean rank, empty
        without a complete block), ``test`` (``"friedman-nemenyi"``, ``"wilcoxon"`` or None),
        ``pvalue`` (None when skipped, or when every block is a tie), ``critical_difference``
        (Nemenyi's, in ranks; None unless ``test`` is ``"friedman-nemenyi"``), ``nemenyi_pvalues``
        (agent -> agent -> Nemenyi p-value, 1 on the diagonal; None unless ``test`` is
        ``"friedman-nemenyi"``) and ``skipped`` (None, or the sentence saying why no test ran:
        fewer than 2 agents, fewer than :data:`MIN_BLOCKS` complete blocks, scikit-posthocs missing).

    Examples
    --------
    >>> recs = [{"task": "t", "agent": "a", "seed": s, "final_hypervolume": 0.5} for s in range(3)]
    >>> rank_agents(recs)["skipped"]
    'no critical-difference diagram: it needs at least 2 agents, the records have 1 (a).'
    """
    values, _ = normalized_hypervolumes(records)
    agents = sorted({r["agent"] for r in records})
    labels = agent_labels(records)
    cells: dict[tuple[str, Any], dict[str, list[float]]] = {}
    for r, v in zip(records, values, strict=True):
        if v is not None:
            cells.setdefault((r["task"], r.get("seed")), {}).setdefault(r["agent"], []).append(v)
    all_blocks = {(r["task"], r.get("seed")) for r in records}
    blocks = sorted((b for b, per in cells.items() if set(per) == set(agents)), key=lambda b: (b[0], str(b[1])))
    # A repeated run of one block (same task, agent and seed) counts once, as its mean.
    matrix = np.array([[np.mean(cells[b][a]) for a in agents] for b in blocks], np.float64).reshape(len(blocks), len(agents))
    mean_ranks = (
        rankdata(-matrix, axis=1, method="average").mean(axis=0) if len(blocks) and len(agents) > 1 else np.ones(len(agents))
    )
    info: dict[str, Any] = {
        "measure": "normalized_hypervolume",
        "higher_is_better": True,
        "alpha": alpha,
        "agents": agents,
        "labels": labels,
        "n_blocks": len(blocks),
        "n_blocks_dropped": len(all_blocks) - len(blocks),
        "mean_ranks": {a: float(k) for a, k in zip(agents, mean_ranks, strict=True)} if len(blocks) else {},
        "test": None,
        "pvalue": None,
        "critical_difference": None,
        "nemenyi_pvalues": None,
        "skipped": None,
    }
    if len(agents) < 2:
        info["skipped"] = (
            f"no critical-difference diagram: it needs at least 2 agents, the records have {len(agents)} ({', '.join(agents)})."
        )
        return info
    if len(blocks) < MIN_BLOCKS:
        info["skipped"] = (
            f"no critical-difference diagram: it needs at least {MIN_BLOCKS} (task, seed) blocks on which every "
            f"agent has a run; the records have {len(blocks)} ({info['n_blocks_dropped']} incomplete blocks dropped)."
        )
        return info
    # Every block one tie: Friedman's statistic is 0/0 and every Wilcoxon difference is 0, so there
    # is no p-value (null keeps the JSON standard) and scipy is not asked (it would warn).
    all_tied = bool(np.all(matrix == matrix[:, :1]))
    if len(agents) == 2:
        info["test"] = "wilcoxon"
        if not all_tied:
            with quiet_stats():
                info["pvalue"] = float(wilcoxon(matrix[:, 0], matrix[:, 1]).pvalue)
        return info
    try:
        sp = import_posthocs()
    except MissingExtraError as exc:
        info["skipped"] = f"no critical-difference diagram: {exc}."
        return info
    import pandas as pd  # a scikit-posthocs dependency

    with quiet_stats():
        if not all_tied:
            info["pvalue"] = float(friedmanchisquare(*matrix.T).pvalue)
        # Nemenyi's p-values depend on |mean rank differences| only, so its ascending ranks give ours.
        nemenyi = sp.posthoc_nemenyi_friedman(pd.DataFrame(matrix, columns=agents)).loc[agents, agents]
    info["test"] = "friedman-nemenyi"
    info["critical_difference"] = nemenyi_critical_difference(len(agents), len(blocks), alpha=alpha)
    info["nemenyi_pvalues"] = {a: {b: float(nemenyi.loc[a, b]) for b in agents} for a in agents}
    return info


def summarize(records: Sequence[dict[str, Any]], *, suite: Any | None = None) -> dict[str, Any]:
    """Aggregate run records (see the module docstring for the schema)."""
    normalized, normalization = normalized_hypervolumes(records)
    recs = [{**r, "normalized_hypervolume": v} for r, v in zip(records, normalized, strict=True)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault((r["task"], r["agent"]), []).append(r)
    table = []
    for (task, agent), runs in sorted(groups.items()):
        row: dict[str, Any] = {
            "task": task,
            "agent": agent,
            "uses_labels": any(uses_labels(r) for r in runs),
            "segmenter": "/".join(sorted({segmenter(r) for r in runs})),
            "n_seeds": len(runs),
        }
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
    agents: dict[str, dict[str, Any]] = {}
    for row in table:
        a = agents.setdefault(row["agent"], {"uses_labels": False, "segmenter": row["segmenter"]})
        a["uses_labels"] = a["uses_labels"] or row["uses_labels"]
    mean_rank = {a: float(np.mean([ranks[t][a] for t in ranks if a in ranks[t]])) for a in sorted(agents)}
    return {
        "schema": SUMMARY_SCHEMA,
        "suite": suite.to_dict() if suite is not None else None,
        "n_runs": len(records),
        "metrics": {name: {"higher_is_better": hib} for name, (_, hib) in METRICS.items()},
        "agents": dict(sorted(agents.items())),
        "table": table,
        "ranks": ranks,
        "mean_rank": mean_rank,
        "normalization": normalization,
        "critical_difference": rank_agents(records),
    }


DEFAULT_TABLE_METRICS = ("normalized_hypervolume", "final_hypervolume", "igd_plus", "evals_to_90pct", "test_f1", "test_msa", "wall_s")


def format_table(summary: dict[str, Any], *, metrics: Sequence[str] = DEFAULT_TABLE_METRICS, rank: bool = True) -> str:
    """A Markdown table of ``summary``: mean ± SE per task x agent, with the rank by hypervolume.

    Agents that read ground-truth labels are named ``"<agent> (labels)"``.

    Parameters
    ----------
    summary : dict
        From :func:`summarize`.
    metrics : sequence of str, optional
        Columns, names of :data:`METRICS`.
    rank : bool, optional
        Add the rank column (per task, by mean final hypervolume).

    Examples
    --------
    >>> s = summarize([{"task": "t", "agent": "gt-grid", "seed": 0, "final_hypervolume": 0.5,
    ...                 "uses_labels": True, "test_gt": {"f1": 0.8}}])
    >>> print(format_table(s, metrics=("normalized_hypervolume", "test_f1", "test_msa"), rank=False))
    | task | agent | seeds | norm. HV | test F1@0.5 | test mSA |
    |---|---|---|---|---|---|
    | t | gt-grid (labels) | 1 | 1 ± 0 | 0.8 ± 0 | n/a |
    """
    head = ["task", "agent", "seeds", *(["rank"] if rank else []), *(METRIC_LABELS.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["table"]:
        cells = [row["task"], agent_label(row["agent"], row.get("uses_labels", False)), str(row["n_seeds"])]
        if rank:
            cells.append(f"{summary['ranks'][row['task']][row['agent']]:g}")
        for m in metrics:
            mean, se, n = row.get(f"{m}_mean"), row.get(f"{m}_se"), row.get(f"{m}_n", 0)
            cells.append("n/a" if not n else f"{mean:.4g} ± {se:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_normalization(summary: dict[str, Any]) -> str:
    """One sentence saying what each task's normalized hypervolume was divided by.

    Examples
    --------
    >>> format_normalization(summarize([{"task": "a", "agent": "x", "seed": 0, "final_hypervolume": 0.2,
    ...                                  "reference_hypervolume": 0.4}]))
    "Normalized hypervolume: each run's final hypervolume divided by the task's reference-front hypervolume (a)."
    """
    by: dict[str, list[str]] = {}
    for task, how in (summary.get("normalization") or {}).items():
        by.setdefault(how["by"], []).append(task)
    words = {
        "reference front": "the task's reference-front hypervolume",
        "best run": "the best final hypervolume of any run on the task in these records, for tasks without a reference front",
        "best run / reference front": "the reference-front hypervolume where the run's record has one, else the best run's",
    }
    parts = [f"{words.get(k, k)} ({', '.join(v)})" for k, v in sorted(by.items(), key=lambda kv: kv[0] != "reference front")]
    return "Normalized hypervolume: each run's final hypervolume divided by " + "; by ".join(parts) + "."


def format_ranks(summary: dict[str, Any]) -> str:
    """The critical-difference result in one sentence: mean ranks, test, p-value, critical difference.

    Examples
    --------
    >>> recs = [{"task": "t", "agent": a, "seed": 0, "final_hypervolume": hv} for a, hv in (("a", 0.5), ("b", 0.4))]
    >>> print(format_ranks(summarize(recs)))  # doctest: +ELLIPSIS
    Mean ranks by normalized hypervolume over 1 (task, seed) blocks (0 dropped): a 1.00, b 2.00. no critical-difference diagram: ...
    """
    cd = summary.get("critical_difference")
    if not cd:
        return "No critical-difference result in this summary (written before schema /2)."
    labels = cd.get("labels", {})
    ranks = sorted(cd["mean_ranks"].items(), key=lambda kv: kv[1])
    text = ""
    if ranks:
        text = (
            f"Mean ranks by normalized hypervolume over {cd['n_blocks']} (task, seed) blocks ({cd['n_blocks_dropped']} dropped): "
            + ", ".join(f"{labels.get(a, a)} {k:.2f}" for a, k in ranks)
            + ". "
        )
    if cd.get("skipped"):
        return text + cd["skipped"]
    p = "no p-value (every block is a tie)" if cd["pvalue"] is None else f"p = {cd['pvalue']:.3g}"
    if cd["test"] == "friedman-nemenyi":
        return text + (
            f"Friedman test {p}; Nemenyi critical difference {cd['critical_difference']:.3g} "
            f"at alpha {cd['alpha']:g} (mean ranks further apart than that differ significantly)."
        )
    if cd["test"] == "wilcoxon":
        return text + f"Wilcoxon signed-rank test (two-sided, two agents) {p} at alpha {cd['alpha']:g}."
    return text + f"{cd['test']} test {p} at alpha {cd['alpha']:g}."
