"""Registration (ids, entry points, make / make_vec) and task files (make_env_from_toml)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import samstar_env
from samstar_env.data.loaders import save_tiff_with_pixel_size
from samstar_env.data.synthetic import generate, prior
from samstar_env.env import DEFAULT_BUDGET, SamStarEnv
from samstar_env.errors import TaskFileError
from samstar_env.registration import CUSTOM_ID, SYNTHETIC_IDS, make_env_from_toml
from samstar_env.rewards import preset as rewards_preset
from samstar_env.task_file import task_from_toml
from samstar_env.wrappers import ScalarizeReward
from tests.env_helpers import SIZE, small_space


def test_ids_are_registered_with_string_entry_points():
    for env_id in [*SYNTHETIC_IDS, CUSTOM_ID]:
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str) and spec.entry_point.startswith("samstar_env.registration:")
        assert spec.version == 4 and spec.namespace == "samstar"
        assert spec.max_episode_steps == DEFAULT_BUDGET
        assert spec.vector_entry_point.startswith("samstar_env.registration:")
    assert {gym.spec(i).kwargs["task"] for i in SYNTHETIC_IDS} == {"perovskite", "ito", "auco"}


@pytest.mark.parametrize("old", ["-v0", "-v1", "-v2", "-v3"])
def test_superseded_ids_point_to_v4(old):
    # v0 scored per-mask rewards as plain means (rewards version 1); v1 had the full default space,
    # whose crop layer 2 and overlaps cannot be decoded ahead; v2 scored every action, however many
    # masks it kept; v3 scored AuCo's small_particle_detection as recall and aggregate_coverage
    # without fragments (rewards version 2). Gymnasium's own deprecation error names the id to use instead.
    for env_id in [*SYNTHETIC_IDS, CUSTOM_ID]:
        with pytest.raises(gym.error.DeprecatedEnv, match=f"{old[1:]} for `{env_id[:-3]}` is deprecated.*use `{env_id}`"):
            gym.make(env_id.replace("-v4", old))


def test_make_wraps_time_limit_and_exposes_mo_attributes(random_sam):
    env = gym.make("samstar/ITO-v4", model=random_sam, size=SIZE, space=small_space(), budget=3)
    assert isinstance(env.unwrapped, SamStarEnv)
    assert env.spec.max_episode_steps == DEFAULT_BUDGET
    u = env.unwrapped
    assert u.reward_dim == len(u.reward_names) == u.reward_space.shape[0]
    assert u.action_space.shape == (4,) and u.action_space.dtype == np.float32
    assert u.task.model is random_sam and u.task.images[0].shape == SIZE
    assert gym.make("samstar/ITO-v4", max_episode_steps=7, model=random_sam, size=SIZE).spec.max_episode_steps == 7


def test_unknown_option_and_custom_errors(random_sam):
    with pytest.raises(TypeError, match="unknown option.*budgt"):
        gym.make("samstar/Perovskite-v4", budgt=3)
    with pytest.raises(ValueError, match="samstar/Custom-v4: pass images="):
        gym.make(CUSTOM_ID)
    im = generate("ito", 0, size=SIZE)
    with pytest.raises(ValueError, match="pass prior="):
        gym.make(CUSTOM_ID, images=[im])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gym.make(CUSTOM_ID, images="/no/such/folder", prior={"diameter_range_nm": (5, 10)})
    with pytest.raises(ValueError, match="no_such_reward"):
        gym.make(CUSTOM_ID, images=im, prior=prior("ito"), rewards=["no_such_reward"])
    env = gym.make(CUSTOM_ID, images=im, prior={"diameter_range_nm": (20.0, 60.0)}, model=random_sam)
    assert "size_window" in env.unwrapped.reward_names  # the generic preset
    env = gym.make(CUSTOM_ID, images=im, prior=prior("ito"), model=random_sam, rewards="ito")  # a preset by name
    assert env.unwrapped.reward_names == rewards_preset("ito").names
    with pytest.raises(ValueError, match="samstar/Custom-v4: rewards: unknown reward preset 'graphene'"):
        gym.make(CUSTOM_ID, images=im, prior=prior("ito"), rewards="graphene")


def test_make_vec_two_envs(random_sam):
    kw = {"model": random_sam, "size": SIZE, "space": small_space(), "budget": 3}
    vec = gym.make_vec("samstar/Perovskite-v4", num_envs=2, vectorization_mode="sync", wrappers=[ScalarizeReward], **kw)
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, vec.single_observation_space.shape[0])
    for _ in range(3):
        obs, r, term, trunc, info = vec.step(vec.action_space.sample())
        assert r.shape == (2,) and np.isfinite(r).all()
        assert info["vector_reward"].shape == (2, vec.envs[0].unwrapped.reward_dim)
    assert term.all()
    vec.close()


def test_make_vec_default_gives_vector_rewards(random_sam):
    kw = {"model": random_sam, "size": SIZE, "space": small_space(), "budget": 2}
    vec = gym.make_vec("samstar/AuCo-v4", num_envs=2, **kw)
    k = len(rewards_preset("auco").names)
    assert vec.reward_space.shape == (k,)
    vec.reset(seed=0)
    for _ in range(2):
        _, r, term, trunc, info = vec.step(vec.action_space.sample())
        assert r.shape == (2, k) and r.dtype == np.float32
        assert all(vec.reward_space.contains(row) for row in r)
    assert term.all() and not trunc.any()
    vec.close()


def test_mo_gymnasium_vector_env(random_sam):
    mo_vector = pytest.importorskip("mo_gymnasium.wrappers.vector")
    kw = {"model": random_sam, "size": SIZE, "space": small_space(), "budget": 3}
    vec = mo_vector.MOSyncVectorEnv([lambda: gym.make("samstar/AuCo-v4", **kw) for _ in range(2)])
    vec.reset(seed=0)
    _, r, *_ = vec.step(vec.action_space.sample())
    assert r.shape == (2, len(rewards_preset("auco").names)) and r.dtype == np.float32
    vec.close()


# -- task files ------------------------------------------------------------------------------------
@pytest.fixture
def task_dir(tmp_path: Path, random_sam) -> Path:
    from samstar_env.models import save_checkpoint
    from tests.conftest import TEST_SAM_CONFIG

    imgs = tmp_path / "micrographs"
    imgs.mkdir()
    for s in (0, 1):
        m = generate("perovskite", s, size=SIZE)
        save_tiff_with_pixel_size(imgs / f"frame{s}.tif", (m.image * 65535).astype(np.uint16), None)
    save_checkpoint(random_sam, TEST_SAM_CONFIG, tmp_path / "sam.pt")
    return tmp_path


GOOD_TOML = """
[task]
name = "my-sample"
images = "micrographs"
pixel_size_nm = 0.8
modality = "haadf"
model = "sam.pt"
rewards = ["size_window", "shape_fidelity", "duplicate_free"]

[prior]
diameter_range_nm = [8.0, 15.0]
shape = "cube"

[space]
dimensions = ["pred_iou_thresh", "stability_score_thresh"]
base = { points_per_side = 4 }

[env]
budget = 3
"""


def test_make_env_from_toml(task_dir: Path):
    path = task_dir / "task.toml"
    path.write_text(GOOD_TOML)
    env = samstar_env.make_env_from_toml(path, mode="budget")
    assert isinstance(env, SamStarEnv)
    t = env.task
    assert t.name == "my-sample" and len(t.images) == 2 and t.images[0].pixel_size_nm == 0.8
    assert t.images[0].modality == "haadf" and t.prior.shape == "cube"
    assert env.reward_names == ("size_window", "shape_fidelity", "duplicate_free")
    assert env.space.names == ("pred_iou_thresh", "stability_score_thresh") and env.space.base.points_per_side == 4
    assert env.budget == 3 and Path(t.model) == (task_dir / "sam.pt").resolve()
    obs, info = env.reset(seed=0)
    assert info["image_names"] == ("frame0", "frame1")  # a batch: rewards averaged over both
    _, r, *_ = env.step(np.zeros(2, np.float32))
    assert env.reward_space.contains(r)
    assert make_env_from_toml(path, budget=9).budget == 9  # keyword overrides beat [env]


def test_toml_rewards_table_sets_preset_options_and_weights(task_dir: Path):
    path = task_dir / "task.toml"
    path.write_text(
        '[task]\nimages = "micrographs"\nmodel = "sam.pt"\nrewards = "auco"\n'
        "[prior]\ndiameter_range_nm = [2.0, 30.0]\n"
        '[rewards]\nweights = { coverage = 3.0 }\noptions.size_distribution = {}\n'
        'options.count_plausibility = { log_threshold = 0.05 }\n'
    )
    task, _ = task_from_toml(path)
    ref = rewards_preset("auco")
    assert task.rewards.names == ref.names
    opts = dict(zip(task.rewards.names, task.rewards.options, strict=True))
    assert opts["count_plausibility"] == {"log_threshold": 0.05} and opts["coverage"] == {"threshold": "triangle"}
    w = dict(zip(task.rewards.names, task.rewards.weights, strict=True))
    assert w["coverage"] == pytest.approx(3 / 8) and w["boundary_contrast"] == pytest.approx(1 / 8)
    # Without [task].rewards the generic preset is the base.
    path.write_text('[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [8.0, 15.0]\n[rewards]\noptions.size_window = { tolerance = 0.3 }\n')
    task, _ = task_from_toml(path)
    assert task.rewards.names == rewards_preset("generic").names
    assert dict(zip(task.rewards.names, task.rewards.options, strict=True))["size_window"] == {"tolerance": 0.3}


_BASE = '[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[task\n", "not valid TOML"),
        (_BASE + "[rewards]\nweight = {}\n", r"\[rewards\]: unknown key.*weight"),
        (_BASE + "[rewards]\noptions.latency = {}\n", r"\[rewards\]: .*latency.*does not hold"),
        (_BASE + "[rewards]\noptions.size_window = { tolerence = 0.1 }\n", r"\[rewards\]: .*no option.*tolerence"),
        (_BASE + '[rewards]\nweights = { size_window = "x" }\n', r"\[rewards\]: .*must be a number"),
        (_BASE + "[rewards]\noptions = 3\n", r"\[rewards\]\.options must be dict"),
        ('[task]\nimages = "micrographs"\nrewards = "graphene"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"valid presets"),
        ('[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"missing table \[task\]"),
        ('[task]\nimages = "micrographs"\n', r"missing table \[prior\]"),
        ('[task]\nmodel = "x"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"missing key \[task\]\.images"),
        ('[task]\nimages = "nowhere"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]\.images: folder .*nowhere"),
        ('[task]\nimages = 3\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]\.images must be str"),
        ('[task]\nimages = "micrographs"\ncolour = 1\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]: unknown key.*colour"),
        ('[task]\nimages = "micrographs"\npixel_size_nm = -1\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"pixel_size_nm must be positive"),
        ('[task]\nimages = "micrographs"\nmodel = "ckpt/missing.pth"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]\.model: checkpoint"),
        ('[task]\nimages = "micrographs"\nrewards = ["nope"]\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"nope"),
        ('[task]\nimages = "micrographs"\n[prior]\nshape = "cube"\n', r"\[prior\]: missing key 'diameter_range_nm'"),
        ('[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\nshape = "blob"\n', r"\[prior\]: .*shape"),
        ('[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n[space]\ndimensions = ["nope"]\n', r"\[space\]: .*nope"),
        ('[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n[env]\nbudget_ = 3\n', r"\[env\]: unknown key.*budget_"),
        ('[task]\nimages = "micrographs"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n[extra]\n', r"unknown table.*extra"),
        ('[task]\nimages = "micrographs"\ntile_shape = 32\nhalo = 64\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n',
         r"\[task\]\.tile_shape 32 is smaller than the halo 64"),
        ('[task]\nimages = "micrographs"\nhalo = 16\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]\.halo needs \[task\]\.tile_shape"),
        ('[task]\nimages = "micrographs"\ntile_shape = "big"\n[prior]\ndiameter_range_nm = [1.0, 2.0]\n', r"\[task\]\.tile_shape must be int"),
    ],
)
def test_toml_errors_name_file_and_key(task_dir: Path, text: str, match: str):
    path = task_dir / "bad.toml"
    path.write_text(text)
    with pytest.raises(TaskFileError, match=match) as exc:
        make_env_from_toml(path)
    assert str(path) in str(exc.value)


def test_toml_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nothing.toml"):
        make_env_from_toml(tmp_path / "nothing.toml")


def test_toml_tiles_reach_the_env_and_its_steps(task_dir: Path):
    path = task_dir / "task.toml"
    path.write_text(GOOD_TOML.replace('modality = "haadf"', 'modality = "haadf"\ntile_shape = 48\nhalo = 8'))
    task, _ = task_from_toml(path)
    assert (task.space.base.tile_shape, task.space.base.halo) == (48, 8)
    env = make_env_from_toml(path)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert (info["params"].tile_shape, info["params"].halo) == (48, 8)
    # A 96² image in 48-px tiles: 4 tiles, each decoded on its own.
    assert env.unwrapped.problem.engine.stats.proposal_misses == 4 * len(task.images)
    # Without a halo the quarter-tile default applies; the env option overrides the file.
    path.write_text(GOOD_TOML.replace('modality = "haadf"', 'modality = "haadf"\ntile_shape = 48'))
    assert task_from_toml(path)[0].space.base.halo == 12
    assert make_env_from_toml(path, tile_shape=0).unwrapped.space.base.tile_shape == 0
