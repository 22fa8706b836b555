"""Summary of hand-made run records: normalized hypervolume, label flags, the critical-difference test."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from samstar_env.benchmarks.summary import (
    MIN_BLOCKS,
    SUMMARY_SCHEMA,
    format_ranks,
    format_table,
    nemenyi_critical_difference,
    normalized_hypervolumes,
    rank_agents,
    summarize,
)


def _rec(task: str, agent: str, seed: int, hv: float, **extra) -> dict:
    return {"task": task, "agent": agent, "seed": seed, "final_hypervolume": hv, **extra}


def _blocks(n_tasks: int = 3, n_seeds: int = 4, *, seed: int = 0) -> list[dict]:
    """3 agents: `best` wins every block, `mid` and `low` (an oracle flagged as using labels) are shuffled."""
    rng = np.random.default_rng(seed)
    recs = []
    for t in range(n_tasks):
        for s in range(n_seeds):
            mid, low = rng.uniform(0.1, 0.5, 2)
            recs += [
                _rec(f"t{t}", "best", s, 0.8, reference_hypervolume=1.0),
                _rec(f"t{t}", "mid", s, mid, reference_hypervolume=1.0),
                _rec(f"t{t}", "low", s, low, reference_hypervolume=1.0, uses_labels=True, segmenter="watershed"),
            ]
    return recs


def test_normalized_hypervolume_by_reference_front():
    recs = [
        _rec("a", "x", 0, 0.3, reference_hypervolume=0.6),
        _rec("a", "x", 1, 0.5, reference_hypervolume=0.6),
        _rec("a", "y", 0, 0.66, reference_hypervolume=0.6),  # beats the reference front: above 1
    ]
    values, how = normalized_hypervolumes(recs)
    assert values == pytest.approx([0.5, 0.5 / 0.6, 1.1])
    assert how["a"] == {"by": "reference front", "reference_hypervolume": 0.6, "best_final_hypervolume": 0.66}
    row = next(r for r in summarize(recs)["table"] if r["agent"] == "x")
    assert row["normalized_hypervolume_mean"] == pytest.approx((0.5 + 0.5 / 0.6) / 2)
    assert row["normalized_hypervolume_se"] == pytest.approx(np.std([0.5, 0.5 / 0.6], ddof=1) / np.sqrt(2))
    assert row["normalized_hypervolume_n"] == 2


def test_normalized_hypervolume_by_best_run_without_reference():
    recs = [
        _rec("a", "x", 0, 0.2, reference_hypervolume=None),
        _rec("a", "y", 0, 0.4),
        _rec("b", "x", 0, 0.0),  # every run 0: no divisor, no value
        _rec("c", "x", 0, 0.1, reference_hypervolume=0.5),
        _rec("c", "y", 0, 0.3),  # mixed: this one has no reference, divided by c's best run
    ]
    values, how = normalized_hypervolumes(recs)
    assert values == pytest.approx([0.5, 1.0, None, 0.2, 1.0])
    assert how["a"]["by"] == "best run" and how["a"]["best_final_hypervolume"] == 0.4
    assert how["b"]["by"] == "best run" and how["c"]["by"] == "best run / reference front"
    s = summarize(recs)
    assert s["schema"] == SUMMARY_SCHEMA == "samstar-bench-summary/2"
    assert s["normalization"] == how
    b = next(r for r in s["table"] if r["task"] == "b")
    assert b["normalized_hypervolume_n"] == 0


def test_label_flags_and_metric_columns():
    recs = [
        _rec("t", "gt-grid", 0, 0.5, uses_labels=True, test_gt={"f1": 0.9, "mean_seg_accuracy": 0.7}, wall_s=3.0),
        _rec("t", "nsga2", 0, 0.4, test_gt={"f1": 0.6, "mean_seg_accuracy": 0.5}, wall_s=2.0),  # an old record
        _rec("t", "watershed", 0, 0.3, uses_labels=False, segmenter="watershed", wall_s=1.0),
    ]
    s = summarize(recs)
    flags = {r["agent"]: (r["uses_labels"], r["segmenter"]) for r in s["table"]}
    assert flags == {"gt-grid": (True, "sam"), "nsga2": (False, "sam"), "watershed": (False, "watershed")}
    assert s["agents"]["gt-grid"] == {"uses_labels": True, "segmenter": "sam"}
    table = format_table(s)
    assert "| t | gt-grid (labels) |" in table and "| t | nsga2 |" in table and "nsga2 (labels)" not in table
    header = table.splitlines()[0]
    for col in ("norm. HV", "HV", "test F1@0.5", "test mSA", "wall s"):
        assert f" {col} |" in header
    assert "0.9 ± 0" in table and "0.7 ± 0" in table


def test_critical_difference_finds_the_agent_that_always_wins():
    pytest.importorskip("scikit_posthocs")
    recs = _blocks(3, 4)
    info = rank_agents(recs)
    assert info["skipped"] is None
    assert info["test"] == "friedman-nemenyi"
    assert info["n_blocks"] == 12 and info["n_blocks_dropped"] == 0
    assert info["mean_ranks"]["best"] == 1.0
    assert info["mean_ranks"]["mid"] + info["mean_ranks"]["low"] == pytest.approx(5.0)
    assert info["pvalue"] < 0.05
    # Nemenyi: q_0.05(k=3, inf) / sqrt(2) * sqrt(k (k + 1) / (6 N)), Demsar (2006), table 5a.
    assert info["critical_difference"] == pytest.approx(2.343 * np.sqrt(3 * 4 / (6 * 12)), rel=1e-3)
    assert info["labels"]["low"] == "low (labels)"
    # Pairwise Nemenyi p-values: symmetric, 1 on the diagonal, below alpha exactly where the mean
    # ranks are further apart than the critical difference.
    pv, ranks, cd = info["nemenyi_pvalues"], info["mean_ranks"], info["critical_difference"]
    assert set(pv) == {"best", "mid", "low"} and all(set(row) == set(pv) for row in pv.values())
    for a in pv:
        assert pv[a][a] == 1.0
        for b in pv:
            assert pv[a][b] == pytest.approx(pv[b][a])
            assert (pv[a][b] < info["alpha"]) == (abs(ranks[a] - ranks[b]) > cd)
    assert pv["best"]["mid"] < 0.05 and pv["best"]["low"] < 0.05
    s = summarize(recs)
    assert s["critical_difference"] == info
    json.dumps(info, allow_nan=False)  # plain floats, no NaN: valid JSON in summary.json
    assert "best 1.00" in format_ranks(s) and "Friedman test p = " in format_ranks(s)


def test_critical_difference_reference_values():
    # Demsar (2006), table 5a: q_0.05 = 1.960, 2.343, 2.569 for k = 2, 3, 4.
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569)):
        assert nemenyi_critical_difference(k, 10) == pytest.approx(q * np.sqrt(k * (k + 1) / 60), rel=1e-3)


def test_critical_difference_two_agents_uses_wilcoxon():
    recs = [r for r in _blocks(2, 4) if r["agent"] != "low"]
    info = rank_agents(recs)
    assert info["skipped"] is None and info["test"] == "wilcoxon"
    assert info["critical_difference"] is None and info["nemenyi_pvalues"] is None
    # `best` wins all 8 blocks: the exact two-sided p-value is 2 / 2**8.
    assert info["pvalue"] == pytest.approx(2 / 2**8)
    assert "Wilcoxon signed-rank test (two-sided, two agents) p = " in format_ranks(summarize(recs))


def test_critical_difference_of_ties_has_no_pvalue():
    pytest.importorskip("scikit_posthocs")
    recs = [_rec(f"t{t}", a, s, 0.5) for t in range(2) for s in range(3) for a in ("x", "y", "z")]
    info = rank_agents(recs)
    assert info["test"] == "friedman-nemenyi" and info["pvalue"] is None
    assert info["mean_ranks"] == {"x": 2.0, "y": 2.0, "z": 2.0}
    assert info["nemenyi_pvalues"]["x"]["y"] == pytest.approx(1.0)
    two = rank_agents([r for r in recs if r["agent"] != "z"])
    assert two["test"] == "wilcoxon" and two["pvalue"] is None
    assert "no p-value (every block is a tie)" in format_ranks({"critical_difference": info})


def test_critical_difference_is_silent(capsys):
    pytest.importorskip("scikit_posthocs")
    import warnings

    ties = [_rec(f"t{t}", a, s, 0.5) for t in range(2) for s in range(3) for a in ("x", "y", "z")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank_agents(_blocks(2, 3))
        rank_agents(ties)
        rank_agents([r for r in ties if r["agent"] != "z"])
    assert capsys.readouterr() == ("", "")


def test_incomplete_blocks_are_dropped():
    pytest.importorskip("scikit_posthocs")
    recs = _blocks(3, 4)
    recs = [r for r in recs if not (r["task"] == "t0" and r["seed"] == 0 and r["agent"] == "mid")]
    info = rank_agents(recs)
    assert info["n_blocks"] == 11 and info["n_blocks_dropped"] == 1


def test_critical_difference_skips_with_one_agent_or_few_blocks():
    one = [_rec("t", "nsga2", s, 0.5) for s in range(10)]
    info = rank_agents(one)
    assert info["test"] is None and info["pvalue"] is None and info["nemenyi_pvalues"] is None
    assert info["skipped"] == "no critical-difference diagram: it needs at least 2 agents, the records have 1 (nsga2)."
    few = _blocks(1, MIN_BLOCKS - 1)
    info = rank_agents(few)
    assert info["test"] is None and f"at least {MIN_BLOCKS} (task, seed) blocks" in info["skipped"]
    assert info["mean_ranks"]["best"] == 1.0  # the ranks need no test
    assert "no critical-difference diagram" in format_ranks(summarize(few))


def test_critical_difference_without_scikit_posthocs_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scikit_posthocs", None)  # `import scikit_posthocs` raises ImportError
    info = rank_agents(_blocks(3, 4))
    assert info["test"] is None and "samstar[bench]" in info["skipped"]
    assert info["mean_ranks"]["best"] == 1.0
