"""Multi-objective metrics over reward vectors: dominance, hypervolume, IGD+, anytime curves.

Rewards are in [0, 1] and higher is better. pymoo's indicators minimize, so every function here maps
a reward vector ``r`` to the loss ``1 - r`` in one place (:func:`to_losses`). The reference point of
the hypervolume is the worst possible reward, ``r = 0`` on every objective (loss 1): it is fixed and
the same for every task, so hypervolumes are comparable across tasks, agents and runs, and lie in
[0, 1] (1 would mean every reward at its maximum).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.indicators.igd_plus import IGDPlus
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def to_losses(rewards: np.ndarray) -> np.ndarray:
    """Map rewards in [0, 1] (maximized) to losses ``1 - r`` (minimized), as float64 (n, k)."""
    r = np.atleast_2d(np.asarray(rewards, dtype=np.float64))
    if r.size and (not np.isfinite(r).all() or r.min() < 0.0 or r.max() > 1.0):
        raise ValueError(f"rewards must be finite and in [0, 1]; got range [{np.nanmin(r):.4g}, {np.nanmax(r):.4g}]")
    return 1.0 - r


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Pareto dominance for maximization: ``a >= b`` everywhere and ``a > b`` somewhere.

    Unlike the other functions here it takes rewards of any range: it only compares.

    Examples
    --------
    >>> dominates(np.array([0.5, 0.6]), np.array([0.5, 0.4]))
    True
    >>> dominates(np.array([0.5, 0.4]), np.array([0.5, 0.4]))  # equal vectors: neither dominates
    False
    >>> dominates(np.array([0.9, 0.1]), np.array([0.5, 0.4]))  # a trade-off: neither dominates
    False
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(a >= b) and np.any(a > b))


def non_dominated(rewards: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated reward vectors (pymoo's non-dominated sorting, first front).

    Examples
    --------
    >>> non_dominated(np.array([[1.0, 0.0], [0.5, 0.5], [0.4, 0.4]])).tolist()
    [0, 1]
    """
    r = np.atleast_2d(np.asarray(rewards, dtype=np.float64))
    if len(r) == 0:
        return np.zeros(0, dtype=int)
    front = NonDominatedSorting().do(to_losses(r), only_non_dominated_front=True)
    return np.sort(np.asarray(front, dtype=int))


def hypervolume(rewards: np.ndarray) -> float:
    """Hypervolume dominated by ``rewards`` with the reference point at reward 0 (in [0, 1]).

    Examples
    --------
    >>> hypervolume(np.array([[0.5, 0.5]]))
    0.25
    >>> hypervolume(np.zeros((0, 2)))
    0.0
    """
    r = np.atleast_2d(np.asarray(rewards, dtype=np.float64))
    if r.size == 0:
        return 0.0
    k = r.shape[1]
    return float(HV(ref_point=np.ones(k))(to_losses(r)))


def igd_plus(rewards: np.ndarray, reference_front: np.ndarray) -> float:
    """IGD+ of ``rewards`` against a reference front (both in reward space; lower is better).

    IGD+ (Ishibuchi et al. 2015) is weakly Pareto-compliant, unlike plain IGD.
    """
    ref = np.atleast_2d(np.asarray(reference_front, dtype=np.float64))
    r = np.atleast_2d(np.asarray(rewards, dtype=np.float64))
    if ref.size == 0:
        raise ValueError("igd_plus: the reference front is empty")
    if r.size == 0:
        return float("inf")
    if r.shape[1] != ref.shape[1]:
        raise ValueError(f"igd_plus: rewards have {r.shape[1]} objectives, the reference front {ref.shape[1]}")
    return float(IGDPlus(to_losses(ref))(to_losses(r)))


def anytime_hypervolume(rewards: np.ndarray) -> np.ndarray:
    """Hypervolume of the first ``i + 1`` evaluations, for every ``i`` (a non-decreasing curve)."""
    r = np.atleast_2d(np.asarray(rewards, dtype=np.float64))
    out = np.zeros(len(r))
    front = np.zeros((0, r.shape[1] if r.ndim == 2 else 0))
    for i, row in enumerate(r):
        # Only a new non-dominated point can raise the hypervolume: keep the running front small.
        cand = np.vstack([front, row[None]])
        front = cand[non_dominated(cand)]
        out[i] = hypervolume(front) if i == 0 or not np.array_equal(front, cand[:-1]) else out[i - 1]
    return out


def evaluations_to_reach(curve: Sequence[float], target: float) -> int | None:
    """1-based number of evaluations after which ``curve`` first reaches ``target`` (None if never)."""
    arr = np.asarray(curve, dtype=np.float64)
    hit = np.nonzero(arr >= target - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None
