"""Optuna agent: journal-storage resume (including a trial orphaned by a kill) and the GP sampler."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna")

from samstar_env.agents import make_agent  # noqa: E402


def test_journal_resume_equals_uninterrupted(toy, tmp_path):
    full = make_agent("optuna").run(toy, budget=16, seed=5)
    store = tmp_path / "study.journal"
    part = make_agent("optuna", storage=store).run(toy, budget=7, seed=5)
    assert len(part.trials) == 7
    # A process killed mid-evaluation leaves a RUNNING trial behind.
    agent = make_agent("optuna", storage=store)
    agent.setup(toy, budget=16, seed=5)
    agent.ask(1)
    resumed = make_agent("optuna", storage=store).run(toy, budget=16, seed=5)
    assert resumed.metadata["n_replayed"] == 0
    assert len(resumed.trials) == 16
    assert resumed.same_as(full)


def test_storage_for_another_problem_is_refused(toy, tmp_path):
    store = tmp_path / "s.journal"
    make_agent("optuna", storage=store).run(toy, budget=2, seed=0)
    toy.reward_names = ("a", "c")
    with pytest.raises(ValueError, match="other rewards"):
        make_agent("optuna", storage=store).run(toy, budget=3, seed=0)


def test_gp_sampler_runs(toy):
    res = make_agent("optuna", sampler="gp", n_startup_trials=2).run(toy, budget=3, seed=0)
    assert len(res.trials) == 3
