"""TuningResult: non-dominated set vs brute force, operating points, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samstar_env.agents import Trial, TuningResult
from samstar_env.params import AmgParams


def _result(rewards, names=("a", "b", "c")):
    trials = [Trial(i, np.full(2, i / 100), AmgParams(pred_iou_thresh=0.5 + i / 1000), r, 0.1 * i) for i, r in enumerate(rewards)]
    return TuningResult(agent="x", seed=1, reward_names=names, trials=tuple(trials), task="toy", budget=len(trials))


def _brute_force(r):
    keep = []
    for i in range(len(r)):
        if not any(np.all(r[j] >= r[i]) and np.any(r[j] > r[i]) for j in range(len(r)) if j != i):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(4))
def test_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    r = np.round(rng.uniform(0, 1, size=(40, 3)), 1).astype(np.float32)  # rounding makes ties
    res = _result(r)
    assert res.front_indices.tolist() == _brute_force(r)


def test_operating_points():
    r = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.6, 0.1], [0.5, 0.5, 0.05], [0.0, 0.0, 1.0]], np.float32)
    res = _result(r)
    assert res.front_indices.tolist() == [0, 1, 2, 4]
    assert res.by_weights({"a": 1.0}).trial.index == 0
    assert res.by_weights([0, 0, 1]).trial.index == 4
    assert res.by_weights([1, 1, 0]).trial.index == 2
    assert res.by_priority("b").trial.index == 1
    assert res.knee().trial.index == 2
    assert res.pick("balanced").trial.index == 2
    with pytest.raises(ValueError, match="unknown priority"):
        res.by_priority("nope")
    with pytest.raises(ValueError, match="non-negative"):
        res.by_weights([0, 0, 0])


def test_named_priorities_on_auco_names():
    names = ("small_particle_detection", "aggregate_coverage", "duplicate_free")
    r = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.5, 0.5, 0.5]], np.float32)
    res = _result(r, names)
    assert res.by_priority("small_particles").trial.index == 0
    assert res.by_priority("large_aggregates").trial.index == 1


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    res = _result(rng.uniform(0, 1, (7, 3)).astype(np.float32))
    path = tmp_path / "r.json"
    res.to_json(path)
    back = TuningResult.from_json(path)
    assert back.same_as(res)
    assert back.front_indices.tolist() == res.front_indices.tolist()
    np.testing.assert_array_equal(back.costs_s, res.costs_s)
    assert json.loads(path.read_text())["front"] == res.front_indices.tolist()
    op = res.knee()
    (tmp_path / "best.json").write_text(json.dumps(op.to_dict(res.reward_names)))
    assert AmgParams.from_json(str(tmp_path / "best.json")) == op.trial.params


def test_trial_round_trips_ground_truth_labels_and_undefined_metrics():
    # gt_metrics returns a unit label and None where a metric is undefined; a trial keeps both.
    t = Trial(0, np.zeros(1), AmgParams(), [0.1], 0.0, gt={"f1": 0.5, "size_unit": "px", "occluded_recall": None})
    d = t.to_dict()
    assert d["gt"] == {"f1": 0.5, "size_unit": "px", "occluded_recall": None}
    assert Trial.from_dict(d).gt == d["gt"]
