"""The benchmark harness end to end: records, resume, summary, report, and Dask equals local."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samstar_env.benchmarks.runner import pending_runs, read_run, run_specs, run_suite
from samstar_env.benchmarks.suites import Suite, load_suite, suite_from_dict
from samstar_env.benchmarks.summary import summarize
from samstar_env.models import save_checkpoint
from tests.conftest import TEST_SAM_CONFIG


@pytest.fixture(scope="module")
def checkpoint(random_sam, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "random_tiny.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, path)
    return str(path)


@pytest.fixture(scope="module")
def suite(checkpoint):
    # The mini suite, 2 tasks x 2 agents x 2 seeds, kept cheap: one 96-px image, a single
    # 8x8 point grid, threshold dimensions only.
    return Suite(
        name="t",
        tasks=("perovskite", "ito"),
        agents=("nsga2", "random"),
        seeds=(0, 1),
        budget=4,
        image_size=(96, 96),
        n_images=1,
        n_test_images=1,
        model=checkpoint,
        space=("points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"),
        grids={"points_per_side": (8,)},
        agent_options={"nsga2": {"pop_size": 4}},
    )


@pytest.fixture(scope="module")
def local_run(suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    summary = run_suite(suite, out, progress=lines.append)
    return out, summary, lines


def _rewards(record):
    return np.array([t["rewards"] for t in record["result"]["trials"]])


def test_records_follow_the_schema(local_run, suite):
    out, summary, lines = local_run
    assert len(lines) == 8
    for spec in run_specs(suite):
        rec = read_run(out / "runs" / f"{spec.run_id}.json")
        assert rec is not None
        assert rec["task"] == spec.task and rec["budget"] == 4
        assert len(rec["result"]["trials"]) == 4
        curve = rec["hypervolume_curve"]
        assert len(curve) == 4 and np.all(np.diff(curve) >= -1e-12)
        assert rec["final_hypervolume"] == pytest.approx(curve[-1])
        assert set(rec["operating_point"]) == {"rule", "params", "rewards"}
        assert rec["test_gt"] is not None and 0.0 <= rec["test_gt"]["f1"] <= 1.0
        assert (out / "overlays" / f"{spec.run_id}.png").is_file()
    assert summary["n_runs"] == 8
    assert {(r["task"], r["agent"]) for r in summary["table"]} == {
        (t, a) for t in ("perovskite", "ito") for a in ("nsga2", "random")
    }
    assert json.loads((out / "summary.json").read_text())["schema"] == "samstar-bench-summary/2"


def test_finished_runs_are_skipped_and_partial_ones_rerun(local_run, suite):
    out, _, _ = local_run
    victim = out / "runs" / f"{run_specs(suite)[1].run_id}.json"
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    victim.write_text(victim.read_text()[:100])  # a run killed while writing
    done, todo = pending_runs(suite, out)
    assert [s.run_id for s in todo] == [victim.stem] and len(done) == 7
    lines: list[str] = []
    run_suite(suite, out, progress=lines.append)
    assert lines[0].startswith("7 finished run(s)") and len(lines) == 2
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert all(after[k] == before[k] for k in before if k != victim.name)
    assert read_run(victim) is not None


def test_records_of_other_weights_or_reward_definitions_rerun(local_run, suite, tmp_path):
    import json
    import shutil

    out = tmp_path / "bench"
    shutil.copytree(local_run[0] / "runs", out / "runs")  # the shared records stay as they are
    runs = sorted((out / "runs").glob("*.json"))
    stale = json.loads(runs[0].read_text())
    stale["problem"]["rewards_version"] -= 1  # made before the rewards changed
    runs[0].write_text(json.dumps(stale))
    other = json.loads(runs[1].read_text())
    other["problem"]["model_sha256"] = "0" * 64  # made on other weights under the same name
    runs[1].write_text(json.dumps(other))
    del_problem = json.loads(runs[2].read_text())
    del del_problem["problem"]  # a record from before records kept their problem
    runs[2].write_text(json.dumps(del_problem))
    _, todo = pending_runs(suite, out)
    assert sorted(s.run_id for s in todo) == sorted(p.stem for p in runs[:3])


def test_same_seed_same_record(local_run, suite, tmp_path):
    out, _, _ = local_run
    spec = run_specs(suite)[0]
    solo = suite.override(agents=(spec.agent,), seeds=(spec.seed,))
    run_suite(solo, tmp_path, progress=None)
    a = read_run(out / "runs" / f"{spec.run_id}.json")
    b = read_run(tmp_path / "runs" / f"{spec.run_id}.json")
    np.testing.assert_array_equal(_rewards(a), _rewards(b))
    assert a["operating_point"] == b["operating_point"]


def test_summary_ranks_and_standard_error():
    recs = [
        {"task": "t", "agent": "a", "final_hypervolume": 0.5, "wall_s": 1.0},
        {"task": "t", "agent": "a", "final_hypervolume": 0.7, "wall_s": 1.0},
        {"task": "t", "agent": "b", "final_hypervolume": 0.2, "wall_s": 2.0},
    ]
    s = summarize(recs)
    row = next(r for r in s["table"] if r["agent"] == "a")
    assert row["final_hypervolume_mean"] == pytest.approx(0.6)
    assert row["final_hypervolume_se"] == pytest.approx(np.std([0.5, 0.7], ddof=1) / np.sqrt(2))
    assert s["ranks"]["t"] == {"a": 1.0, "b": 2.0}
    assert row["test_f1_n"] == 0


def test_report_is_a_static_page(local_run, tmp_path):
    from samstar_env.benchmarks.report import write_report

    out, _, _ = local_run
    html = write_report(out, tmp_path / "report.html").read_text()
    assert "perovskite" in html and "ito" in html and html.count("data:image/png;base64,") >= 3
    assert "<script" not in html
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_dask_local_cluster_equals_local(local_run, suite, tmp_path):
    distributed = pytest.importorskip("distributed")
    from samstar_env.benchmarks.executors import DaskExecutor, LocalExecutor, dask_evaluator

    out, _, _ = local_run
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            run_suite(suite, tmp_path / "runs-dask", executor=DaskExecutor(client=client), progress=None)
            # Population-level distribution: runs here, evaluations on the workers.
            one = suite.override(agents=("nsga2",), seeds=(0,))
            run_suite(one, tmp_path / "evals-dask", executor=LocalExecutor(evaluator=dask_evaluator(client)), progress=None)
    finally:
        cluster.close()
    for spec in run_specs(suite):
        a = read_run(out / "runs" / f"{spec.run_id}.json")
        b = read_run(tmp_path / "runs-dask" / "runs" / f"{spec.run_id}.json")
        np.testing.assert_array_equal(_rewards(a), _rewards(b))
    c = read_run(tmp_path / "evals-dask" / "runs" / "perovskite__nsga2__s0.json")
    np.testing.assert_array_equal(_rewards(read_run(out / "runs" / "perovskite__nsga2__s0.json")), _rewards(c))


def test_suites_load_and_reject_bad_input(tmp_path):
    quick = load_suite("quick")
    assert quick.budget <= 30 and len(quick.seeds) == 2
    assert len(load_suite("default").runs()) == 3 * (4 + 4) * 10  # 4 agents + watershed, gt-grid, vanilla, sam-defaults
    with pytest.raises(ValueError, match="unknown suite key"):
        suite_from_dict({"name": "x", "tasks": ["ito"], "agents": ["random"], "seeds": [0], "budget": 1, "budgett": 2})
    with pytest.raises(FileNotFoundError, match="neither a shipped suite"):
        load_suite(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_suite(bad)
    with pytest.raises(ValueError, match="not grid dimensions"):
        Suite(name="x", tasks=("ito",), agents=("random",), seeds=(0,), budget=1, grids={"pred_iou_thresh": (0.5,)}).param_space()
    with pytest.raises(ValueError, match="unknown space dimension"):
        Suite(name="x", tasks=("ito",), agents=("random",), seeds=(0,), budget=1, space=("nope",)).param_space()


def test_bench_cli_runs_a_suite_file(checkpoint, tmp_path, capsys):
    from samstar_env.cli import main

    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "cli"\ntasks = ["ito"]\nagents = ["random"]\nseeds = [0]\nbudget = 2\nimage_size = [96, 96]\n'
        f'n_test_images = 1\nmodel = "{checkpoint}"\nspace = ["points_per_side", "pred_iou_thresh"]\n[grids]\npoints_per_side = [8]\n'
    )
    assert main(["bench", str(toml), "--seeds", "1", "--out", str(tmp_path / "o")]) == 0
    assert "| ito | random |" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "o"), "-o", str(tmp_path / "r.html"), "--no-tensorboard"]) == 0
    assert (tmp_path / "r.html").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["bench", str(toml), "--seeds", "x", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "expected a count" in capsys.readouterr().err


def test_reference_front_round_trip_and_problem_check(suite, tmp_path):
    from samstar_env.benchmarks.reference import (
        load_reference_front,
        reference_front_path,
        write_reference_front,
    )

    path = reference_front_path(suite, "perovskite", root=tmp_path)
    front = np.array([[0.9, 0.1], [0.2, 0.8]])
    write_reference_front(path, suite=suite, reward_names=("a", "b"), front=front, how={"agents": ["random"]})
    # Objectives are returned in the caller's order.
    got = load_reference_front(suite, "perovskite", reward_names=("b", "a"), root=tmp_path)
    np.testing.assert_array_equal(got, front[:, ::-1])
    assert load_reference_front(suite, "perovskite", reward_names=("a", "c"), root=tmp_path) is None
    other = suite.override(image_size=(128, 128))
    write_reference_front(reference_front_path(other, "ito", root=tmp_path), suite=suite, reward_names=("a", "b"), front=front, how={})
    assert load_reference_front(other, "ito", reward_names=("a", "b"), root=tmp_path) is None
    assert load_reference_front(suite, "auco", reward_names=("a", "b"), root=tmp_path) is None


def test_reference_fronts_are_keyed_on_the_model_weights(tmp_path):
    import json

    from samstar_env.benchmarks.reference import (
        load_reference_front,
        model_sha256,
        problem_of,
        reference_front_path,
    )
    from samstar_env.benchmarks.suites import load_suite
    from samstar_env.models.checkpoint import file_sha256
    from samstar_env.rewards import REWARDS_VERSION, preset

    quick = load_suite("quick")
    # The shipped fronts of both suites were made on the shipped samstar-tiny weights with each task's
    # current preset, and load as such (a retrained model or a changed preset must come with new fronts).
    for suite in (quick, load_suite("default")):
        for task in suite.tasks:
            names = preset(task).names
            front = load_reference_front(suite, task, reward_names=names)
            data = json.loads(reference_front_path(suite, task).read_text())
            assert front is not None, (suite.name, task)
            assert front.shape == (len(data["front"]), len(names))
    assert problem_of(quick)["model_sha256"] == model_sha256("samstar-tiny")
    # Same model name, other weights: another problem, so the front is not used.
    data = json.loads(reference_front_path(quick, "ito").read_text())
    data["problem"]["model_sha256"] = "0" * 64
    path = reference_front_path(quick, "ito", root=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    assert load_reference_front(quick, "ito", reward_names=tuple(data["reward_names"]), root=tmp_path) is None
    # Same rewards by name, made under other definitions: not used either.
    data = json.loads(reference_front_path(quick, "ito").read_text())
    assert data["problem"]["rewards_version"] == REWARDS_VERSION
    data["problem"]["rewards_version"] = REWARDS_VERSION - 1
    path.write_text(json.dumps(data))
    assert load_reference_front(quick, "ito", reward_names=tuple(data["reward_names"]), root=tmp_path) is None
    # A checkpoint passed by path is keyed on its bytes.
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"weights")
    assert model_sha256(str(ckpt)) == file_sha256(ckpt)
    assert model_sha256(str(tmp_path / "missing.pt")) is None


def test_suites_tile_as_told_or_automatically(suite):
    from samstar_env.benchmarks.runner import RunSpec, build_problem

    def base(**kw):
        return build_problem(RunSpec(suite.override(**kw), "ito", "random", 0)).task.space.base

    # 96 px is not more than twice the test model's 64-px input: untiled unless told.
    assert base().tile_shape == 0 and "tile_shape" not in suite.to_dict()
    assert (base(image_size=(160, 160)).tile_shape, base(image_size=(160, 160)).halo) == (32, 8)  # automatic
    assert (base(tile_shape=48, halo=4).tile_shape, base(tile_shape=48, halo=4).halo) == (48, 4)
    assert base(image_size=(160, 160), tile_shape=0).tile_shape == 0
    assert suite.override(tile_shape=48).to_dict()["tile_shape"] == 48
    tuned = suite.override(space=("points_per_side", "tile_shape", "halo")).param_space()
    assert tuned.names[1:] == ("tile_shape", "halo")
    with pytest.raises(Exception, match="tile_shape 16 is smaller than the halo 40"):
        base(tile_shape=16, halo=40)


def test_quick_suite_tells_nsga2_from_random():
    # Quick suite version 1 gave NSGA-II a budget equal to its population, so NSGA-II never left
    # its initial sample and evaluated exactly what random search did. Now it has generations to
    # spend: after the first population the two tuners evaluate different parameters. The real
    # suite on the shipped model, one task and seed (128 px: two cheap decodes).
    from samstar_env.benchmarks.runner import RunSpec, execute_run

    quick = load_suite("quick")
    pop = quick.agent_options["nsga2"]["pop_size"]
    assert quick.budget >= 3 * pop
    records = {a: execute_run(RunSpec(quick, "perovskite", a, 0)) for a in ("nsga2", "random")}
    params = {a: [json.dumps(t["params"], sort_keys=True) for t in r["result"]["trials"]] for a, r in records.items()}
    assert len(params["nsga2"]) == len(params["random"]) == quick.budget
    assert params["nsga2"][pop:] != params["random"][pop:]
    assert set(params["nsga2"][pop:]) - set(params["random"])  # offspring random search never drew
