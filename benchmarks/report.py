"""A static HTML report of a benchmark folder (no server): curves, tables, fronts, overlays.

``samstar report DIR -o report.html`` reads ``DIR/runs/*.json`` (written by ``samstar bench``) and
writes one self-contained page: anytime hypervolume curves per task (mean +- standard error over
seeds, one line per agent), the summary table with ranks, Pareto fronts of each agent's best seed
(pairwise panels of the first objectives) and, when present, the mask overlays of the chosen
operating points (``DIR/overlays/*.png``). TensorBoard event files are written beside it
(``DIR/tensorboard/<run>``) so the same curves can be browsed interactively.
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
from samstar_env.benchmarks.summary import format_table, summarize
from samstar_env.errors import InputError, MissingFileError


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

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
    for agent in sorted({r["agent"] for r in records if r["task"] == task}):
        curves = [r["hypervolume_curve"] for r in records if r["task"] == task and r["agent"] == agent]
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        mean = arr.mean(axis=0)
        se = arr.std(axis=0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else np.zeros(n)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=f"{agent} (n={len(arr)})")
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
    pairs = [(i, j) for i in range(min(len(names), 4)) for j in range(i + 1, min(len(names), 4))][:6] or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.0), squeeze=False)
    for agent in sorted({r["agent"] for r in recs}):
        best = max((r for r in recs if r["agent"] == agent), key=lambda r: r["final_hypervolume"])
        trials = best["result"]["trials"]
        rew = np.array([t["rewards"] for t in trials])
        front = np.array(best["result"]["front"], int)
        for ax, (i, j) in zip(axes[0], pairs, strict=False):
            ax.scatter(rew[front, i], rew[front, j] if j != i else rew[front, i], s=12, label=agent)
            ax.set_xlabel(names[i], fontsize=8)
            ax.set_ylabel(names[j], fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{task}: non-dominated evaluations of each agent's best seed", fontsize=9)
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
    tasks = sorted({r["task"] for r in records})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>samstar benchmark report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}</style></head><body>",
        f"<h1>samstar benchmark: {html.escape(folder.name)}</h1>",
        f"<p>{len(records)} runs. Hypervolume uses the fixed reference point at reward 0 on every objective; "
        "values are mean ± standard error over seeds; rank 1 = highest mean final hypervolume.</p>",
        "<h2>Summary</h2>",
        _markdown_table_to_html(format_table(summary)),
        "<h2>Mean rank across tasks</h2><p>"
        + ", ".join(f"{html.escape(a)}: {v:.2f}" for a, v in sorted(summary["mean_rank"].items(), key=lambda kv: kv[1]))
        + "</p>",
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


def _markdown_table_to_html(md: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in md.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in body]
    return "".join(out) + "</table>"
