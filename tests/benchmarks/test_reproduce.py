"""`samstar reproduce` end to end on a tiny model: the table, the figures, the JSON and determinism.

The model is the session's random SAM made to give localized masks (``structure_random_sam``), saved as
a checkpoint so the command loads it by path as a user would; its masks vary with the thresholds, so
mask counts and ground-truth metrics are not all zero.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from samstar_env.benchmarks.reproduce import (
    AUCO_OBJECTIVES,
    SCHEMA,
    ReproduceConfig,
    experiment_ids,
    reproduce,
)
from samstar_env.benchmarks.reproduce_table import PAPER, Point
from samstar_env.benchmarks.reproduce_table import rows_a as _rows_a
from samstar_env.benchmarks.reproduce_table import rows_b as _rows_b
from samstar_env.benchmarks.reproduce_table import rows_c as _rows_c
from samstar_env.params import AmgParams
from tests.conftest import TEST_SAM_CONFIG
from tests.engine.conftest import _blob_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZE = 96


@pytest.fixture(scope="module")
def checkpoint(random_sam, tmp_path_factory):
    from samstar_env.engine.testing import structure_random_sam
    from samstar_env.models import save_checkpoint

    path = tmp_path_factory.mktemp("model") / "structured_tiny.pt"
    save_checkpoint(structure_random_sam(random_sam, _blob_image()), TEST_SAM_CONFIG, path)
    return str(path)


def _config(checkpoint, out, **changes):
    # Two seeds and two test images: every table entry is a mean ± SE over (seed, image) samples.
    kw = dict(out=out, model=checkpoint, budget=8, pop_size=4, seeds=(0, 1), images=1, test_images=2, size=SIZE, device="cpu")
    return ReproduceConfig(**{**kw, **changes})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The 64-px test model decodes 64 prompts at a time: too little work to share between threads.
    # Measured on the loaded 2-core CI machine: the module's three 32x32-grid runs take 23 s with 2
    # threads and 5 s with 1. Restored afterwards for the other test modules.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    lines: list[str] = []
    report = reproduce(_config(checkpoint, out), progress=lines.append)
    return out, report, lines


def _strip_wall(obj):
    if isinstance(obj, dict):
        return {k: _strip_wall(v) for k, v in obj.items() if k != "wall_s"}
    if isinstance(obj, list):
        return [_strip_wall(v) for v in obj]
    return obj


def test_table_has_all_three_experiments_paper_and_samstar(run):
    _, report, lines = run
    table = report.format_table()
    header = next(line for line in table.splitlines() if line.startswith("exp"))
    assert header.split() == ["exp", "quantity", "paper", "samstar", "(mean", "±", "SE)", "verdict"]
    for exp in ("(a)", "(b)", "(c)"):
        assert sum(line.startswith(exp) for line in table.splitlines()) >= 3
    for paper_value in ("349", "415", "+18.9 %", "-70.0 %", "117", "22", "11", "117 > 22 > 11", "antagonistic (< 0)"):
        assert paper_value in table
    # Changes are numbers from both baselines, never "n/a" (absolute when a baseline keeps nothing).
    for r in report.rows:
        if "change" in r.quantity:
            assert r.samstar != "n/a" and "±" in r.samstar, r
    assert any("vanilla -> tuned" in r.quantity for r in report.rows if r.experiment == "a")
    assert any("SAM defaults -> tuned" in r.quantity for r in report.rows if r.experiment == "b")
    assert "held-out 'test'" in table and "'tune'" in table
    # Every row that does not agree says why, right under it; named general causes are explained.
    out_lines = table.splitlines()
    for r in report.rows:
        assert r.verdict in ("agrees", "same direction", "differs", "no paper number")
        if r.verdict != "agrees":
            assert r.why or r.causes
            i = next(k for k, line in enumerate(out_lines) if line.startswith(f"({r.experiment})") and r.quantity in line)
            assert out_lines[i + 1].lstrip().startswith("why:")
        for key in r.causes:
            assert key in report.causes and f"  {key}  " in table
    # The tiny random model is no released SAM and this budget is tiny: both are said plainly.
    assert "budget" in report.causes and "8 NSGA-II evaluations" in report.causes["budget"]
    assert "91-636 M parameters" in report.causes["model"]
    assert [line.split(":")[0] for line in lines if "done" in line] == ["(a) perovskite", "(b) ito", "(c) auco"]


def test_figures_are_valid_pngs(run):
    import matplotlib.image as mpimg

    out, report, _ = run
    assert set(report.figures) == {"perovskite_default_vs_tuned", "ito_default_vs_tuned", "auco_pareto_front", "auco_operating_points"}
    widths = {}
    for key, name in report.figures.items():
        path = out / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        img = mpimg.imread(path)
        assert img.ndim == 3 and min(img.shape[:2]) > 50 and img.std() > 0
        widths[key] = img.shape[1]
    # Overlays put the points side by side: SAM defaults, vanilla and tuned for (a); three for (c).
    assert widths["perovskite_default_vs_tuned"] >= 3 * SIZE and widths["auco_operating_points"] >= 3 * SIZE


def test_json_schema_and_numbers_match_recomputed_ground_truth(run, checkpoint):
    from samstar_env.agents import TuningResult
    from samstar_env.agents.operating_points import DEFAULT_RULE, choose
    from samstar_env.benchmarks.reproduce_table import Stat
    from samstar_env.metrics.ground_truth import gt_metrics
    from samstar_env.models.registry import recommended_params
    from samstar_env.problem import TuningProblem, shared_engine
    from samstar_env.task import make_task

    out, report, _ = run
    data = json.loads((out / "reproduce.json").read_text())
    assert data["schema"] == SCHEMA == "samstar-reproduce/2"
    assert data["paper"] == PAPER and data["config"]["budget"] == 8 and data["config"]["only"] == ["a", "b", "c"]
    assert data["config"]["seeds"] == [0, 1] and data["config"]["rule"] == DEFAULT_RULE
    assert "test" in data["measured_on"]
    assert data == json.loads(json.dumps(report.to_dict()))
    # The masks of each point (the engine is exact, see tests/engine), then the metric functions
    # directly, image by image: an independent recount of what the JSON reports.
    engine = shared_engine(checkpoint, device="cpu")
    n_masks_seen = []

    def check_point(task, pt):
        params = AmgParams.from_dict(pt["params"])
        per_image = [(len(m), gt_metrics(m, im)) for im in task.test_images for m in [engine.generate(im, params)]]
        assert pt["test_n_masks"] == [n for n, _ in per_image]
        n_masks_seen.extend(pt["test_n_masks"])
        for key in ("n_gt", "f1", "over_segmentation_rate", "merge_rate", "occluded_recall"):
            assert [g.get(key) for g in pt["test_gt"]] == pytest.approx([g[key] for _, g in per_image]), key
        return params

    for letter, exp in data["experiments"].items():
        task = make_task(exp["task"], n_images=1, n_test_images=2, size=(SIZE, SIZE), model=checkpoint)
        # The two fixed points: SAM's defaults and the model's recommended point (SAM's defaults too
        # for a checkpoint given by path), each on every test image.
        assert check_point(task, exp["points"]["sam_defaults"]) == AmgParams()
        assert check_point(task, exp["points"]["vanilla"]) == recommended_params(checkpoint)[0]
        assert list(exp["seeds"]) == ["0", "1"]
        for seed, run_part in exp["seeds"].items():
            result = TuningResult.from_json(out / "runs" / f"{letter}_{exp['task']}_s{seed}.json")
            assert run_part["n_evaluations"] == len(result.trials) == 8 and run_part["front_size"] == len(result.front)
            for pt in run_part["points"].values():
                params = check_point(task, pt)
                trial = result.trials[pt["trial_index"]]
                assert pt["seed"] == int(seed) and trial.params == params and pt["tune_n_masks"] == list(trial.n_masks)
                assert list(pt["tune_rewards"].values()) == pytest.approx(trial.rewards.tolist())
            if letter == "c":
                # Exactly the two antagonistic rewards; the extremes are the best front members in each.
                assert exp["reward_names"] == list(AUCO_OBJECTIVES) == list(result.reward_names)
                r = result.rewards
                pts = run_part["points"]
                assert pts["knee"]["trial_index"] == result.knee().trial.index
                assert r[pts["small_particles"]["trial_index"], 0] == r[:, 0].max()
                assert r[pts["aggregates"]["trial_index"], 1] == r[:, 1].max()
                assert [f["trial_index"] for f in run_part["front"]] == result.front_indices.tolist()
                assert run_part["distinct_points"] == len({json.dumps(p["params"], sort_keys=True) for p in pts.values()})
            else:
                problem = TuningProblem(make_task(exp["task"], n_images=1, size=(SIZE, SIZE), model=checkpoint))
                want = choose(result, DEFAULT_RULE, problem=problem).trial.index
                assert run_part["points"]["tuned"]["trial_index"] == want and len(exp["reward_names"]) == 6
        # The summary is the mean ± SE over every (seed, test image) of a label.
        tuned = "knee" if letter == "c" else "tuned"
        masks = [n for run_part in exp["seeds"].values() for n in run_part["points"][tuned]["test_n_masks"]]
        assert exp["summary"][tuned]["n_masks"] == Stat.of(masks).to_dict() and len(masks) == 4
    assert max(n_masks_seen) > 0  # the check above compared real masks, not only empty sets
    # The printed numbers are the JSON's numbers.
    rows = {(r["experiment"], r["quantity"]): r for r in data["rows"]}
    a = data["experiments"]["a"]["summary"]
    tuned_a = next(q for (e, q) in rows if e == "a" and q.startswith("perovskite masks/image, tuned"))
    assert rows[("a", tuned_a)]["samstar"].startswith(f"{a['tuned']['n_masks']['mean']:.1f} ± {a['tuned']['n_masks']['se']:.1f}")
    c = data["experiments"]["c"]["summary"]
    assert rows[("c", "AuCo masks/image, knee point")]["samstar"] == f"{c['knee']['n_masks']['mean']:.1f} ± {c['knee']['n_masks']['se']:.1f}"
    assert rows[("c", "AuCo masks/image, knee point")]["stat"]["n"] == 4


def test_same_seed_same_json(run, checkpoint, tmp_path):
    out, _, _ = run
    reproduce(_config(checkpoint, tmp_path), progress=None)
    a = json.loads((out / "reproduce.json").read_text())
    b = json.loads((tmp_path / "reproduce.json").read_text())
    assert _strip_wall(a) == _strip_wall(b)


def _pt(label, masks, seed=None, **gt):
    # One point with the same numbers on two test images (SE 0), so the table's means are exact.
    return Point(label=label, rule="r", params=AmgParams(), seed=seed, trial_index=None, tune_rewards={}, tune_n_masks=(masks,),
                 test_n_masks=(masks, masks), test_gt=(gt, gt))


def _ab(default, vanilla, tuned):
    return {"sam_defaults": [default], "vanilla": [vanilla], "tuned": [tuned]}


def test_rows_agree_only_when_the_numbers_match_the_paper():
    known = {"images": "i", "model": "m", "budget": "b"}
    # The paper's own numbers agree everywhere, with no reason given (vanilla = SAM's defaults here).
    d = _pt("sam_defaults", 349, n_gt=400.0, occluded_recall=0.2, n_occluded=5.0)
    rows = _rows_a(_ab(d, d, _pt("tuned", 415, 0, n_gt=400.0, occluded_recall=0.6, n_occluded=5.0)), known)
    verdicts = {r.quantity: r.verdict for r in rows}
    assert verdicts["perovskite masks/image, SAM defaults"] == "agrees"
    assert verdicts["perovskite masks/image, tuned (r)"] == "agrees"
    assert verdicts["perovskite mask-count change, vanilla -> tuned"] == "agrees"
    assert verdicts["perovskite occluded-particle recall, vanilla -> tuned"] == "same direction"
    assert not any(r.causes for r in rows if r.verdict == "agrees")
    d = _pt("sam_defaults", 20, over_segmentation_rate=0.5)
    rows = _rows_b(_ab(d, d, _pt("tuned", 12, 0, over_segmentation_rate=0.15)), known)
    change = next(r for r in rows if r.quantity == "ITO over-segmentation change, vanilla -> tuned")
    assert change.verdict == "agrees" and change.samstar == "-70.0 ± 0.0 %"
    pts = {lab: [_pt(lab, n, 0)] for lab, n in (("small_particles", 117), ("knee", 22), ("aggregates", 11))}
    runs = {"0": {"distinct_points": 3, "front_spearman": -0.8, "front_size": 9, "n_evaluations": 50}}
    assert [r.verdict for r in _rows_c(pts, known, runs=runs)][:5] == ["agrees"] * 5
    # Smaller effects of the same sign, the wrong sign, and changes from a baseline of 0, each with a reason.
    d = _pt("sam_defaults", 20, over_segmentation_rate=0.5)
    rows = _rows_b(_ab(d, d, _pt("tuned", 18, 0, over_segmentation_rate=0.4)), known)
    change = next(r for r in rows if r.quantity == "ITO over-segmentation change, vanilla -> tuned")
    assert change.verdict == "same direction" and change.causes == ("model", "budget", "images")
    zero = _pt("sam_defaults", 20, over_segmentation_rate=0.0)
    rows = _rows_b(_ab(zero, d, _pt("tuned", 18, 0, over_segmentation_rate=0.4)), known)
    change = next(r for r in rows if r.quantity == "ITO over-segmentation change, SAM defaults -> tuned")
    # A number, not "n/a": absolute, because nothing was over-segmented at SAM's defaults.
    assert change.samstar == "+0.400 ± 0.000 (absolute; baseline 0)" and "absolute" in change.why
    assert change.verdict == "differs" and "raised over-segmentation" in change.why
    none = _pt("sam_defaults", 0, n_gt=9.0, occluded_recall=0.0, n_occluded=1.0)
    rows = _rows_a(_ab(none, none, _pt("tuned", 0, 0, n_gt=9.0, occluded_recall=0.0, n_occluded=1.0)), known)
    assert all(r.verdict in ("differs", "no paper number") for r in rows) and "no masks" in rows[0].why
    assert next(r for r in rows if "change, vanilla" in r.quantity).samstar == "+0.0 ± 0.0 (absolute; baseline 0)"
    pts = {lab: [_pt(lab, 3, 0)] for lab in ("small_particles", "knee", "aggregates")}
    rows = _rows_c(pts, known, runs={"0": {"distinct_points": 1, "front_spearman": None, "front_size": 1, "n_evaluations": 8}})
    assert rows[3].verdict == "differs" and "not three settings" in rows[3].why
    assert rows[4].samstar == "n/a" and rows[4].verdict == "differs"


def test_stat_and_paired_change():
    from samstar_env.benchmarks.reproduce_table import Change, Stat, paired_change

    s = Stat.of([1.0, 2.0, 3.0, 4.0])
    assert (s.mean, s.n) == (2.5, 4) and s.se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert Stat.of([None]).format() == "n/a" and Stat.of([5.0]).se == 0.0
    # Relative: mean difference over the baseline's mean, the SE of the differences scaled alike.
    ch = Change.paired([(10.0, 12.0), (10.0, 14.0)])
    assert ch.relative and ch.value == pytest.approx(0.3) and ch.se == pytest.approx(0.1)
    assert Change.paired([(0.0, 1.0), (0.0, 3.0)]).format(".1f") == "+2.0 ± 1.0 (absolute; baseline 0)"
    # A fixed baseline pairs with every seed of the tuned point, image by image.
    base = [_pt("vanilla", 10)]
    tuned = [_pt("tuned", 12, 0), _pt("tuned", 14, 1)]
    ch = paired_change(base, tuned, "n_masks")
    assert ch.n == 4 and ch.value == pytest.approx(0.3)


def test_experiment_names_and_bad_input(checkpoint, tmp_path, capsys):
    from samstar_env.cli import main

    assert experiment_ids("auco, A") == ("a", "c") and experiment_ids(["ito"]) == ("b",)
    with pytest.raises(ValueError, match="unknown experiment 'd'"):
        experiment_ids("a,d")
    cases = [
        (["--only", "a,x"], "unknown experiment 'x'"),
        (["--budget", "3", "--pop-size", "4"], "smaller than the NSGA-II population 4"),
        (["--space", "pred_iou_thresh,nope"], "unknown dimension"),
        (["--test-images", "0"], "--test-images must be between 1 and 16"),
        (["--seeds", "0,0"], "--seeds must name one or more distinct seeds"),
        (["--seeds", "x"], "--seeds must be a count or comma-separated integers"),
        (["--rule", "best"], "--rule 'best' is not an operating-point rule"),
        (["--images", "17"], "--images must be between 1 and 16"),
    ]
    for extra, message in cases:
        assert main(["reproduce", "--model", checkpoint, "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("samstar reproduce: error:") and message in err, err
    assert not (tmp_path / "x").exists()  # rejected before any work


def test_cli_runs_one_experiment(run, checkpoint, tmp_path, capsys):
    from samstar_env.cli import main

    assert main(["reproduce", "--only", "auco", "--model", checkpoint, "--budget", "8", "--pop-size", "4", "--size", str(SIZE),
                 "--seeds", "2", "--images", "1", "--test-images", "2", "--device", "cpu", "--quiet", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "(c)  AuCo masks/image, small particles point" in printed and "(a)" not in printed
    assert "samstar-reproduce/2" in printed and "auco_pareto_front.png" in printed
    data = json.loads((tmp_path / "reproduce.json").read_text())
    assert list(data["experiments"]) == ["c"] and sorted(p.name for p in tmp_path.glob("*.png")) == ["auco_operating_points.png", "auco_pareto_front.png"]
    # The same seed and settings as the full run: experiment (c) is identical on its own.
    full = json.loads((run[0] / "reproduce.json").read_text())
    assert _strip_wall(data["experiments"]["c"]) == _strip_wall(full["experiments"]["c"])


def test_dask_evaluations_equal_local(run, checkpoint, tmp_path):
    distributed = pytest.importorskip("distributed")
    from samstar_env.benchmarks.executors import dask_evaluator

    # An in-process cluster (threads) starts in about a second; the evaluator hook is what is tested.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            report = reproduce(_config(checkpoint, tmp_path, only=("c",)), evaluator=dask_evaluator(client), progress=None)
    full = json.loads((run[0] / "reproduce.json").read_text())
    assert _strip_wall(json.loads(json.dumps(report.to_dict()))["experiments"]["c"]) == _strip_wall(full["experiments"]["c"])


def test_auco_front_gives_three_ordered_settings_on_samstar_tiny(tmp_path):
    # Experiment (c) on the shipped model, small: with rewards version 3 the front's small-particle
    # end, knee and aggregate end are three different settings on every seed, the two rewards are
    # antagonistic over the front, and the mask counts fall from the small end to the aggregate end
    # on the tune images (structure only; the paper's counts are not asserted).
    cfg = ReproduceConfig(out=tmp_path, size=192, images=3, test_images=1, budget=24, pop_size=8, seeds=(0, 1),
                          only=("c",), device="cpu")
    exp = reproduce(cfg, progress=None).experiments["c"]
    for seed, run_part in exp["seeds"].items():
        pts = run_part["points"]
        assert run_part["distinct_points"] == 3, seed
        assert run_part["front_spearman"] is not None and run_part["front_spearman"] < 0, seed
        masks = [sum(pts[lab]["tune_n_masks"]) for lab in ("small_particles", "knee", "aggregates")]
        assert masks[0] > masks[1] > masks[2], (seed, masks)
