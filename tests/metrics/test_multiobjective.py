import numpy as np
import pytest

from samstar_env.metrics.multiobjective import (
    anytime_hypervolume,
    dominates,
    evaluations_to_reach,
    hypervolume,
    igd_plus,
    non_dominated,
)


def test_hypervolume_hand_values():
    # Two points in 2-D: union of [0,.8]x[0,.2] and [0,.2]x[0,.8] = .16 + .16 - .04.
    assert hypervolume(np.array([[0.8, 0.2], [0.2, 0.8]])) == pytest.approx(0.28)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]])) == pytest.approx(1.0)
    assert hypervolume(np.array([[0.5, 0.5, 0.5]])) == pytest.approx(0.125)
    # A dominated point adds nothing.
    assert hypervolume(np.array([[0.8, 0.2], [0.2, 0.8], [0.1, 0.1]])) == pytest.approx(0.28)


def test_reward_range_checked():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        hypervolume(np.array([[1.2, 0.0]]))
    with pytest.raises(ValueError, match="finite"):
        hypervolume(np.array([[np.nan, 0.0]]))


def test_non_dominated_matches_brute_force():
    rng = np.random.default_rng(0)
    r = rng.random((60, 3))
    brute = [i for i in range(len(r)) if not any(np.all(r[j] >= r[i]) and np.any(r[j] > r[i]) for j in range(len(r)))]
    assert non_dominated(r).tolist() == brute


def test_dominates_hand_cases():
    assert dominates(np.array([0.5, 0.6]), np.array([0.5, 0.4]))
    assert not dominates(np.array([0.5, 0.4]), np.array([0.5, 0.6]))
    assert not dominates(np.array([0.5, 0.4]), np.array([0.5, 0.4]))  # equal: irreflexive
    assert not dominates(np.array([0.9, 0.1]), np.array([0.1, 0.9]))  # a trade-off
    assert dominates([2.0, 3.0], [1.0, -1.0])  # compares only: any range, any array-like
    assert isinstance(dominates([1.0], [0.0]), bool)


def test_dominates_agrees_with_non_dominated():
    rng = np.random.default_rng(2)
    r = rng.integers(0, 4, size=(40, 3)) / 3.0  # a coarse grid: many ties and duplicates
    brute = [i for i in range(len(r)) if not any(dominates(r[j], r[i]) for j in range(len(r)))]
    assert non_dominated(r).tolist() == brute


def test_anytime_curve_is_prefix_hypervolume():
    rng = np.random.default_rng(1)
    r = rng.random((25, 3))
    curve = anytime_hypervolume(r)
    assert np.all(np.diff(curve) >= -1e-12)
    for i in (0, 7, 24):
        assert curve[i] == pytest.approx(hypervolume(r[: i + 1]))
    assert evaluations_to_reach(curve, 0.9 * curve[-1]) <= 25
    assert evaluations_to_reach([0.1, 0.2], 0.5) is None
    assert evaluations_to_reach([0.1, 0.5, 0.6], 0.5) == 2


def test_igd_plus():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert igd_plus(ref, ref) == pytest.approx(0.0)
    # A single point at (0.5, 0.5): IGD+ distance to each reference point is 0.5 along one axis.
    assert igd_plus(np.array([[0.5, 0.5]]), ref) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="objectives"):
        igd_plus(np.zeros((1, 3)), ref)
