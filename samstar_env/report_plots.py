"""Figures of a tuning run: the Pareto plot and mask overlays (matplotlib, headless)."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window (CI, servers, kill -9 safe)
    import matplotlib.pyplot as plt

    return plt


def pareto_plot(result: Any, path: str | Path, *, highlight: Sequence[tuple[str, int]] = ()) -> Path:
    """All evaluations (grey) and the non-dominated set (red); pairwise panels for > 2 rewards.

    Parameters
    ----------
    result : TuningResult
    path : str or Path
        Output PNG.
    highlight : sequence of (label, trial index)
        Operating points to mark and label.
    """
    plt = _plt()
    r = result.rewards
    names = result.reward_names
    k = len(names)
    front = result.front_indices
    pairs = list(itertools.combinations(range(k), 2)) if k >= 2 else [(0, 0)]
    ncol = min(len(pairs), 3 if len(pairs) > 4 else len(pairs))
    nrow = int(np.ceil(len(pairs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.6 * nrow), squeeze=False)
    for ax, (i, j) in zip(axes.flat, pairs, strict=False):
        if len(r):
            ax.scatter(r[:, i], r[:, j], s=8, c="0.7", label="evaluated")
            ax.scatter(r[front, i], r[front, j], s=16, c="tab:red", label="non-dominated")
            for label, t in highlight:
                ax.scatter([r[t, i]], [r[t, j]], s=70, facecolors="none", edgecolors="k")
                ax.annotate(label, (r[t, i], r[t, j]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    title = f"{result.task or ''} {result.agent} seed {result.seed}: {len(r)} evaluations, {len(front)} non-dominated"
    # Wrapped to the figure's width: a single panel (two rewards) is too narrow for one line.
    fig.suptitle(textwrap.fill(title.strip() + " (higher is better)", width=55 * ncol), fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def overlay(image: np.ndarray, label_image: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """A uint8 RGB overlay of an instance label image on a grey image in [0, 1] (boundaries in white).

    Colours come from a fixed palette indexed by label, so the same masks always look the same.
    """
    from scipy import ndimage

    grey = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    lab = np.asarray(label_image)
    if lab.max() > 0:
        palette = np.random.default_rng(12345).uniform(0.2, 1.0, size=(int(lab.max()) + 1, 3)).astype(np.float32)
        fg = lab > 0
        rgb[fg] = (1 - alpha) * rgb[fg] + alpha * palette[lab[fg]]
        edge = fg & (ndimage.grey_erosion(lab, size=3) != ndimage.grey_dilation(lab, size=3))
        rgb[edge] = 1.0
    return (rgb * 255).round().astype(np.uint8)


def save_png(rgb: np.ndarray, path: str | Path, *, title: str | None = None) -> Path:
    """Write an RGB array as PNG (with an optional title strip)."""
    plt = _plt()
    h, w = rgb.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100 + (0.3 if title else 0)), dpi=100)
    ax = fig.add_axes((0, 0, 1, h / (h + (30 if title else 0))))
    ax.imshow(rgb)
    ax.axis("off")
    if title:
        fig.text(0.01, 0.99, title, fontsize=7, va="top")
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
