"""Every agent: a tiny-budget run that respects the budget, same seed -> same result; NSGA-II's sign."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from samstar_env.agents import Agent, TuningResult, agent_class, available_agents, make_agent, register_agent
from samstar_env.agents.grid import grid_shape
from samstar_env.problem import TuningProblem

TOY_AGENTS = [("random", {}), ("grid", {}), ("nsga2", {"pop_size": 6}), ("optuna", {})]


@pytest.mark.parametrize(("name", "opts"), TOY_AGENTS)
def test_tiny_run_budget_and_determinism(toy, name, opts):
    r1 = make_agent(name, **opts).run(toy, budget=14, seed=3)
    r2 = make_agent(name, **opts).run(toy, budget=14, seed=3)
    assert r1.agent == name and r1.budget == 14
    assert 1 <= len(r1.trials) <= 14
    if name != "grid":
        assert len(r1.trials) == 14
    assert r1.same_as(r2)
    assert [t.params for t in r1.trials] == [t.params for t in r2.trials]
    np.testing.assert_array_equal(r1.rewards, r2.rewards)
    # Actions are in the box and decode to the recorded params through the ParamSpace.
    for t in r1.trials:
        assert np.abs(t.action).max() <= 1.0
        assert toy.search_space.decode(t.action) == t.params


@pytest.mark.parametrize(("name", "opts"), [("random", {}), ("nsga2", {"pop_size": 6}), ("optuna", {})])
def test_other_seed_differs(toy, name, opts):
    a = make_agent(name, **opts).run(toy, budget=6, seed=0)
    b = make_agent(name, **opts).run(toy, budget=6, seed=1)
    assert not a.same_as(b)


def test_nsga2_improves_toy_objective_and_front_is_nondominated(toy):
    # If the sign flip were wrong, NSGA-II would minimize the rewards and the last generation would
    # be worse than the random initial population.
    res = make_agent("nsga2", pop_size=10).run(toy, budget=150, seed=0)
    r = res.rewards.astype(float)
    first, last = r[:10].sum(axis=1), r[-10:].sum(axis=1)
    assert last.mean() > first.mean() + 0.2
    assert last.mean() > 0.9  # the true front has a + b = 1
    front = res.rewards[res.front_indices]
    for i, x in enumerate(front):
        for j, y in enumerate(front):
            assert i == j or not (np.all(y >= x) and np.any(y > x))
    from samstar_env.metrics.multiobjective import hypervolume

    assert hypervolume(r[-10:]) > hypervolume(r[:10])


def test_nsga2_respects_n_gen(toy):
    res = make_agent("nsga2", pop_size=4, n_gen=2).run(toy, budget=100, seed=0)
    assert len(res.trials) == 8


def test_grid_is_micro_sam_grid(toy):
    res = make_agent("grid").run(toy, budget=500, seed=0)
    assert len(res.trials) == 13 * 15  # micro-sam: 0.6..0.9 x 0.6..0.95, step 0.025
    ious = sorted({round(t.params.pred_iou_thresh, 6) for t in res.trials})
    stabs = sorted({round(t.params.stability_score_thresh, 6) for t in res.trials})
    assert ious[0] == 0.6 and ious[-1] == 0.9 and len(ious) == 13
    assert stabs[0] == 0.6 and stabs[-1] == 0.95 and len(stabs) == 15
    base = toy.search_space.base
    assert {t.params.points_per_side for t in res.trials} == {base.points_per_side}
    assert grid_shape(20, full=(13, 15))[0] * grid_shape(20, full=(13, 15))[1] <= 20


def test_register_agent_one_line(toy):
    @register_agent("test-constant")
    class Constant(Agent):
        def ask(self, n):
            return np.zeros((n, self.dim))

        def tell(self, actions, reward_vectors, *, evaluations=None):
            pass

    assert "test-constant" in available_agents()
    res = make_agent("test-constant").run(toy, budget=3, seed=0)
    assert res.agent == "test-constant" and len(res.trials) == 3
    with pytest.raises(ValueError, match="unknown agent"):
        agent_class("no-such-agent")


def test_evaluator_hook_and_callbacks(toy):
    seen, batches = [], []

    def evaluator(problem, params_list):
        batches.append(len(params_list))
        return [problem.evaluate(p) for p in params_list]

    res = make_agent("nsga2", pop_size=5).run(toy, budget=12, seed=0, evaluator=evaluator, callbacks=[lambda s: seen.append(s.trial.index)])
    assert batches == [5, 5, 2] and seen == list(range(12))
    assert res.same_as(make_agent("nsga2", pop_size=5).run(toy, budget=12, seed=0))


def test_real_problem_end_to_end(small_task):
    problem = TuningProblem(small_task)
    r1 = make_agent("nsga2", pop_size=4).run(problem, budget=8, seed=0)
    r2 = make_agent("nsga2", pop_size=4).run(TuningProblem(small_task), budget=8, seed=0)
    assert len(r1.trials) == 8 and r1.same_as(r2)
    assert r1.reward_names == tuple(small_task.rewards.names)
    assert r1.rewards.dtype == np.float32 and (r1.rewards >= 0).all() and (r1.rewards <= 1).all()
    assert TuningResult.from_json(r1.to_json()).same_as(r1)


def test_sb3_tiny_run(small_task, tmp_path, monkeypatch):
    # SB3's default logger makes an empty $TMPDIR/SB3-<date> folder per learn(); the agent must not.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    opts = dict(n_weights=2, episode_length=4, contextual_steps=2, save_dir=str(tmp_path))
    r1 = make_agent("sb3", **opts).run(TuningProblem(small_task), budget=8, seed=0)
    r2 = make_agent("sb3", **opts).run(TuningProblem(small_task), budget=8, seed=0)
    assert len(r1.trials) == 8 and r1.same_as(r2)
    assert (tmp_path / "policy_w0.zip").is_file() and (tmp_path / "policy_w1.zip").is_file()
    assert (tmp_path / "contextual.zip").is_file()
    ppo = make_agent("sb3", algo="ppo", episode_length=4, algo_kwargs={"n_steps": 4, "batch_size": 4})
    assert len(ppo.run(TuningProblem(small_task), budget=8, seed=0).trials) == 8
    assert list(tmp.iterdir()) == []
