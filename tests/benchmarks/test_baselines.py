"""The bench baselines: the watershed segmenter on analytic images, watershed and gt-grid run records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from samstar_env.benchmarks.baselines import BASELINES, GT_GRID_POINTS, check_agent_names
from samstar_env.benchmarks.runner import RunSpec, execute_run, read_run, run_suite, write_json_atomic
from samstar_env.benchmarks.suites import Suite, load_suite, suite_from_dict
from samstar_env.benchmarks.summary import summarize
from samstar_env.benchmarks.watershed import (
    WatershedParams,
    WatershedProblem,
    WatershedSpace,
    watershed_segment,
)
from samstar_env.data import Micrograph
from samstar_env.errors import InputError
from samstar_env.metrics.ground_truth import gt_metrics
from samstar_env.models import save_checkpoint
from tests.conftest import TEST_SAM_CONFIG


def _disks(centres, radius, *, size=96, dark=False):
    """A noiseless micrograph of disks and its label image (bright particles unless ``dark``)."""
    img = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.int32)
    for i, c in enumerate(centres, start=1):
        rr, cc = disk(c, radius, shape=(size, size))
        img[rr, cc] = 1.0
        labels[rr, cc] = i
    img = 0.1 + 0.8 * img
    return Micrograph(1.0 - img if dark else img, modality="bf-tem" if dark else "haadf", labels=labels)


@pytest.mark.parametrize("dark", [False, True])
def test_watershed_finds_separated_disks(dark):
    m = _disks([(20, 20), (20, 70), (70, 30), (68, 72)], 9, dark=dark)
    masks = watershed_segment(m, WatershedParams(sigma_px=1.0, min_distance_px=5))
    g = gt_metrics(masks, m)
    assert len(masks) == 4
    assert g["f1"] == 1.0 and g["mean_seg_accuracy"] > 0.8


def test_watershed_splits_two_touching_disks():
    # Centres 22 px apart, radius 12: the disks overlap by 2 px, one connected foreground blob.
    m = _disks([(48, 37), (48, 59)], 12)
    from scipy import ndimage as ndi

    assert ndi.label(m.labels > 0)[1] == 1
    masks = watershed_segment(m, WatershedParams(min_distance_px=6))
    assert len(masks) == 2 and gt_metrics(masks, m)["f1"] == 1.0
    # Markers further apart than the centres: the watershed cannot split them.
    assert len(watershed_segment(m, WatershedParams(min_distance_px=30))) == 1


def test_watershed_params_validate_and_round_trip():
    p = WatershedParams(sigma_px=2, threshold="li", threshold_scale=0.8, min_distance_px=np.int64(4), min_area_px=0)
    assert WatershedParams.from_dict(p.to_dict()) == p and isinstance(p.sigma_px, float)
    for bad in ({"sigma_px": -1.0}, {"threshold": "yen"}, {"threshold_scale": 0.0}, {"min_distance_px": 0},
                {"min_area_px": 2.5}, {"sigma_px": float("nan")}):
        with pytest.raises(InputError, match=f"WatershedParams.{next(iter(bad))}: expected"):
            WatershedParams(**bad)
    with pytest.raises(InputError, match="unknown key"):
        WatershedParams.from_dict({"sigma": 1.0})
    space = WatershedSpace()
    for a in (-np.ones(space.dim), np.ones(space.dim), np.zeros(space.dim)):
        assert np.allclose(space.encode(space.decode(space.encode(space.decode(a)))), space.encode(space.decode(a)))
    with pytest.raises(InputError, match="expected an action of 5 values"):
        space.decode(np.zeros(3))


# -- bench runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(random_sam, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "random_tiny.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, path)
    return str(path)


@pytest.fixture(scope="module")
def suite(checkpoint):
    # As tests/benchmarks/test_runner.py: one 96-px tune image and one test image, one 8x8 point grid
    # (one decode per image; the rest replays), threshold dimensions only; budget 8 in populations of 4.
    return Suite(
        name="t",
        tasks=("perovskite",),
        agents=("nsga2",),
        baselines=("watershed", "gt-grid"),
        seeds=(0,),
        budget=8,
        image_size=(96, 96),
        n_images=1,
        n_test_images=1,
        model=checkpoint,
        space=("points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"),
        grids={"points_per_side": (8,)},
        agent_options={"nsga2": {"pop_size": 4}},
    )


@pytest.fixture(scope="module")
def bench(suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    summary = run_suite(suite, out, progress=lines.append)
    records = {a: read_run(out / "runs" / f"perovskite__{a}__s0.json") for a in ("nsga2", "watershed", "gt-grid")}
    return out, summary, records, lines


def _params_and_rewards(record):
    return [(t["params"], t["rewards"]) for t in record["result"]["trials"]]


def test_watershed_record_has_the_run_schema(bench, suite):
    out, _, records, _ = bench
    ws, ref = records["watershed"], records["nsga2"]
    assert ws is not None and ref is not None
    assert set(ws) == set(ref)
    assert (ws["uses_labels"], ws["segmenter"]) == (False, "watershed")
    assert (ref["uses_labels"], ref["segmenter"]) == (False, "sam")
    assert ws["budget"] == 8 and len(ws["result"]["trials"]) == 8 and ws["result"]["agent"] == "watershed"
    assert ws["reward_names"] == ref["reward_names"]  # the task's own reward suite
    for t in ws["result"]["trials"]:
        WatershedParams.from_dict(t["params"])  # every trial is a watershed configuration
        assert len(t["rewards"]) == len(ws["reward_names"]) and all(0.0 <= r <= 1.0 for r in t["rewards"])
    # The SAM runs' label-free default rule (balanced: equal weights over the front).
    assert ws["operating_point"]["rule"] == ref["operating_point"]["rule"] == "priority:balanced"
    assert ws["operating_point"]["params"] in [t["params"] for t in ws["result"]["trials"]]
    assert ws["test_gt"] is not None and 0.0 <= ws["test_gt"]["f1"] <= 1.0
    curve = ws["hypervolume_curve"]
    assert len(curve) == 8 and np.all(np.diff(curve) >= -1e-12) and ws["final_hypervolume"] == pytest.approx(curve[-1])
    assert (out / "overlays" / "perovskite__watershed__s0.png").is_file()


def test_watershed_run_is_deterministic_per_seed(bench, suite):
    _, _, records, _ = bench
    again = execute_run(RunSpec(suite, "perovskite", "watershed", 0))
    assert _params_and_rewards(again) == _params_and_rewards(records["watershed"])
    assert again["operating_point"] == records["watershed"]["operating_point"]
    other = execute_run(RunSpec(suite, "perovskite", "watershed", 1))
    assert _params_and_rewards(other) != _params_and_rewards(again)


def test_watershed_problem_scores_like_the_task(suite):
    from samstar_env.task import make_task

    task = make_task("ito", n_images=1, n_test_images=0, size=(96, 96))
    ev = WatershedProblem(task, gt_metrics=True).evaluate(WatershedParams())
    assert ev.reward_names == tuple(task.rewards.names) and ev.rewards.dtype == np.float32
    assert ev.gt is not None and "mean_seg_accuracy" in ev.gt
    with pytest.raises(TypeError, match="WatershedParams"):
        WatershedProblem(task).evaluate(suite.param_space().base)
    with pytest.raises(InputError, match="latency"):
        WatershedProblem(task.replace(rewards=type(task.rewards)([*task.rewards.names, "latency"])))


def test_gt_grid_record_is_a_flagged_oracle(bench, suite):
    _, _, records, _ = bench
    gg, ref = records["gt-grid"], records["nsga2"]
    assert gg is not None and set(gg) == set(ref)
    assert (gg["uses_labels"], gg["segmenter"]) == (True, "sam")
    trials = gg["result"]["trials"]
    assert len(trials) == GT_GRID_POINTS == 195 and gg["budget"] == 195 and len(gg["hypervolume_curve"]) == 195
    ious = sorted({round(t["params"]["pred_iou_thresh"], 6) for t in trials})
    stabs = sorted({round(t["params"]["stability_score_thresh"], 6) for t in trials})
    assert (len(ious), len(stabs)) == (13, 15)
    assert ious[0] == pytest.approx(0.6) and ious[-1] == pytest.approx(0.9) and stabs[-1] == pytest.approx(0.95)
    msa = [t["gt"]["mean_seg_accuracy"] for t in trials]
    best = trials[int(np.argmax(msa))]
    assert gg["operating_point"]["rule"] == "max_tune_gt:mean_seg_accuracy"
    assert gg["operating_point"]["params"] == best["params"] and gg["operating_point"]["rewards"] == best["rewards"]
    assert gg["test_gt"] is not None


def test_gt_grid_picks_the_best_tune_msa(suite):
    # The random model keeps no mask inside micro-sam's ranges (so every mSA above is 0), and nor does
    # samstar-tiny, whose predicted IoUs stay below 0.6: its own ranges moved down give a grid whose
    # points differ in mSA. 128 px, one 8x8 point grid: one decode, then 13 x 5 replays.
    tiny = suite.override(model="samstar-tiny", image_size=(128, 128),
                          agent_options={"gt-grid": {"iou_range": [0.0, 0.3], "stability_range": [0.6, 0.7]}})
    rec = execute_run(RunSpec(tiny, "perovskite", "gt-grid", 0))
    trials = rec["result"]["trials"]
    msa = np.array([t["gt"]["mean_seg_accuracy"] for t in trials])
    assert len(trials) == rec["budget"] == 13 * 5 and len(np.unique(msa)) > 5
    best = trials[int(np.argmax(msa))]
    assert rec["operating_point"]["params"] == best["params"] and msa.max() > 0
    assert rec["uses_labels"] is True and rec["test_gt"]["n_gt"] > 0
    with pytest.raises(InputError, match=r"stability_range \[0.3, 0.7\]: expected low < high within"):
        execute_run(RunSpec(tiny.override(agent_options={"gt-grid": {"stability_range": [0.3, 0.7]}}), "perovskite", "gt-grid", 0))


def test_summary_of_mixed_records(bench, tmp_path):
    out, summary, records, lines = bench
    assert len(lines) == 3
    assert {row["agent"] for row in summary["table"]} == {"nsga2", "watershed", "gt-grid"}
    # summarize() also works on the records read back from disk, outside run_suite.
    again = summarize([records[a] for a in ("nsga2", "watershed", "gt-grid")])
    assert set(again["ranks"]["perovskite"]) == {"nsga2", "watershed", "gt-grid"}
    # Records round-trip through JSON unchanged.
    write_json_atomic(tmp_path / "r.json", records["gt-grid"])
    assert read_run(tmp_path / "r.json") == records["gt-grid"]


def test_suites_name_baselines_and_reject_unknown_agents(suite):
    default = load_suite("default")
    assert default.agents == ("nsga2", "random", "grid", "optuna") and default.baselines == ("watershed", "gt-grid", "vanilla", "sam-defaults")
    assert default.version == 3 and len(default.runs()) == 3 * 8 * 10
    assert "baselines" not in load_suite("quick").to_dict()  # suites without baselines keep their form
    assert suite_from_dict(suite.to_dict(), source="x") == suite
    assert suite.runs()[-2:] == [("perovskite", "watershed", 0), ("perovskite", "gt-grid", 0)]
    with pytest.raises(InputError, match=r"unknown agent\(s\) \['nsga'\]; expected agents \[.*'nsga2'.*\] or baselines \['watershed', 'gt-grid', 'vanilla', 'sam-defaults'\]"):
        suite.override(agents=("nsga",))
    with pytest.raises(InputError, match="listed more than once"):
        suite.override(agents=("watershed",))
    check_agent_names(list(BASELINES), source="x")
    with pytest.raises(InputError, match="gt-grid needs the dimension"):
        execute_run(RunSpec(suite.override(space=("points_per_side", "box_nms_thresh")), "perovskite", "gt-grid", 0))
    with pytest.raises(InputError, match=r"agent_options for gt-grid \['step'\]"):
        execute_run(RunSpec(suite.override(agent_options={"gt-grid": {"step": 0.1}}), "perovskite", "gt-grid", 0))


def test_bench_cli_runs_baselines_by_name(suite, tmp_path, capsys):
    from samstar_env.cli import main

    toml = tmp_path / "s.toml"
    d = suite.to_dict()
    toml.write_text(
        f'name = "cli"\ntasks = ["ito"]\nagents = ["nsga2"]\nseeds = [0]\nbudget = 4\nimage_size = [64, 64]\n'
        f'n_test_images = 1\nmodel = "{d["model"]}"\nspace = ["points_per_side", "pred_iou_thresh"]\n'
        '[grids]\npoints_per_side = [8]\n[agent_options.nsga2]\npop_size = 4\n'
    )
    assert main(["bench", str(toml), "--agents", "watershed,nsga2", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o" / "runs").glob("*.json")) == ["ito__nsga2__s0.json", "ito__watershed__s0.json"]
    capsys.readouterr()
    assert main(["bench", str(toml), "--agents", "watershed,nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown agent(s) ['nope']" in capsys.readouterr().err


def test_fixed_point_baselines_score_one_parameter_set(suite, checkpoint, tmp_path):
    from samstar_env.models.registry import register_model
    from samstar_env.params import AmgParams

    # A registered model with its own operating point: vanilla runs that point, sam-defaults SAM's.
    point = AmgParams(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.5)
    # (A copy: the registry also knows a model by its path, and the suite's checkpoint stays unregistered.)
    registered = tmp_path / "registered.pt"
    registered.write_bytes(Path(checkpoint).read_bytes())
    register_model("test-fixed-point", registered, operating_point=point.to_dict())
    fixed = suite.override(model="test-fixed-point", agents=("vanilla",), baselines=("sam-defaults",), seeds=(0, 1))
    out = tmp_path / "fixed"
    summary = run_suite(fixed, out, progress=None)
    recs = {(a, s): read_run(out / "runs" / f"perovskite__{a}__s{s}.json") for a in ("vanilla", "sam-defaults") for s in (0, 1)}
    van, sam = recs[("vanilla", 0)], recs[("sam-defaults", 0)]
    assert van is not None and sam is not None
    assert AmgParams.from_dict(van["operating_point"]["params"]) == point
    assert AmgParams.from_dict(sam["operating_point"]["params"]) == AmgParams()
    assert (van["operating_point"]["rule"], sam["operating_point"]["rule"]) == ("fixed:vanilla", "fixed:sam-defaults")
    assert "test-fixed-point's recommended operating point" in van["result"]["metadata"]["params_source"]
    assert sam["result"]["metadata"]["params_source"] == "SAM's defaults"
    for rec in (van, sam):
        assert rec["budget"] == 1 and len(rec["result"]["trials"]) == 1 and len(rec["hypervolume_curve"]) == 1
        assert (rec["uses_labels"], rec["segmenter"]) == (False, "sam") and rec["test_gt"] is not None
        assert rec["operating_point"]["rewards"] == rec["result"]["trials"][0]["rewards"]
    # The two points differ (SAM's pred_iou 0.88 keeps fewer of the random model's masks), and a
    # fixed point does not depend on the seed.
    assert van["result"]["trials"][0]["n_masks"] != sam["result"]["trials"][0]["n_masks"]
    for a in ("vanilla", "sam-defaults"):
        assert _params_and_rewards(recs[(a, 0)]) == _params_and_rewards(recs[(a, 1)])
    assert {row["agent"] for row in summary["table"]} == {"vanilla", "sam-defaults"}
    # A tiled suite's tiles are kept: how a large image is cut is the suite's choice, not the model's.
    from samstar_env.benchmarks.baselines import fixed_params

    tiled, _ = fixed_params("vanilla", model="test-fixed-point", base=AmgParams(tile_shape=256, halo=32))
    assert (tiled.tile_shape, tiled.halo, tiled.pred_iou_thresh) == (256, 32, 0.0)
    with pytest.raises(InputError, match="not a fixed-point baseline"):
        fixed_params("nsga2", model="test-fixed-point")
    # An unregistered checkpoint has no operating point: vanilla falls back to SAM's defaults.
    rec = execute_run(RunSpec(suite, "perovskite", "vanilla", 0))
    assert AmgParams.from_dict(rec["operating_point"]["params"]) == AmgParams()
    assert rec["result"]["metadata"]["params_source"] == "SAM's defaults"
