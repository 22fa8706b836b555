"""The HTML report and the README table script on hand-made run records (no SAM runs)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from samstar_env.benchmarks.report import cd_figure, hypervolume_figure, write_report
from samstar_env.benchmarks.runner import RUN_SCHEMA
from samstar_env.benchmarks.summary import rank_agents
from tests.script_helpers import load_script

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(task: str, agent: str, seed: int, hv: float, **extra) -> dict:
    rewards = [[hv * 0.5, hv], [hv, hv * 0.5], [0.1, 0.1]]
    return {
        "schema": RUN_SCHEMA,
        "task": task,
        "agent": agent,
        "seed": seed,
        "reward_names": ["coverage", "count"],
        "result": {"trials": [{"rewards": r} for r in rewards], "front": [0, 1]},
        "hypervolume_curve": [hv * 0.5, hv * 0.8, hv],
        "final_hypervolume": hv,
        "reference_hypervolume": None,
        "test_gt": {"f1": 0.4 + hv / 2, "mean_seg_accuracy": 0.3 + hv / 3},
        "wall_s": 1.5,
        **extra,
    }


def _records(agents: tuple[str, ...], *, n_tasks: int = 2, n_seeds: int = 3) -> list[dict]:
    """`agents[0]` wins every (task, seed) block; `gt-grid` is flagged as reading labels."""
    rng = np.random.default_rng(0)
    recs = []
    for t in range(n_tasks):
        for s in range(n_seeds):
            for i, agent in enumerate(agents):
                hv = 0.8 if i == 0 else float(rng.uniform(0.1, 0.5))
                extra = {"uses_labels": True} if agent == "gt-grid" else {}
                recs.append(_record(f"task{t}", agent, s, hv, **extra))
    return recs


def _write_folder(folder: Path, agents: tuple[str, ...], *, n_tasks: int = 2, n_seeds: int = 3) -> Path:
    """The run records of :func:`_records` and a suite.json, as `samstar bench` writes them."""
    runs = folder / "runs"
    runs.mkdir(parents=True)
    for rec in _records(agents, n_tasks=n_tasks, n_seeds=n_seeds):
        (runs / f"{rec['task']}__{rec['agent']}__s{rec['seed']}.json").write_text(json.dumps(rec))
    (folder / "suite.json").write_text(json.dumps({"name": "hand", "model": "none", "budget": 3}))
    return folder


def test_report_embeds_the_cd_diagram_and_flags_labels(tmp_path):
    pytest.importorskip("scikit_posthocs")
    import matplotlib.pyplot as plt

    open_before = set(plt.get_fignums())
    folder = _write_folder(tmp_path / "bench", ("nsga2", "random", "gt-grid"))
    page = write_report(folder, tmp_path / "report.html", tensorboard=False).read_text()
    assert set(plt.get_fignums()) == open_before  # every figure drawn for the page is closed
    assert "<img alt='critical-difference diagram' src='data:image/png;base64," in page
    assert "gt-grid (labels)" in page and "random (labels)" not in page
    for col in ("norm. HV", "test F1@0.5", "test mSA", "wall s"):
        assert f"<th>{col}</th>" in page
    assert "Friedman test p = " in page and "Nemenyi critical difference " in page
    assert "best final hypervolume of any run" in page
    png = (folder / "cd_diagram.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert base64.b64encode(png).decode("ascii") in page  # the file is the embedded image


def test_cd_figure_titles_the_test_and_is_none_without_one():
    pytest.importorskip("scikit_posthocs")
    import matplotlib.pyplot as plt

    info = rank_agents(_records(("nsga2", "random", "gt-grid"), n_tasks=2, n_seeds=3))
    fig = cd_figure(info)
    try:
        title = fig.axes[0].get_title()
        assert f"Friedman p = {info['pvalue']:.3g}" in title
        assert f"Nemenyi CD = {info['critical_difference']:.3g}" in title
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert "nsga2 (1.00)" in texts and any("gt-grid (labels)" in t for t in texts)
    finally:
        plt.close(fig)
    two = rank_agents(_records(("nsga2", "random"), n_tasks=2, n_seeds=3))
    assert two["test"] == "wilcoxon" and cd_figure(two) is None


def test_untuned_baseline_is_a_level_across_the_curves():
    import matplotlib.pyplot as plt

    recs = _records(("nsga2",), n_tasks=1, n_seeds=2)
    recs += [_record("task0", "vanilla", s, 0.3, hypervolume_curve=[0.3]) for s in range(2)]
    fig = hypervolume_figure(recs, "task0")
    try:
        lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
        flat = lines["vanilla, untuned (n=2)"]
        assert list(flat.get_xdata()) == [1, 3] and list(flat.get_ydata()) == [0.3, 0.3]  # spans the tuners' 3 evaluations
        assert list(lines["nsga2 (n=2)"].get_xdata()) == [1, 2, 3]
    finally:
        plt.close(fig)


def test_report_without_a_diagram_says_why(tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "one", ("nsga2",))
    (folder / "cd_diagram.png").write_bytes(PNG_MAGIC)  # left by an earlier report
    page = write_report(folder, tmp_path / "r1.html", tensorboard=False).read_text()
    assert "it needs at least 2 agents" in page and "critical-difference diagram'" not in page
    assert not (folder / "cd_diagram.png").exists()
    # Two agents: Wilcoxon's test, no diagram.
    folder = _write_folder(tmp_path / "pair", ("nsga2", "random"))
    page = write_report(folder, tmp_path / "r2.html", tensorboard=False).read_text()
    assert "Wilcoxon signed-rank test" in page and "needs three or more agents" in page
    assert "critical-difference diagram'" not in page
    # Without scikit-posthocs: the page names the extra and has everything else.
    monkeypatch.setitem(sys.modules, "scikit_posthocs", None)
    folder = _write_folder(tmp_path / "three", ("nsga2", "random", "gt-grid"))
    page = write_report(folder, tmp_path / "r3.html", tensorboard=False).read_text()
    assert "samstar[bench]" in page and "gt-grid (labels)" in page
    assert page.count("data:image/png;base64,") == 4  # 2 tasks x (curves, fronts)


@pytest.fixture(scope="module")
def bench_table():
    return load_script("bench_table")


README = """# x

### Benchmarks

before
<!-- bench-default:begin -->
not yet generated: run python benchmarks/scripts/bench_table.py --run --readme README.md
<!-- bench-default:end -->
after
"""


def test_replace_between_markers(bench_table):
    once = bench_table.replace_between_markers(README, "| a |\n")
    assert once == README.replace("not yet generated: run python benchmarks/scripts/bench_table.py --run --readme README.md", "| a |")
    assert bench_table.replace_between_markers(once, "| a |\n") == once
    with pytest.raises(ValueError, match="expected one"):
        bench_table.replace_between_markers("no markers", "x")
    with pytest.raises(ValueError, match="expected one"):
        bench_table.replace_between_markers("<!-- bench-default:end --><!-- bench-default:begin -->", "x")


def test_bench_table_writes_the_readme_idempotently(bench_table, tmp_path, capsys):
    pytest.importorskip("scikit_posthocs")
    folder = _write_folder(tmp_path / "bench", ("nsga2", "random", "gt-grid"), n_seeds=3)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert bench_table.main(["--folder", str(folder), "--readme", str(readme)]) == 0
    first = readme.read_text()
    out = capsys.readouterr().out
    assert "updated" in out
    assert first.startswith("# x\n\n### Benchmarks\n\nbefore\n<!-- bench-default:begin -->\nSuite `hand` (model none, budget 3)")
    assert first.endswith("<!-- bench-default:end -->\nafter\n")
    assert "| task | agent | seeds | norm. HV | test F1@0.5 | test mSA | wall s |" in first
    assert "| task0 | gt-grid (labels) | 3 |" in first
    assert "Mean ranks by normalized hypervolume over 6 (task, seed) blocks (0 dropped): nsga2 1.00" in first
    assert "not yet generated" not in first
    assert bench_table.main(["--folder", str(folder), "--readme", str(readme)]) == 0
    assert readme.read_text() == first
    assert "already up to date" in capsys.readouterr().out
