"""Operating-point rules: each picks the front member its definition names."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from samstar_env.agents import Trial, TuningResult
from samstar_env.agents.operating_points import DEFAULT_RULE, RULES, choose, count_distance, nearest_count
from samstar_env.errors import InputError
from samstar_env.params import AmgParams


def _result(rewards, n_masks):
    trials = tuple(
        Trial(i, np.zeros(1), AmgParams(pred_iou_thresh=0.1 + 0.01 * i), r, 0.0, n_masks=tuple(n))
        for i, (r, n) in enumerate(zip(rewards, n_masks, strict=True))
    )
    return TuningResult(agent="demo", seed=0, reward_names=("a", "b"), trials=trials)


def test_count_rule_takes_the_front_member_nearest_the_expected_counts():
    # Three front members keeping 5, 40 and 200 masks per image; 50 particles expected.
    res = _result([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.1, 0.1]], [(5, 5), (40, 44), (200, 210), (50, 50)])
    op = nearest_count(res, [50, 50])
    # The dominated trial 3 keeps exactly 50 masks but is not on the front: the rule picks from the front.
    assert op.rule == "count" and op.trial.index == 1
    assert op.detail["log_distance"] == pytest.approx(count_distance([40, 44], [50, 50]))
    with pytest.raises(ValueError, match="one per tune image"):
        nearest_count(res, [50])


def test_choose_dispatches_every_rule():
    res = _result([[1.0, 0.0], [0.6, 0.6], [0.0, 1.0]], [(5,), (40,), (200,)])
    weights = SimpleNamespace(task=SimpleNamespace(rewards=SimpleNamespace(weights=np.array([0.9, 0.1]))))
    assert choose(res, "scalarized", problem=weights).trial.index == 0   # weight on reward a
    assert choose(res, "balanced").trial.index == 1                      # equal weights: 1.2 beats 1.0
    assert choose(res, "b").trial.index == 2                             # a reward name: its best
    assert choose(res, "knee").trial.index == res.knee().trial.index
    assert DEFAULT_RULE in RULES and "count" in RULES
    with pytest.raises(InputError, match="needs the tuning problem"):
        choose(res, "count")
    with pytest.raises(InputError, match="unknown operating-point rule 'best'"):
        choose(res, "best")

