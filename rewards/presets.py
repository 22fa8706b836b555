"""Task presets: which rewards each synthetic task uses, with which weights, and why.

The weights are those of the default :meth:`RewardSuite.scalarize` (normalized to sum 1); a
multi-objective tuner (NSGA-II) sees the whole vector and ignores them.

==========  ============================================  ==========================================
task        rewards (weight)                               why (SAM* finding it targets)
==========  ============================================  ==========================================
perovskite  overlap_fidelity (2), shape_fidelity ->       Finding 1, occluded-particle recovery:
            squareness (2), duplicate_free (1),           cubes in dense self-assembled patches touch
            size_window (1), count_plausibility (1),      and lie on each other; plain SAM merges
            coverage (1)                                  them. Overlap fidelity (convex, deep masks)
                                                          and squareness (a merged pair is no square)
                                                          reward separating them; count and coverage
                                                          keep the tuner from dropping hard particles.
ito         duplicate_free (2), size_distribution (2),    Finding 2, over-segmentation: large faceted
            boundary_contrast (1), overlap_fidelity (1),  grains with internal contrast are split into
            shape_fidelity -> circularity (1),            fragments and returned several times.
            count_plausibility (1)                        Duplicates, the size distribution (fragments
                                                          shift it down), and boundary contrast (a cut
                                                          through a grain is no edge) penalize that;
                                                          overlap fidelity guards against the opposite
                                                          (merging touching grains).
auco        small_particle_detection (1),                 Finding 3, the antagonistic pair: dense,
            aggregate_coverage (1), size_distribution     lenient prompting finds the 2-5 nm particles
            (1), count_plausibility (1), coverage (1),    but splits the 30 nm aggregates; sparse,
            boundary_contrast (1)                         strict prompting keeps aggregates whole but
                                                          misses small particles. Both sides are
                                                          separate objectives (equal weights, the
                                                          Pareto front is the result); the bimodal size
                                                          distribution and coverage tie them together.
                                                          Boundary contrast rejects what lenient
                                                          settings also accept: particle-sized masks
                                                          on the noisy support, which have no edge.
                                                          Count plausibility (against a LoG count)
                                                          penalizes both spurious masks and merges.
                                                          No duplicate_free: a small particle's mask
                                                          inside an aggregate's mask is the pair's two
                                                          levels, not a duplicate (see below).
                                                          Foreground by the triangle threshold (sparse
                                                          sample, see PRESET_OPTIONS).
generic     size_window, shape_fidelity, overlap_         A balanced default for a new sample: every
            fidelity, duplicate_free, coverage,           physics criterion once, equal weights.
            count_plausibility, boundary_contrast (1 each)
==========  ============================================  ==========================================

Measured fidelity (``benchmarks/scripts/reward_fidelity.py --n-params 150 --seed S``: Spearman rho between
the preset's scalarization and ground-truth F1 over the parameter sets that segment every image):

==========  ==============================  ==============================  ===================
preset      samstar-tiny v2, rewards v2     samstar-tiny v2, rewards v1     v3 (shipped), rewards
            (seeds 0 / 1)                   (seeds 0 / 1)                   v2 (seeds 0 / 1)
==========  ==============================  ==============================  ===================
perovskite  +0.73 / +0.62                   +0.62 / +0.43                   +0.71 / +0.71
ito         +0.72 / +0.86                   +0.81 / +0.86                   +0.68 / +0.80
auco        +0.80 / +0.69                   +0.80 / +0.69                   +0.67 / +0.71
==========  ==============================  ==============================  ===================

The table above is history (2 images per task, 150 draws, all sets). The current figures, rewards
version 3 with emps-dev beside the synthetic tasks (4 images each, at least 150 sets that segment
every image, 95 % bootstrap intervals), are in the README ("Do the rewards agree with ground
truth?"), rewritten by ``python benchmarks/scripts/reward_fidelity.py --readme README.md``.

Version 2 takes every per-mask mean over at least half the LoG particle count (``count_floor``):
as plain means, one clean mask scored as high as a clean segmentation of every particle, which
left ``overlap_fidelity`` (+0.10 / +0.08 alone on perovskite), ``duplicate_free`` (+0.02 / -0.12)
and ``aspect_ratio`` (+0.02 / -0.06) blind to missed particles; with the floor they give +0.44 /
+0.46, +0.61 / +0.46 and +0.24 / +0.24, and ``size_window`` +0.85 / +0.80, ``boundary_contrast``
+0.81 / +0.75. On ITO, where v2's F1 follows precision (few, clean masks win), the preset lost 0.09
on seed 0 and nothing on seed 1. With v3 every single reward of the perovskite preset has rho
>= +0.26 (``overlap_fidelity`` +0.60, ``duplicate_free`` +0.63).

AuCo has no ``duplicate_free``: its own rho there was -0.64 as a plain fraction (+0.23 / +0.06 with
the floor), since AuCo's better segmentations nest small particles in aggregates; with
``count_plausibility`` (+0.61 alone) in its place the AuCo preset went +0.37 -> +0.80 (rewards
version 1, seed 0). On v1's evaluations, whose F1 spanned only 0-0.008 on AuCo, the swap gave
+0.49 -> +0.24: with a model that finds almost nothing, the ranking is noise.

``latency`` is in no preset (it needs the AMG parameters and is a property of the machine, not of
the sample); add it for real-time tuning: ``RewardSuite([*preset("ito").names, "latency"])``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import fields
from functools import partial
from typing import Any

from samstar_env.errors import InputError
from samstar_env.rewards.registry import RewardContext, get_reward
from samstar_env.rewards.suite import RewardSuite

PRESETS: dict[str, dict[str, float]] = {
    "perovskite": {
        "overlap_fidelity": 2.0,
        "shape_fidelity": 2.0,
        "duplicate_free": 1.0,
        "size_window": 1.0,
        "count_plausibility": 1.0,
        "coverage": 1.0,
    },
    "ito": {
        "duplicate_free": 2.0,
        "size_distribution": 2.0,
        "boundary_contrast": 1.0,
        "overlap_fidelity": 1.0,
        "shape_fidelity": 1.0,
        "count_plausibility": 1.0,
    },
    "auco": {
        "small_particle_detection": 1.0,
        "aggregate_coverage": 1.0,
        "size_distribution": 1.0,
        "count_plausibility": 1.0,
        "coverage": 1.0,
        "boundary_contrast": 1.0,
    },
    "generic": {
        "size_window": 1.0,
        "shape_fidelity": 1.0,
        "overlap_fidelity": 1.0,
        "duplicate_free": 1.0,
        "coverage": 1.0,
        "count_plausibility": 1.0,
        "boundary_contrast": 1.0,
    },
}


# Options passed to a preset's rewards (through functools.partial, so suites still pickle).
# AuCo is sparse (particles cover ~6-11% of the frame): its histogram is one dominant support peak
# with a tail, the case the triangle threshold is made for (measured foreground Dice 0.90-0.95,
# against 0.70-0.84 for Li and 0.51-0.74 for Otsu, which splits bright aggregates from the rest).
PRESET_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "auco": {
        "coverage": {"threshold": "triangle"},
        "aggregate_coverage": {"threshold": "triangle"},
        "small_particle_detection": {"threshold": "triangle"},
    },
}


def preset(task: str) -> RewardSuite:
    """The reward suite of ``task`` (``"perovskite"``, ``"ito"``, ``"auco"`` or ``"generic"``).

    See the module docstring for the table of rewards, weights and their rationale.

    Examples
    --------
    >>> s = preset("auco")
    >>> s.names[:2]
    ('small_particle_detection', 'aggregate_coverage')
    >>> preset("generic").reward_dim
    7
    """
    if not isinstance(task, str):
        raise InputError(f"unknown reward preset {task!r}; valid presets: {sorted(PRESETS)}")
    return configure_suite(task)


def reward_options(name: str) -> tuple[str, ...] | None:
    """The options (keyword arguments) registered reward ``name`` takes; ``None`` when it takes any.

    The three positional arguments (masks, image, prior) and the :class:`RewardContext` fields,
    which the suite passes itself, are not options.

    Examples
    --------
    >>> "count_floor" in reward_options("size_window")
    True
    """
    sig = inspect.signature(get_reward(name))
    params = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    context = {f.name for f in fields(RewardContext)}
    ok = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params[3:] if p.kind in ok and p.name not in context)


def configure_suite(
    rewards: str | Sequence[str] = "generic",
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Mapping[str, float] | None = None,
) -> RewardSuite:
    """A suite from a preset or a list of reward names, with options and weights changed by name.

    What task files (``[task].rewards`` and the ``[rewards]`` table) are turned into; in Python it
    saves writing the ``functools.partial`` calls by hand.

    Parameters
    ----------
    rewards : str or sequence of str
        A preset name (its rewards, weights and options are the starting point) or registered
        reward names (weight 1 each, the functions' default options).
    options : mapping name -> mapping, optional
        Keyword arguments for a reward, over the preset's (e.g. ``{"size_window": {"count_floor": 0.3}}``).
    weights : mapping name -> float, optional
        Scalarization weights by name; rewards not named keep theirs (the preset's, else 1).

    Returns
    -------
    RewardSuite

    Raises
    ------
    ValueError
        An unknown preset or reward, options or weights for a reward the suite does not hold, an
        option the reward does not take (the message lists those it does).

    Examples
    --------
    >>> s = configure_suite("perovskite", options={"size_window": {"count_floor": 0.3}}, weights={"coverage": 0.0})
    >>> s.names == preset("perovskite").names, float(s.weights[s.names.index("coverage")])
    (True, 0.0)
    """
    if isinstance(rewards, str):
        if rewards not in PRESETS:
            raise InputError(f"unknown reward preset {rewards!r}; valid presets: {sorted(PRESETS)}")
        names = list(PRESETS[rewards])
        base_w = dict(PRESETS[rewards])
        opts: dict[str, dict[str, Any]] = {n: dict(o) for n, o in PRESET_OPTIONS.get(rewards, {}).items()}
    else:
        names = list(rewards)
        base_w = {n: 1.0 for n in names}
        opts = {}
    for what, table in (("options", options or {}), ("weights", weights or {})):
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise InputError(f"reward {what} for {unknown}, which the suite does not hold; its rewards are {names}")
    for name, given in (options or {}).items():
        if not isinstance(given, Mapping):
            raise InputError(f"options of reward {name!r} must be a mapping of keyword arguments, got {given!r}")
        takes = reward_options(name)
        bad = sorted(set(given) - set(takes)) if takes is not None else []
        if bad:
            raise InputError(f"reward {name!r} has no option(s) {bad}; it takes {list(takes or ())}")
        opts.setdefault(name, {}).update(given)
    for name, w in (weights or {}).items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise InputError(f"weight of reward {name!r} must be a number, got {w!r}")
        base_w[name] = float(w)
    specs = [(n, partial(get_reward(n), **opts[n])) if opts.get(n) else n for n in names]
    return RewardSuite(specs, weights=[base_w[n] for n in names])
