"""Amortized policies: pools, training (deterministic, checkpointed, resumable), the policy file, and its use
in ``samstar segment --policy`` and ``samstar stream --policy``, on the small random model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile

from samstar_env.cli import main
from samstar_env.data.synthetic import generate, split_seeds
from samstar_env.errors import InputError, MissingFileError, ResumeMismatchError
from samstar_env.policy.policy_file import load_policy, read_info
from samstar_env.policy.pool import policy_pool
from samstar_env.policy.train import PolicyTrainConfig, latest_checkpoint, train_policy
from tests.env_helpers import SIZE, small_space

# Short PPO rollouts so a few hundred steps make several updates.
PPO_KW = {"n_steps": 32, "batch_size": 32, "n_epochs": 2}


@pytest.fixture(scope="module")
def pool(random_sam):
    return policy_pool("perovskite", n_train=4, n_test=2, size=SIZE[0], space=small_space()).replace(model=random_sam)


def _config(out, **kw):
    base = {"task": "perovskite", "out": str(out), "steps": 96, "checkpoint_every": 32, "algo_kwargs": PPO_KW}
    return PolicyTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pool):
    out = tmp_path_factory.mktemp("policy") / "run"
    report = train_policy(_config(out), pool=pool, log=lambda _l: None)
    return out, report


def _weights(path):
    import torch

    state = load_policy(path).model.policy.state_dict()
    return {k: v.detach().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}


def test_pool_is_frozen_and_disjoint_from_tune_test_and_model_training():
    p = policy_pool("ito", n_train=3, n_test=2, size=64)
    seeds = [im.metadata["seed"] for im in p.images]
    assert seeds == list(split_seeds("ito", "policy")[:3])
    assert [im.metadata["seed"] for im in p.test_images] == list(split_seeds("ito", "test")[:2])
    for split in ("tune", "test", "train"):
        assert not set(seeds) & set(split_seeds("ito", split))
    again = policy_pool("ito", n_train=3, n_test=2, size=64)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(p.images, again.images, strict=True))
    assert p.space.names[0] == "points_per_side" and p.space.base.crop_n_layers == 0
    with pytest.raises(InputError, match="unknown task 'nope'"):
        policy_pool("nope")
    with pytest.raises(InputError, match="asked for"):
        policy_pool("ito", n_test=17)


def test_task_file_pool_holds_out_its_last_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        tifffile.imwrite(folder / f"f{i}.tif", (np.random.default_rng(i).random((48, 48)) * 255).astype(np.uint8))
    toml = tmp_path / "t.toml"
    toml.write_text('[task]\nimages = "imgs"\npixel_size_nm = 1.0\n[prior]\ndiameter_range_nm = [4.0, 8.0]\n')
    p = policy_pool(str(toml), n_test=2)
    assert [im.name for im in p.images] == ["f0", "f1", "f2"] and [im.name for im in p.test_images] == ["f3", "f4"]
    default = policy_pool(str(toml))  # a fifth held out by default
    assert len(default.test_images) == 1 and len(default.images) == 4
    with pytest.raises(InputError, match="leaves none"):
        policy_pool(str(toml), n_test=5)


def test_contextual_env_draws_pool_images_deterministically_per_seed(pool):
    from samstar_env.env import SamStarEnv

    def names(seed):
        env = SamStarEnv(pool, mode="contextual")
        env.reset(seed=seed)
        return [env.reset()[1]["image_names"][0] for _ in range(8)]

    assert names(3) == names(3)
    assert set(names(3)) <= {im.name for im in pool.images}
    assert names(3) != names(4)


def test_training_writes_a_loadable_policy_with_valid_parameters(trained, pool):
    out, report = trained
    assert {p.name for p in out.iterdir()} >= {"policy.zip", "policy.json", "held_out.json", "train_config.json", "checkpoints", "tb"}
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    assert latest_checkpoint(out / "checkpoints")[1] == report.steps >= 96
    policy = load_policy(out)
    info = read_info(out / "policy.json")
    assert info.steps == report.steps and info.reward_names == tuple(pool.rewards.names)
    assert info.held_out is not None and set(info.held_out["rewards"]) == set(pool.rewards.names)
    held = json.loads((out / "held_out.json").read_text())
    assert [h["name"] for h in held] == [im.name for im in pool.test_images]
    for im in (*pool.images, *pool.test_images):
        prop = policy.propose(im)
        assert prop.action.shape == (pool.space.dim,) and np.all(np.abs(prop.action) <= 1)
        assert prop.params == pool.space.decode(prop.action)  # a point of the policy's space
        assert prop.params.points_per_side in (2, 4)
    # Deterministic: the same image gives the same parameters.
    assert policy.propose(pool.test_images[0]).params == policy.propose(pool.test_images[0]).params


def test_training_is_deterministic_per_seed(tmp_path, trained, pool):
    out, _ = trained
    again = tmp_path / "again"
    train_policy(_config(again), pool=pool, log=lambda _l: None)
    a, b = _weights(out), _weights(again)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    def held(run):  # everything but the wall time
        return [{k: v for k, v in h.items() if k != "seconds"} for h in json.loads((run / "held_out.json").read_text())]

    assert held(out) == held(again)
    other = tmp_path / "other"
    train_policy(_config(other, seed=1), pool=pool, log=lambda _l: None)
    c = _weights(other)
    assert any(not np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


def test_resume_continues_from_the_latest_checkpoint_and_refuses_another_run(tmp_path, trained, pool):
    out, report = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    lines: list[str] = []
    rep = train_policy(_config(run, steps=report.steps + 64), pool=pool, resume=True, log=lines.append)
    assert rep.steps == report.steps + 64
    assert any(f"resuming from policy_{report.steps}_steps.zip" in line for line in lines)
    with pytest.raises(ResumeMismatchError, match="obs_mode"):
        train_policy(_config(run, steps=999, obs_mode="thumbnail"), pool=pool, resume=True, log=lambda _l: None)
    with pytest.raises(InputError, match="already holds a run"):
        train_policy(_config(run), pool=pool, log=lambda _l: None)
    with pytest.raises(InputError, match="holds no run"):
        train_policy(_config(tmp_path / "empty"), pool=pool, resume=True, log=lambda _l: None)


def test_sac_thumbnail_policy_and_two_worker_processes(tmp_path, pool):
    rep = train_policy(_config(tmp_path / "sac", algo="sac", steps=48, obs_mode="thumbnail", thumbnail_size=36,
                               algo_kwargs={"learning_starts": 16, "batch_size": 16}), pool=pool, log=lambda _l: None)
    assert (tmp_path / "sac" / "checkpoints" / f"policy_replay_buffer_{rep.steps}_steps.pkl").is_file()
    policy = load_policy(tmp_path / "sac" / "policy.zip")
    obs = policy.observation(pool.test_images[0])
    assert set(obs) == {"features", "thumbnail"} and obs["thumbnail"].shape == (36, 36, 1)
    assert policy.propose(pool.test_images[0]).params.points_per_side in (2, 4)
    rep2 = train_policy(_config(tmp_path / "two", steps=64, workers=2), pool=pool, log=lambda _l: None)
    assert rep2.steps >= 64 and load_policy(tmp_path / "two").info.extra["workers"] == 2


def test_a_policy_for_another_space_or_suite_is_refused(tmp_path, trained, pool):
    out, _ = trained
    policy = load_policy(out)
    policy.check_compatible(space=pool.space, reward_names=pool.rewards.names)
    with pytest.raises(InputError, match=r"trained on the space \['points_per_side'.*not on"):
        policy.check_compatible(space=pool.space.subset(["pred_iou_thresh"]))
    with pytest.raises(InputError, match="trained on the rewards"):
        policy.check_compatible(reward_names=["size_window"])
    # A policy.json that no longer describes the model (another space, another rewards version).
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = json.loads((bad / "policy.json").read_text())
    data["space"]["dimensions"] = data["space"]["dimensions"][:2]
    (bad / "policy.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"actions have shape \(4,\); policy.json's space has 2"):
        load_policy(bad)
    data = json.loads((out / "policy.json").read_text())
    data["rewards_version"] = -1
    (bad / "policy.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="rewards version -1"):
        load_policy(bad)
    (bad / "policy.json").write_text(json.dumps({**data, "format": "other/1"}))
    with pytest.raises(InputError, match="not a samstar policy"):
        load_policy(bad)
    (bad / "policy.json").unlink()
    with pytest.raises(MissingFileError, match="policy.json"):
        load_policy(bad)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, random_sam):
    from samstar_env.models.checkpoint import save_checkpoint
    from tests.conftest import TEST_SAM_CONFIG

    path = tmp_path_factory.mktemp("model") / "random_sam.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, path)
    return path


def test_segment_policy_end_to_end_records_each_images_parameters(tmp_path, trained, checkpoint, capsys):
    out, _ = trained
    policy = load_policy(out)
    paths = []
    for seed in (0, 1000):
        im = generate("ito", seed=seed, size=SIZE)
        p = tmp_path / f"im{seed}.tif"
        tifffile.imwrite(p, (im.image * 255).astype(np.uint8))
        paths.append(p)
    rc = main(["segment", *map(str, paths), "--policy", str(out), "--model", str(checkpoint), "-o", str(tmp_path / "seg")])
    assert rc == 0
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert summary["params_source"].startswith("policy")
    from samstar_env.data.loaders import load_image

    for rec, p in zip(summary["images"], paths, strict=True):
        expected = policy.propose(load_image(p)).params
        assert rec["params"] == expected.to_dict()
    assert "[policy: points_per_side=" in capsys.readouterr().out
    # The policy was trained on an in-memory model: without --model the error says so.
    assert main(["segment", str(paths[0]), "--policy", str(out), "-o", str(tmp_path / "s2")]) == 2
    assert "in-memory model" in capsys.readouterr().err
    assert main(["segment", str(paths[0]), "--policy", str(out), "--params", "x.json", "--model", str(checkpoint),
                 "-o", str(tmp_path / "s3")]) == 2
    assert "either params or a policy" in capsys.readouterr().err


def test_stream_policy_parameters_per_frame_and_the_held_out_drift_level(tmp_path, trained, random_sam):
    from samstar_env.stream import StreamConfig, run_stream
    from samstar_env.stream.run import LOG_NAME

    out, _ = trained
    src = tmp_path / "frames"
    src.mkdir()
    for i, seed in enumerate((0, 1)):
        tifffile.imwrite(src / f"f{i}.tif", (generate("perovskite", seed=seed, size=SIZE).image * 255).astype(np.uint8))
    rep = run_stream(StreamConfig(src, policy=out, model=random_sam, out_dir=tmp_path / "o", settle_s=0.0, max_frames=2), echo=None)
    assert rep.processed == ("f0.tif", "f1.tif")
    lines = [json.loads(x) for x in (tmp_path / "o" / LOG_NAME).read_text().splitlines()]
    start = next(r for r in lines if r["event"] == "start")
    assert start["drift"]["level_source"] == "policy" and start["policy"].endswith("policy.zip")
    frames = [r for r in lines if r["event"] == "frame"]
    policy = load_policy(out)
    from samstar_env.data.loaders import load_image

    level = policy.info.held_out["rewards"]
    for r in frames:
        assert r["params"] == policy.propose(load_image(src / r["frame"])).params.to_dict()
        # Judged against the held-out level from the first frame on (no baseline frames).
        below = sorted(k for k, v in r["rewards"].items() if not v >= level[k] - 0.1)
        assert r["drift"] is bool(below) and sorted(r["below"]) == below
    with pytest.raises(InputError, match="does not combine with a policy"):
        StreamConfig(src, policy=out, retune=True)
    with pytest.raises(InputError, match="needs a policy"):
        StreamConfig(src, drift_level="policy")


def test_train_policy_cli_errors(tmp_path, capsys):
    assert main(["train-policy", "perovskite", "--out", str(tmp_path / "x"), "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    assert main(["train-policy", "perovskite", "--out", str(tmp_path / "x"), "--weights", "a,b"]) == 2
    assert "--weights must be comma-separated" in capsys.readouterr().err
    assert main(["train-policy", "nope", "--out", str(tmp_path / "x"), "--pool-size", "2"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
