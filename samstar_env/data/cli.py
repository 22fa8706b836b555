"""``samstar data``: list the synthetic tasks and preview a micrograph beside its ground truth.

``samstar data list [--json]``
    Tasks, their frozen split seeds and their physics priors.
``samstar data preview TASK --seed S [--size 512] -o out.png``
    Renders a synthetic micrograph (or a file / folder of real ones) beside its ground-truth outlines,
    with a scale bar in nm. The micrograph is drawn at one screen pixel per image pixel (up to
    :data:`MAX_PREVIEW_PX`), so noise and texture can be judged as they are.

The synthetic generators are imported only when a command needs them, keeping ``samstar --help`` fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.errors import InputError

# Larger micrographs are shown downsampled so a preview stays a reasonable PNG.
MAX_PREVIEW_PX = 1024
# Smaller ones are enlarged so the title and scale bar fit.
MIN_PREVIEW_PX = 256
# Height of the title band above the panels, in pixels.
TITLE_BAND_PX = 40
_DPI = 100
_DEFAULT_SPLITS: tuple[str, ...] = ("tune", "test")
# Splits larger than this are listed as seed ranges only in ``data list --json``.
MAX_LISTED_SEEDS = 1000


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``samstar data {list,preview}`` to the top-level parser."""
    data = subparsers.add_parser("data", help="list synthetic tasks; preview micrographs with ground truth")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True

    p_list = sub.add_parser("list", help="tasks, split seeds and physics priors")
    p_list.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p_list.set_defaults(func=cmd_list)

    p_prev = sub.add_parser(
        "preview",
        help="render a micrograph beside its ground-truth outlines",
        description="TASK is a synthetic task name (see `samstar data list`), an image file, or a folder "
        "(plain, or EMPS-style with images/ and segmaps/).",
    )
    p_prev.add_argument("task", metavar="TASK", help="task name, image file or folder")
    p_prev.add_argument("--seed", type=int, default=0,
                        help="generator seed; for a folder, the index of the image in name order (default 0)")
    p_prev.add_argument("--size", type=int, default=512, help="side of a generated micrograph in pixels (default 512; files keep their size)")
    p_prev.add_argument("--pixel-size-nm", type=float, default=None,
                        help="calibration for files without one (overrides the file's)")
    p_prev.add_argument("-o", "--output", required=True, type=Path, help="output PNG")
    p_prev.set_defaults(func=cmd_preview)


# ------------------------------------------------------------------------------------------------ list


def _synthetic() -> Any:
    try:
        from samstar_env.data import synthetic
    except ImportError as exc:
        raise RuntimeError(f"the synthetic generators are not available ({exc})") from exc
    return synthetic


def _splits(synthetic: Any) -> tuple[str, ...]:
    return tuple(getattr(synthetic, "SPLITS", _DEFAULT_SPLITS))


def _prior_dict(prior: PhysicsPrior) -> dict[str, Any]:
    return {
        "diameter_range_nm": list(prior.diameter_range_nm),
        "shape": prior.shape,
        "modality": prior.modality,
        "pixel_size_nm": prior.pixel_size_nm,
        "size_components": [
            {"weight": c.weight, "median_nm": c.median_nm, "sigma": c.sigma} for c in prior.size_components
        ],
        "aspect_ratio_max": prior.aspect_ratio_max,
        "small_max_nm": prior.small_max_nm,
    }


def _runs(seeds: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for s in sorted(seeds):
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return runs


def task_table() -> list[dict[str, Any]]:
    """One JSON-ready record per task: name, split seeds and prior.

    Each split is ``{"n": count, "ranges": [[first, last], ...]}`` (inclusive runs), plus the explicit
    ``"seeds"`` list when it holds at most :data:`MAX_LISTED_SEEDS` seeds: a training split of
    100,000 seeds would otherwise swamp the output.

    Examples
    --------
    >>> rows = task_table()
    >>> sorted(rows[0]), sorted(rows[0]["splits"]["tune"])
    (['prior', 'splits', 'task'], ['n', 'ranges', 'seeds'])
    """
    syn = _synthetic()
    rows = []
    for task in syn.TASKS:
        splits: dict[str, dict[str, Any]] = {}
        for split in _splits(syn):
            seeds = [int(s) for s in syn.split_seeds(task, split)]
            splits[split] = {"n": len(seeds), "ranges": _runs(seeds)}
            if len(seeds) <= MAX_LISTED_SEEDS:
                splits[split]["seeds"] = seeds
        rows.append({"task": task, "splits": splits, "prior": _prior_dict(syn.prior(task))})
    return rows


def compact_seeds(seeds: list[int]) -> str:
    """Seeds as runs: ``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``.

    Examples
    --------
    >>> compact_seeds([0, 1, 2, 3, 7, 9, 10])
    '0-3, 7, 9-10'
    """
    return _format_runs(_runs(seeds))


def _format_runs(runs: list[list[int]]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _format_table(rows: list[dict[str, Any]]) -> str:
    head = ["task", "modality", "shape", "diameter nm", "size distribution", "nm/px", "splits (seeds)"]
    lines = []
    for r in rows:
        p = r["prior"]
        comps = " + ".join(
            f"{c['weight']:.2g}*LN({c['median_nm']:.3g} nm, sigma={c['sigma']:.2g})" for c in p["size_components"]
        )
        splits = "; ".join(
            f"{k} {_format_runs(v['ranges'])} (n={v['n']})" for k, v in r["splits"].items()
        )
        px = "-" if p["pixel_size_nm"] is None else f"{p['pixel_size_nm']:.3g}"
        lo, hi = p["diameter_range_nm"]
        lines.append([r["task"], p["modality"], p["shape"], f"{lo:.3g}-{hi:.3g}", comps, px, splits])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def cmd_list(args: argparse.Namespace) -> int:
    """``samstar data list``."""
    rows = task_table()
    print(json.dumps(rows, indent=2) if args.json else _format_table(rows))
    return 0


# --------------------------------------------------------------------------------------------- preview


def _micrograph_for(task: str, *, seed: int, size: int, pixel_size_nm: float | None) -> Micrograph:
    from samstar_env.data.loaders import list_folder, load_image

    path = Path(task)
    looks_like_path = path.exists() or len(path.parts) > 1 or path.suffix != ""
    if not looks_like_path:
        syn = _synthetic()
        if task not in syn.TASKS:
            raise InputError(
                f"unknown task {task!r}; expected one of {', '.join(syn.TASKS)} or a path to an image or folder"
            )
        if size < 16:
            raise InputError(f"--size must be at least 16 pixels, got {size}")
        return syn.generate(task, seed, size=(size, size))
    if path.is_dir():
        pairs = list_folder(path)
        if not 0 <= seed < len(pairs):
            raise InputError(f"{path}: --seed {seed} is not an image index; expected 0..{len(pairs) - 1}")
        img, lab = pairs[seed]
        return load_image(img, pixel_size_nm=pixel_size_nm, labels=lab)
    return load_image(path, pixel_size_nm=pixel_size_nm)


def nice_scale_bar_nm(width_nm: float, *, fraction: float = 0.2) -> float:
    """A round length (1, 2 or 5 × 10^k) close to ``fraction`` of the field of view.

    Examples
    --------
    >>> nice_scale_bar_nm(512 * 0.25), nice_scale_bar_nm(1000.0)
    (20.0, 200.0)
    """
    target = width_nm * fraction
    base = 10.0 ** math.floor(math.log10(target))
    return max((m * base for m in (1.0, 2.0, 5.0) if m * base <= target), default=base)


def _outline_rgba(labels: np.ndarray) -> np.ndarray:
    """Per-particle coloured inner boundaries over a transparent background."""
    import matplotlib
    from skimage.segmentation import find_boundaries

    # Two pixels wide, inside each particle: one-pixel lines vanish at screen size.
    edge = find_boundaries(labels, mode="inner") & (labels > 0)
    edge |= find_boundaries(np.where(edge, 0, labels), mode="inner") & (labels > 0)
    # Neighbouring particles get different colours, so a merge or split in the GT is visible.
    colours = matplotlib.colormaps["tab10"](np.arange(10))
    rgba = np.zeros((*labels.shape, 4))
    rgba[edge] = colours[labels[edge] % 10]
    rgba[edge, 3] = 1.0
    return rgba


def render_preview(micrograph: Micrograph, output: str | Path, *, title: str | None = None) -> tuple[int, int]:
    """Save the micrograph beside its ground-truth outlines as a PNG; returns its (width, height) in px.

    Each panel is the image at one PNG pixel per image pixel (downsampled if larger than
    :data:`MAX_PREVIEW_PX`, enlarged by a whole factor if smaller than :data:`MIN_PREVIEW_PX`), under a :data:`TITLE_BAND_PX` title band. Without labels only the
    micrograph panel is drawn. The scale bar is in nm when the pixel size is known, else in pixels.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> m = Micrograph(image=np.zeros((300, 400), np.float32), pixel_size_nm=0.5)
    >>> render_preview(m, pathlib.Path(tempfile.mkdtemp()) / "p.png")
    (400, 340)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    h, w = micrograph.shape
    # Tiny images are enlarged by a whole factor (so pixels stay square blocks), large ones shrunk.
    scale = min(1.0, MAX_PREVIEW_PX / max(h, w)) if max(h, w) >= MIN_PREVIEW_PX else float(MIN_PREVIEW_PX // max(h, w))
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    panels = 2 if micrograph.labels is not None else 1
    fig_w, fig_h = panels * pw, ph + TITLE_BAND_PX
    fig = plt.figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI)
    try:
        axes = []
        for i in range(panels):
            ax = fig.add_axes((i * pw / fig_w, 0.0, pw / fig_w, ph / fig_h))
            ax.imshow(micrograph.image, cmap="gray", vmin=0.0, vmax=1.0,
                      interpolation="nearest" if scale >= 1 else "antialiased")
            ax.set_axis_off()
            axes.append(ax)
        n = 0
        if micrograph.labels is not None:
            n = int(len(np.unique(micrograph.labels[micrograph.labels > 0])))
            axes[1].imshow(_outline_rgba(micrograph.labels), interpolation="nearest")
        px_nm = micrograph.pixel_size_nm
        if px_nm is not None:
            bar_nm = nice_scale_bar_nm(w * px_nm)
            bar_px, label = bar_nm / px_nm, f"{bar_nm:g} nm"
        else:
            bar_px = nice_scale_bar_nm(float(w))
            label = f"{bar_px:g} px"
        for ax in axes:
            bar = AnchoredSizeBar(ax.transData, bar_px, label, "lower right", pad=0.3, borderpad=0.5, sep=3,
                                  color="white", frameon=True, label_top=True, size_vertical=max(2.0, h / 150),
                                  fontproperties={"size": 9})
            # A dark box keeps the bar legible on bright backgrounds and apart from burned-in scale bars.
            bar.patch.set(facecolor="black", alpha=0.6, edgecolor="none")
            ax.add_artist(bar)
        px_text = "pixel size unknown" if px_nm is None else f"{px_nm:.3g} nm/px"
        head = title if title is not None else micrograph.name
        gt = f"ground truth: {n} particles" if panels == 2 else "no ground-truth labels"
        # Two short lines rather than one long one, so narrow previews stay legible.
        fig.text(8 / fig_w, 1 - 0.5 * TITLE_BAND_PX / fig_h, f"{head}  ·  {h}×{w} px\n{px_text}  ·  {gt}",
                 va="center", ha="left", fontsize=8, linespacing=1.3)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=_DPI, format="png")
    finally:
        plt.close(fig)
    return fig_w, fig_h


def cmd_preview(args: argparse.Namespace) -> int:
    """``samstar data preview``."""
    # An EM file without the em extra raises MissingExtraError, which names the extra.
    m = _micrograph_for(args.task, seed=args.seed, size=args.size, pixel_size_nm=args.pixel_size_nm)
    w, h = render_preview(m, args.output)
    print(f"wrote {args.output} ({w}x{h} px)", file=sys.stdout)
    return 0
