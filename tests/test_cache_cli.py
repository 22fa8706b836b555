"""``samstar cache``: the warm plan, resuming without repeated decodes, Dask workers, info / clear, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import samstar_env.cache as cache_mod
import samstar_env.engine.engine as engine_mod
from samstar_env import cli
from samstar_env.cache import cache_clear, cache_info, plan_warm, warm
from samstar_env.data.micrograph import Micrograph, PhysicsPrior
from samstar_env.engine import MaskEngine, decode_units, default_cache_dir
from samstar_env.params import AmgParams, Dimension, ParamSpace
from samstar_env.task import Task

SPACE = ParamSpace(
    dimensions=(
        Dimension("points_per_side", "grid", choices=(4, 6)),
        Dimension("pred_iou_thresh", "float", 0.0, 0.9),
        Dimension("crop_n_layers", "grid", choices=(0, 1)),
        Dimension("crop_n_points_downscale_factor", "grid", choices=(1, 2)),
    ),
    base=AmgParams(points_per_batch=16, stability_score_thresh=0.0),
)


def _task(random_sam, n_images: int = 2) -> Task:
    rng = np.random.default_rng(0)
    images = tuple(Micrograph(image=rng.random((72, 80)).astype(np.float32), name=f"im{i}") for i in range(n_images))
    return Task(name="tiny", images=images, prior=PhysicsPrior(diameter_range_nm=(5.0, 10.0)), rewards=None, space=SPACE, model=random_sam)


def test_plan_lists_each_crop_and_grid_once():
    plan = plan_warm([np.zeros((72, 80))], SPACE)
    expected = set()
    for pps in (4, 6):
        for layers in (0, 1):
            for factor in (1, 2):
                for u in decode_units((72, 80), SPACE.with_values({"points_per_side": pps, "crop_n_layers": layers,
                                                                   "crop_n_points_downscale_factor": factor})):
                    expected.add(u.identity)
    assert plan.combinations == 8
    assert {j.unit.identity for j in plan.jobs} == expected
    assert len(plan.jobs) == len(expected) == 2 + 4 * 4  # full image: 4, 6; each layer-1 crop: 2, 3, 4, 6


def test_plan_refuses_a_continuous_decode_dimension():
    space = ParamSpace((Dimension("points_per_side", "int", 4, 200),))
    with pytest.raises(ValueError, match="points_per_side.*continuous.*make it a grid"):
        plan_warm([np.zeros((32, 32))], space)


def test_env_default_space_plan_is_small():
    plan = plan_warm([np.zeros((512, 512))], ParamSpace.env_default())
    full = plan_warm([np.zeros((512, 512))], ParamSpace.default())
    assert plan.points < full.points / 10
    assert {j.unit.layer for j in plan.jobs} == {0, 1}


def test_warm_then_every_combination_is_a_replay_and_a_rerun_decodes_nothing(random_sam, tmp_path):
    task = _task(random_sam)
    first = warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    plan = plan_warm(task.images, SPACE)
    assert first.decoded == first.jobs == len(plan.jobs) and first.already_cached == 0
    again = warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    assert again.decoded == 0 and again.already_cached == again.jobs
    # A new process's engine on the same folder: any action of the space decodes nothing.
    engine = MaskEngine(random_sam, cache_dir=tmp_path)
    rng = np.random.default_rng(1)
    for _ in range(12):
        p = SPACE.sample(rng)
        for im in task.images:
            assert engine.missing_units(im, p) == []
            engine.generate(im, p)
    assert engine.stats.proposal_misses == 0 and engine.stats.embedding_misses == 0 and engine.stats.disk_hits > 0


def test_a_killed_warm_resumes_without_repeating_a_decode(random_sam, tmp_path, monkeypatch):
    task = _task(random_sam, n_images=1)
    total = len(plan_warm(task.images, SPACE).jobs)
    calls: list[int] = []
    real = engine_mod.decode_crop

    def dies_after_five(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt  # what Ctrl-C or a kill looks like mid-run
        calls.append(1)
        return real(*args, **kwargs)

    # The calibration decodes of the estimate are not part of the plan: fix the estimate instead.
    monkeypatch.setattr(cache_mod, "estimate_cost", lambda *a, **k: cache_mod.WarmEstimate(1e-3, 0.0, 100.0))
    monkeypatch.setattr(engine_mod, "decode_crop", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    assert len(calls) == 5
    monkeypatch.setattr(engine_mod, "decode_crop", real)
    resumed = warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    assert resumed.already_cached == 5 and resumed.decoded == total - 5


def test_a_corrupt_cache_file_is_recomputed_and_nothing_else_is_lost(random_sam, tmp_path):
    task = _task(random_sam, n_images=1)
    warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    files = sorted(tmp_path.glob("*.npc"))
    from samstar_env.engine.cache import DiskCache

    # A proposals entry (an embedding is read only when something must be decoded again).
    victim = next(path for path, header in DiskCache.scan(tmp_path) if "|proposals|" in header["key"])
    victim.write_bytes(victim.read_bytes()[:100])
    lines: list[str] = []
    with pytest.warns(RuntimeWarning, match="discarding"):
        report = warm(task, cache_dir=tmp_path, progress=False, log=lines.append)
    assert report.rejected == 1 and report.decoded == 1
    assert any("corrupted or stale" in line for line in lines)
    assert len(list(tmp_path.glob("*.npc"))) == len(files)


def test_warm_on_dask_workers_fills_the_same_cache(random_sam, tmp_path):
    pytest.importorskip("distributed", reason="the dist extra is not installed")
    task = _task(random_sam, n_images=1)
    report = warm(task, cache_dir=tmp_path, executor="dask", n_workers=1, progress=False, log=lambda s: None)
    assert report.decoded == report.jobs
    local = warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    assert local.decoded == 0
    # What the workers wrote equals a local decode.
    p = SPACE.with_values({"points_per_side": 6, "crop_n_layers": 1})
    fresh = MaskEngine(random_sam).generate(task.images[0], p)
    cached = MaskEngine(random_sam, cache_dir=tmp_path).generate(task.images[0], p)
    assert len(fresh) == len(cached) and np.array_equal(fresh.masks, cached.masks)


def test_cli_info_and_clear(random_sam, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAMSTAR_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    warm(_task(random_sam, n_images=1), progress=False, log=lambda s: None)
    info = cache_info()
    assert info.entries == len(list((tmp_path / "c").glob("*.npc"))) > 0
    assert set(info.by_kind) == {"embedding", "proposals"} and len(info.by_model) == 1
    assert cli.main(["cache", "info"]) == 0
    assert f"{info.entries} entries" in capsys.readouterr().out
    assert cli.main(["cache", "clear"]) == 1  # asks for --yes, deletes nothing
    assert cache_info().entries == info.entries
    assert cli.main(["cache", "clear", "--yes"]) == 0
    assert cache_info().entries == 0 and cache_clear() == 0


def test_cli_bad_input_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAMSTAR_CACHE", str(tmp_path / "c"))
    assert cli.main(["cache", "warm", "no-such-task"]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SAMSTAR_CACHE", str(blocker / "cache"))
    assert cli.main(["cache", "warm", "perovskite", "--no-progress"]) == 2
    assert "cannot write to the cache folder" in capsys.readouterr().err
    monkeypatch.setenv("SAMSTAR_CACHE", "off")
    assert default_cache_dir() is None
    assert cli.main(["cache", "info"]) == 2
    assert "SAMSTAR_CACHE is 'off'" in capsys.readouterr().err


def test_env_step_logs_a_cold_decode_and_is_silent_once_warm(random_sam, tmp_path, monkeypatch, caplog):
    import logging

    import gymnasium as gym

    from samstar_env.problem import clear_shared_engines

    monkeypatch.setenv("SAMSTAR_CACHE", str(tmp_path))
    space = ParamSpace(dimensions=(Dimension("points_per_side", "grid", choices=(2, 4)),
                                   Dimension("crop_n_layers", "grid", choices=(0, 1)),
                                   Dimension("pred_iou_thresh", "float", 0.0, 0.9)),
                       base=AmgParams(stability_score_thresh=0.0))
    env = gym.make("samstar/Perovskite-v4", model=random_sam, size=(64, 64), space=space, budget=20)
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING, logger="samstar_env.env"):
        env.step(np.array([-1.0, -1.0, 0.0]))  # points_per_side 2, no crop layer: cold
        env.step(np.array([-1.0, -1.0, 0.5]))  # the same grid: a replay
    cold = [r.getMessage() for r in caplog.records]
    assert len(cold) == 1 and "decodes 1 new crop/grid unit(s), 4 prompts" in cold[0] and "samstar cache warm" in cold[0]
    # Warm the env's whole space, then a fresh engine (as a new process would have) never decodes.
    warm(env.unwrapped.task, progress=False, log=lambda s: None)
    clear_shared_engines()
    env2 = gym.make("samstar/Perovskite-v4", model=random_sam, size=(64, 64), space=space, budget=20)
    env2.reset(seed=0)
    env2.action_space.seed(0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="samstar_env.env"):
        for _ in range(10):
            env2.step(env2.action_space.sample())
    assert caplog.records == []
    assert env2.unwrapped.problem.engine.stats.proposal_misses == 0


def test_registered_ids_default_to_the_env_space():
    import gymnasium as gym

    env = gym.make("samstar/ITO-v4")
    assert env.unwrapped.space.names == ParamSpace.env_default().names
    assert env.unwrapped.space.dimensions == ParamSpace.env_default().dimensions


def test_warm_covers_tuned_tiles_and_each_tile_then_replays(random_sam, tmp_path):
    space = ParamSpace((Dimension("points_per_side", "grid", choices=(4,)), Dimension("tile_shape", "grid", choices=(0, 40)),
                        Dimension("halo", "grid", choices=(8,)), Dimension("pred_iou_thresh", "float", 0.0, 0.9)),
                       base=AmgParams(points_per_side=4, stability_score_thresh=0.0))
    task = _task(random_sam).replace(space=space)
    plan = plan_warm(task.images, space)
    # Per 72 x 80 image: the whole image (tile_shape 0) and its 2 x 2 tiles of 40 px.
    assert plan.combinations == 2 and len(plan.jobs) == 2 * (1 + 4)
    assert sum(j.unit.tile is not None for j in plan.jobs) == 2 * 4
    warm(task, cache_dir=tmp_path, progress=False, log=lambda s: None)
    engine = MaskEngine(random_sam, cache_dir=tmp_path)
    for x in np.linspace(-1, 1, 6):
        p = space.decode(np.array([0.0, x, 0.0, -x]))
        for im in task.images:
            engine.generate(im, p)
    assert engine.stats.proposal_misses == 0 and engine.stats.disk_hits > 0
