"""A static HTML report of a benchmark folder (no server): curves, tables, fronts, overlays.

``samstar report DIR -o report.html`` reads ``DIR/runs/*.json`` (written by ``samstar bench``) and
writes one self-contained page: anytime hypervolume curves per task (mean +- standard error over
seeds, one line per agent), the summary table with ranks, Pareto fronts of each agent's best seed
(pairwise panels of the first objectives) and, when present, the mask overlays of the chosen
operating points (``DIR/overlays/*.png``). TensorBoard event files are written beside it
(``DIR/tensorboard/<run>``) so the same curves can be browsed interactively.

The summary table shows, per task and agent, the normalized and raw final hypervolume, IGD+,
evaluations to 90 %, test F1@0.5, test mSA and wall time; agents that read ground-truth labels are
named ``"<agent> (labels)"``. A critical-difference diagram (Friedman + Nemenyi over (task, seed)
blocks, by normalized hypervolume; :func:`~samstar_env.benchmarks.summary.rank_agents`) is embedded
and written to ``DIR/cd_diagram.png``, drawn by :func:`scikit_posthocs.critical_difference_diagram`;
without the ``bench`` extra (scikit-posthocs) the page says so and everything else is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.benchmarks.runner import read_run
from samstar_env.benchmarks.summary import (
    agent_labels,
    format_normalization,
    format_ranks,
    format_table,
    import_posthocs,
    quiet_stats,
    rank_agents,
    summarize,
)
from samstar_env.errors import InputError, MissingFileError


def _png(fig: Any) -> str:
    """The figure as base64 PNG; the figure is closed (pyplot keeps every open one alive)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def load_records(folder: str | Path) -> list[dict[str, Any]]:
    """All finished run records under ``folder/runs``, sorted by file name."""
    runs = Path(folder) / "runs"
    if not runs.is_dir():
        raise MissingFileError(f"{folder}: no runs/ folder; expected the output of `samstar bench`")
    records = [r for r in (read_run(p) for p in sorted(runs.glob("*.json"))) if r is not None]
    if not records:
        raise InputError(f"{runs}: no finished run records")
    return records


def hypervolume_figure(records: list[dict[str, Any]], task: str) -> Any:
    """Anytime hypervolume, mean +- SE over seeds, one line per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    labels = agent_labels(records)
    for agent in sorted({r["agent"] for r in records if r["task"] == task}):
        curves = [r["hypervolume_curve"] for r in records if r["task"] == task and r["agent"] == agent]
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        mean = arr.mean(axis=0)
        se = arr.std(axis=0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else np.zeros(n)
        if n == 1:
            # An untuned baseline (vanilla, sam-defaults) is one evaluation: a level, not a curve.
            longest = max(len(r["hypervolume_curve"]) for r in records if r["task"] == task)
            ax.plot([1, max(longest, 2)], [mean[0], mean[0]], ls=":", lw=1.2, label=f"{labels[agent]}, untuned (n={len(arr)})")
            continue
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=f"{labels[agent]} (n={len(arr)})")
        ax.fill_between(x, mean - se, mean + se, alpha=0.2)
    ref = next((r["reference_hypervolume"] for r in records if r["task"] == task and r.get("reference_hypervolume")), None)
    if ref:
        ax.axhline(ref, color="k", ls="--", lw=0.8, label="reference front")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (ref. point: reward 0)")
    ax.set_title(task)
    ax.legend(fontsize=8)
    return fig


def front_figure(records: list[dict[str, Any]], task: str) -> Any:
    """Pareto fronts (first two objectives, plus pairs up to the fourth) of each agent's best seed."""
    import matplotlib.pyplot as plt

    recs = [r for r in records if r["task"] == task]
    names = recs[0]["reward_names"]
    labels = agent_labels(recs)
    pairs = [(i, j) for i in range(min(len(names), 4)) for j in range(i + 1, min(len(names), 4))][:6] or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.0), squeeze=False)
    for agent in sorted({r["agent"] for r in recs}):
        best = max((r for r in recs if r["agent"] == agent), key=lambda r: r["final_hypervolume"])
        trials = best["result"]["trials"]
        rew = np.array([t["rewards"] for t in trials])
        front = np.array(best["result"]["front"], int)
        for ax, (i, j) in zip(axes[0], pairs, strict=False):
            ax.scatter(rew[front, i], rew[front, j] if j != i else rew[front, i], s=12, label=labels[agent])
            ax.set_xlabel(names[i], fontsize=8)
            ax.set_ylabel(names[j], fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{task}: non-dominated evaluations of each agent's best seed", fontsize=9)
    return fig


def cd_figure(info: dict[str, Any]) -> Any | None:
    """The critical-difference diagram of a :func:`rank_agents` result (None unless Friedman + Nemenyi ran).

    Mean ranks run from 1 (best); agents joined by a bar do not differ significantly (Nemenyi
    p-value >= alpha). The title gives the Friedman p-value and the critical difference. Drawn
    whatever the Friedman p-value, which the title states.
    """
    if info.get("test") != "friedman-nemenyi" or not info.get("nemenyi_pvalues"):
        return None
    sp = import_posthocs()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    agents, labels, alpha = info["agents"], info["labels"], float(info["alpha"])
    names = [labels.get(a, a) for a in agents]
    pvalues = np.array([[info["nemenyi_pvalues"][a][b] for b in agents] for a in agents], np.float64)
    # Before scikit-posthocs 0.12 the diagram takes no alpha and thresholds at 0.05: scale the
    # p-values so that 0.05 there is alpha here (the identity at alpha 0.05).
    sig = pd.DataFrame(np.minimum(pvalues * (0.05 / alpha), 1.0), index=names, columns=names)
    ranks = {labels.get(a, a): float(info["mean_ranks"][a]) for a in agents}
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.3 * len(agents)))
    try:
        with quiet_stats():
            sp.critical_difference_diagram(
                ranks, sig, ax=ax, label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}"
            )
    except BaseException:
        plt.close(fig)
        raise
    p = "no p-value (every block is a tie)" if info["pvalue"] is None else f"p = {info['pvalue']:.3g}"
    ax.set_title(
        f"Mean rank by normalized hypervolume (1 = best), {info['n_blocks']} (task, seed) blocks\n"
        f"Friedman {p}; Nemenyi CD = {info['critical_difference']:.3g} at alpha {alpha:g}",
        fontsize=9,
        pad=18,
    )
    return fig


def write_tensorboard(records: list[dict[str, Any]], folder: Path) -> None:
    """One TensorBoard run per record: the anytime hypervolume and each reward per evaluation."""
    from torch.utils.tensorboard import SummaryWriter

    for r in records:
        run_id = f"{r['task']}__{r['agent']}__s{r['seed']}"
        with SummaryWriter(log_dir=str(folder / run_id)) as w:
            for i, hv in enumerate(r["hypervolume_curve"], start=1):
                w.add_scalar("hypervolume", hv, i)
            for i, t in enumerate(r["result"]["trials"], start=1):
                for name, v in zip(r["reward_names"], t["rewards"], strict=True):
                    w.add_scalar(f"reward/{name}", v, i)


def write_report(folder: str | Path, output: str | Path, *, tensorboard: bool = True) -> Path:
    """Write the HTML report of a benchmark folder and return its path."""
    folder = Path(folder)
    records = load_records(folder)
    summary = summarize(records)
    labels = agent_labels(records)
    tasks = sorted({r["task"] for r in records})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>samstar benchmark report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}</style></head><body>",
        f"<h1>samstar benchmark: {html.escape(folder.name)}</h1>",
        f"<p>{len(records)} runs. Hypervolume uses the fixed reference point at reward 0 on every objective; "
        "values are mean ± standard error over seeds; rank 1 = highest mean final hypervolume. "
        "Agents marked “(labels)” read the ground-truth labels (an oracle, not a label-free tuner).</p>",
        f"<p>{html.escape(format_normalization(summary))}</p>",
        "<h2>Summary</h2>",
        _markdown_table_to_html(format_table(summary)),
        "<h2>Mean rank across tasks</h2><p>By mean final hypervolume within each task: "
        + ", ".join(f"{html.escape(labels[a])}: {v:.2f}" for a, v in sorted(summary["mean_rank"].items(), key=lambda kv: kv[1]))
        + "</p>",
        "<h2>Critical-difference diagram</h2>",
        _cd_section(records, folder),
    ]
    for task in tasks:
        parts.append(f"<h2>{html.escape(task)}</h2>")
        parts.append(f"<img alt='hypervolume {task}' src='data:image/png;base64,{_png(hypervolume_figure(records, task))}'>")
        parts.append(f"<img alt='front {task}' src='data:image/png;base64,{_png(front_figure(records, task))}'>")
        for ov in sorted((folder / "overlays").glob(f"{task}__*.png")) if (folder / "overlays").is_dir() else []:
            data = base64.b64encode(ov.read_bytes()).decode("ascii")
            parts.append(f"<figure><img src='data:image/png;base64,{data}'><figcaption>{html.escape(ov.stem)}</figcaption></figure>")
    parts.append("<h2>Run records</h2><pre>" + html.escape(json.dumps(summary["ranks"], indent=1)) + "</pre>")
    parts.append("</body></html>")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    if tensorboard:
        write_tensorboard(records, folder / "tensorboard")
    return out


def _cd_section(records: list[dict[str, Any]], folder: Path) -> str:
    """The diagram (also written to ``folder/cd_diagram.png``) and its sentence, or why there is none."""
    info = rank_agents(records)
    text = format_ranks({"critical_difference": info})
    png = folder / "cd_diagram.png"
    fig = cd_figure(info)
    if fig is None:
        # A diagram left from an earlier report of other records would contradict this page.
        png.unlink(missing_ok=True)
        if info["test"] == "wilcoxon":
            text += " A critical-difference diagram needs three or more agents."
        return f"<p>{html.escape(text)}</p>"
    data = _png(fig)
    png.write_bytes(base64.b64decode(data))
    return (
        f"<p>{html.escape(text)}</p><p>Measure: normalized hypervolume (higher is better), one block per "
        "(task, seed) on which every agent ran; rank 1 = best, agents joined by a bar do not differ "
        f"significantly (Nemenyi p-value at least alpha).</p><img alt='critical-difference diagram' src='data:image/png;base64,{data}'>"
    )


def _markdown_table_to_html(md: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in md.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in body]
    return "".join(out) + "</table>"
