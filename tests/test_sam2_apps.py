"""SAM 2 through the applications: tasks, the env's ``backbone`` option, task files, tune, segment, stream, cache warm.

The model is the small random SAM 2 of tests/engine/test_sam2.py, structured and saved in the
``samstar-sam2/1`` format so that commands can load it by path.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("sam2", reason="the optional `sam2` extra is not installed (pip install -e '.[sam2]')")

from samstar_env.cli import main  # noqa: E402
from samstar_env.data.synthetic import generate  # noqa: E402
from samstar_env.engine.image_input import to_sam_image  # noqa: E402
from samstar_env.engine.testing import structure_random_sam2  # noqa: E402
from samstar_env.errors import InputError  # noqa: E402
from samstar_env.models.sam2_models import TINY_SAM2_OVERRIDES, build_tiny_sam2, save_sam2_checkpoint  # noqa: E402
from samstar_env.params import SAM2_FIELDS, ParamSpace, Sam2AmgParams  # noqa: E402
from samstar_env.problem import TuningProblem  # noqa: E402
from samstar_env.task import adapt_to_backbone, make_task  # noqa: E402

SIZE = 96


@pytest.fixture(scope="module")
def sam2_file(tmp_path_factory):
    image = to_sam_image(generate("ito", seed=0, size=(SIZE, SIZE)))
    model = structure_random_sam2(build_tiny_sam2(seed=0), image)
    return save_sam2_checkpoint(model, tmp_path_factory.mktemp("sam2") / "tiny_sam2.pt", config="sam2.1_hiera_t",
                                overrides=TINY_SAM2_OVERRIDES)


def test_a_sam2_task_tunes_sam2s_parameters(sam2_file):
    task = make_task("ito", size=(SIZE, SIZE), n_test_images=0, model=str(sam2_file), backbone="sam2",
                     space=ParamSpace.subset(["pred_iou_thresh", "stability_score_thresh"], base=Sam2AmgParams(points_per_side=4)))
    assert task.space.names[-3:] == SAM2_FIELDS and task.space.backbone == "sam2"
    problem = TuningProblem(task)
    params = task.space.with_values({"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "use_m2m": True})
    ev = problem.evaluate(params)
    assert ev.rewards.shape == (len(task.rewards),) and np.isfinite(ev.rewards).all()
    assert isinstance(ev.params, Sam2AmgParams) and ev.params.use_m2m


def test_backbone_errors_name_the_model():
    with pytest.raises(InputError, match="needs a SAM 2 checkpoint"):
        make_task("ito", backbone="sam2")
    with pytest.raises(InputError, match="expected one of"):
        make_task("ito", backbone="sam3")
    with pytest.raises(InputError, match="needs a SAM 2 checkpoint"):
        make_task("ito", space=ParamSpace.subset(["mask_threshold"]))  # a SAM 2 space asks for a SAM 2 model
    task = make_task("ito", size=(SIZE, SIZE), n_test_images=0)
    with pytest.raises(InputError, match="is a SAM 1 model"):
        adapt_to_backbone(task.replace(space=ParamSpace.subset(["mask_threshold"])), "sam1")


def test_env_backbone_option_steps_and_is_deterministic(sam2_file):
    def rollout():
        env = gym.make("samstar/ITO-v4", model=str(sam2_file), backbone="sam2", size=(SIZE, SIZE),
                       space=ParamSpace.subset(["pred_iou_thresh", "stability_score_thresh"], base=Sam2AmgParams(points_per_side=4)))
        env.reset(seed=3)
        env.action_space.seed(5)
        out = []
        for _ in range(2):
            _, reward, _, _, info = env.step(env.action_space.sample())
            out.append((np.asarray(reward).tolist(), info["params"]))
        assert env.action_space.shape == (5,)
        env.close()
        return out

    env = gym.make("samstar/ITO-v4", model=str(sam2_file), backbone="sam2", size=(SIZE, SIZE))
    env.action_space.seed(0)
    assert env.action_space.shape == (ParamSpace.env_default().dim + 3,)
    env.close()
    first = rollout()
    assert first == rollout()


def test_tune_adapts_the_space_to_a_sam2_checkpoint(sam2_file, tmp_path):
    out = tmp_path / "run"
    assert main(["tune", "ito", "--model", str(sam2_file), "--size", str(SIZE), "--space", "pred_iou_thresh,stability_score_thresh",
                 "--budget", "4", "--agent", "random", "--out", str(out), "--no-progress", "--no-tensorboard"]) == 0
    best = json.loads((out / "best_params.json").read_text())
    params = best.get("params", best)
    assert set(SAM2_FIELDS) <= set(params)
    assert isinstance(Sam2AmgParams.from_dict(params), Sam2AmgParams)


def test_task_file_backbone(sam2_file, tmp_path):
    from samstar_env.task_file import task_from_toml

    folder = tmp_path / "imgs"
    folder.mkdir()
    import tifffile

    tifffile.imwrite(folder / "a.tif", (generate("ito", seed=1, size=(SIZE, SIZE)).image * 255).astype(np.uint8))
    toml = tmp_path / "task.toml"
    toml.write_text(f'[task]\nimages = "imgs"\nmodel = "{sam2_file}"\nbackbone = "sam2"\npixel_size_nm = 1.0\n'
                    '[prior]\ndiameter_range_nm = [5.0, 20.0]\n')
    task, _ = task_from_toml(toml)
    assert task.space.backbone == "sam2" and "use_m2m" in task.space.names


def test_segment_and_stream_use_sam2s_defaults(sam2_file, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    import tifffile

    tifffile.imwrite(frames / "f0.tif", (generate("ito", seed=2, size=(SIZE, SIZE)).image * 255).astype(np.uint8))
    params = tmp_path / "p.json"
    Sam2AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0).to_json(str(params))
    assert main(["segment", str(frames / "f0.tif"), "--model", str(sam2_file), "--pixel-size-nm", "1", "-o", str(tmp_path / "seg")]) == 0
    assert "SAM 2's defaults" in capsys.readouterr().err
    summary = json.loads((tmp_path / "seg" / "summary.json").read_text())
    assert summary["params"]["pred_iou_thresh"] == 0.8 and "use_m2m" in summary["params"]
    assert main(["segment", str(frames / "f0.tif"), "--model", str(sam2_file), "--params", str(params), "--pixel-size-nm", "1",
                 "-o", str(tmp_path / "seg2")]) == 0
    summary = json.loads((tmp_path / "seg2" / "summary.json").read_text())
    assert summary["images"][0]["count"] >= 1
    # A stream without --params starts from SAM 2's defaults too, and says so in its journal.
    assert main(["stream", str(frames), "--model", str(sam2_file), "--pixel-size-nm", "1", "--no-drift",
                 "--out", str(tmp_path / "stream"), "--max-frames", "1", "--poll-s", "0.05"]) == 0
    log = [json.loads(line) for line in (tmp_path / "stream" / "stream_log.jsonl").read_text().splitlines()]
    start = next(r for r in log if r["event"] == "start")
    assert start["params"]["pred_iou_thresh"] == 0.8 and start["params"]["use_m2m"] is False
    assert [r["status"] for r in log if r["event"] == "frame"] == ["done"]


def test_cache_warm_decodes_each_sam2_variant_once(sam2_file, tmp_path):
    from samstar_env.cache import plan_warm, warm
    from samstar_env.engine import MaskEngine
    from samstar_env.models import load_sam

    task = make_task("ito", size=(SIZE, SIZE), n_test_images=0, model=str(sam2_file), backbone="sam2")
    space = ParamSpace.subset(["use_m2m", "multimask_output", "mask_threshold"], base=Sam2AmgParams(points_per_side=4))
    plan = plan_warm(task.images, space)
    assert len(plan.jobs) == 4  # m2m x multimask; every mask threshold of the grid rides on each decode
    report = warm(task, space=space, cache_dir=tmp_path, progress=False, log=lambda _s: None)
    assert report.decoded == 4
    engine = MaskEngine(load_sam(sam2_file), cache_dir=tmp_path)
    for p in (space.sample(np.random.default_rng(i)) for i in range(6)):
        engine.generate(task.images[0], p)
    assert engine.stats.proposal_misses == 0
    from samstar_env.cache import _space_of

    assert _space_of(task, "all").names[-3:] == SAM2_FIELDS  # `cache warm --space all` on a SAM 2 task


def test_bench_suite_on_a_sam2_checkpoint_tunes_its_parameters(sam2_file, tmp_path, capsys):
    from samstar_env.benchmarks.runner import read_run, run_specs
    from samstar_env.benchmarks.suites import Suite

    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "sam2"\ntasks = ["ito"]\nagents = ["random"]\nseeds = [0]\nbudget = 3\nimage_size = [96, 96]\n'
        f'n_test_images = 1\nmodel = "{sam2_file}"\nspace = ["points_per_side", "pred_iou_thresh"]\n[grids]\npoints_per_side = [4]\n'
    )
    assert main(["bench", str(toml), "--out", str(tmp_path / "o")]) == 0
    assert "| ito | random |" in capsys.readouterr().out
    suite = Suite(name="sam2", tasks=("ito",), agents=("random",), seeds=(0,), budget=3, image_size=(96, 96),
                  n_test_images=1, model=str(sam2_file), space=("points_per_side", "pred_iou_thresh"),
                  grids={"points_per_side": (4,)})
    record = read_run(tmp_path / "o" / "runs" / f"{run_specs(suite)[0].run_id}.json")
    params = record["result"]["trials"][0]["params"]
    assert set(SAM2_FIELDS) <= set(params)


def test_a_policy_trained_on_a_sam2_model_chooses_sam2s_parameters(sam2_file, tmp_path):
    from samstar_env.policy.policy_file import load_policy
    from samstar_env.policy.pool import policy_pool
    from samstar_env.policy.train import PolicyTrainConfig, train_policy

    space = ParamSpace.subset(["pred_iou_thresh", "stability_score_thresh"], base=Sam2AmgParams(points_per_side=4))
    pool = policy_pool("ito", n_train=2, n_test=1, size=SIZE, space=space).replace(model=str(sam2_file))
    out = tmp_path / "policy"
    train_policy(PolicyTrainConfig(task="ito", out=str(out), steps=32, checkpoint_every=32,
                                   algo_kwargs={"n_steps": 16, "batch_size": 16, "n_epochs": 1}),
                 pool=pool, warm_pool=False, log=lambda _l: None)
    policy = load_policy(out)
    assert policy.space.names[-3:] == SAM2_FIELDS
    assert isinstance(policy.propose(pool.test_images[0]).params, Sam2AmgParams)
