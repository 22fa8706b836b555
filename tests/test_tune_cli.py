"""`samstar tune` end to end: report files, and a real SIGKILL mid-run followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samstar_env.cli import main
from samstar_env.rewards import REWARDS_VERSION

SPACE = "pred_iou_thresh,stability_score_thresh,box_nms_thresh"


@pytest.fixture(scope="module")
def checkpoint(random_sam, tmp_path_factory):
    """The random test SAM saved in samstar's checkpoint format (a subprocess cannot take a fixture)."""
    from samstar_env.models.checkpoint import save_checkpoint
    from tests.conftest import TEST_SAM_CONFIG

    path = tmp_path_factory.mktemp("model") / "random_sam.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, path)
    return path


def _args(ckpt, out, budget, *extra):
    return ["tune", "perovskite", "--model", str(ckpt), "--size", "64", "--space", SPACE, "--budget", str(budget),
            "--agent-opt", "pop_size=4", "--seed", "1", "--out", str(out), "--no-progress", "--no-tensorboard", *extra]


def _trials(out):
    lines = [json.loads(s) for s in (Path(out) / "journal.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "header"
    return [rec for rec in lines[1:] if rec["kind"] == "trial"]


def _with_header(out, edit):
    """Rewrite the journal's header line as ``edit(header)`` returns it; returns the original header."""
    journal = Path(out) / "journal.jsonl"
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["kind"] == "header"
    journal.write_text("\n".join([json.dumps(edit(dict(header))), *lines[1:]]) + "\n")
    return header


def _key(rec):
    return (rec["index"], rec["action"], rec["params"], rec["rewards"])


def test_cli_writes_report(checkpoint, tmp_path):
    out = tmp_path / "run"
    assert main(_args(checkpoint, out, 6)[:-2] + ["--pick", "knee", "--pick", "coverage"]) == 0
    for name in ("journal.jsonl", "result.json", "front.json", "front.png", "best_params.json", "operating_points.json", "overlays/knee.png"):
        assert (out / name).is_file(), name
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    best = json.loads((out / "best_params.json").read_text())
    assert best["rule"] == "knee" and "params" in best
    from samstar_env.params import AmgParams

    AmgParams.from_json(str(out / "best_params.json"))
    assert len(_trials(out)) == 6
    # A second run into the same folder without --resume is refused.
    assert main(_args(checkpoint, out, 6)) == 2


def test_sigkill_then_resume_equals_uninterrupted(checkpoint, tmp_path):
    n, k = 10, 3
    ref = tmp_path / "ref"
    assert main(_args(checkpoint, ref, n)) == 0

    out = tmp_path / "killed"
    # Slow each evaluation down in the child only, so the kill lands mid-run.
    code = (
        "import sys, time; import samstar_env.problem as p; ev = p.TuningProblem.evaluate\n"
        "p.TuningProblem.evaluate = lambda self, *a, **k: (time.sleep(0.4), ev(self, *a, **k))[1]\n"
        "from samstar_env.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code, *_args(checkpoint, out, n)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    journal = out / "journal.jsonl"
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count('"kind": "trial"') >= k:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_trials(out))
    assert k <= done < n

    assert main(_args(checkpoint, out, n, "--resume")) == 0
    got = _trials(out)
    assert [r["index"] for r in got] == list(range(n))  # exactly N, no duplicates, none lost
    assert [_key(r) for r in got] == [_key(r) for r in _trials(ref)]


def test_resume_with_other_settings_is_refused(checkpoint, tmp_path):
    out = tmp_path / "run"
    assert main(_args(checkpoint, out, 4)) == 0
    args = _args(checkpoint, out, 6, "--resume")
    args[args.index("--seed") + 1] = "2"
    assert main(args) == 2


def test_resume_of_a_journal_scored_under_other_reward_definitions_is_refused(checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(checkpoint, out, 4)) == 0
    header = _with_header(out, lambda h: {**h, "rewards_version": REWARDS_VERSION - 1})
    assert header["rewards_version"] == REWARDS_VERSION
    assert main(_args(checkpoint, out, 6, "--resume")) == 2
    assert "rewards_version" in capsys.readouterr().err


def test_resume_checks_reward_options_and_weights_when_the_journal_records_them(checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(checkpoint, out, 4)) == 0
    # A journal from before these keys existed resumes (nothing recorded to compare with) ...
    added = ("reward_options", "reward_weights")
    header = _with_header(out, lambda h: {k: v for k, v in h.items() if k not in added})
    assert all(len(header[k]) == len(header["reward_names"]) for k in added)
    assert main(_args(checkpoint, out, 5, "--resume")) == 0
    # ... one recorded under other reward options does not.
    _with_header(out, lambda h: {**h, **{k: header[k] for k in added}, "reward_options": [{"count_floor": 0.9}, *header["reward_options"][1:]]})
    assert main(_args(checkpoint, out, 6, "--resume")) == 2
    assert "reward_options" in capsys.readouterr().err


def test_tune_tiles_large_images_automatically_and_says_so(checkpoint, tmp_path, capsys):
    # The test model's input is 64 px: a 160² image is more than twice that, so it is tiled.
    args = ["tune", "perovskite", "--model", str(checkpoint), "--size", "160", "--space", SPACE, "--budget", "2",
            "--agent", "random", "--no-tensorboard"]
    assert main([*args, "--out", str(tmp_path / "auto")]) == 0
    assert "tiles of 32 px with a halo of 8 px, automatic" in capsys.readouterr().out
    header = json.loads((tmp_path / "auto" / "journal.jsonl").read_text().splitlines()[0])
    assert (header["space_base"]["tile_shape"], header["space_base"]["halo"]) == (32, 8)
    best = json.loads((tmp_path / "auto" / "best_params.json").read_text())
    assert best["params"]["tile_shape"] == 32  # segment then uses the tiles it was tuned with
    assert main([*args, "--out", str(tmp_path / "off"), "--tile-shape", "0"]) == 0
    header = json.loads((tmp_path / "off" / "journal.jsonl").read_text().splitlines()[0])
    assert "tile_shape" not in header["space_base"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--tile-shape", "16", "--halo", "32"]) != 0
    assert "--tile-shape 16 is smaller than the halo 32" in capsys.readouterr().err
