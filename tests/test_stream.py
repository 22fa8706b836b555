"""samstar stream: real background writers, restart without duplicates, corrupt files, drift, re-tuning."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from samstar_env.cli import main
from samstar_env.engine import MaskEngine
from samstar_env.metrics.multiobjective import dominates
from samstar_env.params import AmgParams
from samstar_env.stream import (
    LOG_NAME,
    DriftMonitor,
    FolderWatcher,
    Retuner,
    StreamConfig,
    natural_key,
    run_stream,
)

PARAMS = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.9)
SHAPE = (64, 64)


def _tiff_bytes(seed: int, *, blank: bool = False) -> bytes:
    arr = np.full(SHAPE, 1000, np.uint16) if blank else (np.random.default_rng(seed).random(SHAPE) * 4000).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


def write_atomic(folder: Path, name: str, data: bytes) -> None:
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)


def write_slowly(folder: Path, name: str, data: bytes, *, chunks: int = 6, pause_s: float = 0.03) -> None:
    """Non-atomic: the final name exists and grows while the writer works."""
    with open(folder / name, "wb") as fh:
        step = -(-len(data) // chunks)
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(pause_s)


def frame_lines(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / LOG_NAME).read_text().splitlines()) if r["event"] == "frame"]


class ContrastSuite:
    """Stub reward suite (the real presets need a trained model to mean anything): image contrast."""

    names = ("contrast",)

    def evaluate(self, masks, image, prior, *, params=None):
        return np.array([min(1.0, float(image.image.std()) * 4.0)])


@pytest.fixture(scope="module")
def engine(random_sam):
    return MaskEngine(random_sam)


def test_natural_order_and_watcher_ignores_partials(tmp_path):
    assert sorted(["f10.tif", "f9.tif", "f1.tif"], key=natural_key) == ["f1.tif", "f9.tif", "f10.tif"]
    (tmp_path / ".hidden.tif").write_bytes(b"x")
    (tmp_path / "a.tif.part").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "b.tif").write_bytes(b"x")
    (tmp_path / "empty.tif").write_bytes(b"")
    w = FolderWatcher(tmp_path, settle_s=0.0)
    assert [p.name for p in w.ready(set())] == ["b.tif"]


def test_stream_with_background_writer_corrupt_file_and_restart(tmp_path, engine):
    src, out = tmp_path / "frames", tmp_path / "out"
    src.mkdir()
    names = [f"frame_{i:02d}.tif" for i in range(4)]

    def writer():
        for i, name in enumerate(names):
            data = _tiff_bytes(i)
            (write_atomic if i % 2 == 0 else write_slowly)(src, name, data)
            if i == 2:
                (src / "frame_02b.tif").write_bytes(b"II*\x00 this is not a tiff")  # corrupt, stable
            time.sleep(0.05)

    th = threading.Thread(target=writer)
    th.start()
    rep = run_stream(StreamConfig(src, params=PARAMS, model=engine, out_dir=out, poll_s=0.05, settle_s=0.3, idle_timeout_s=2.0, drift=False), echo=None)
    th.join()
    assert sorted(rep.processed) == names  # every frame, none twice, none while half written
    assert rep.skipped == ("frame_02b.tif",)
    recs = frame_lines(out)
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert len(skipped) == 1 and skipped[0]["frame"] == "frame_02b.tif" and skipped[0]["error"]
    done = [r for r in recs if r["status"] == "done"]
    assert all(r["latency_s"] > 0 and r["segment_s"] <= r["latency_s"] for r in done)
    for name in names:
        assert (out / "frames" / f"{Path(name).stem}_particles.csv").exists()
        assert tifffile.imread(out / "frames" / f"{Path(name).stem}_labels.tif").dtype == np.uint16

    # Restart: nothing is reprocessed; a new frame is.
    write_atomic(src, "frame_04.tif", _tiff_bytes(4))
    rep2 = run_stream(StreamConfig(src, params=PARAMS, model=engine, out_dir=out, poll_s=0.05, settle_s=0.0, idle_timeout_s=0.5, drift=False), echo=None)
    assert rep2.processed == ("frame_04.tif",) and rep2.skipped == () and rep2.already_done == 5
    frames = [r["frame"] for r in frame_lines(out)]
    assert len(frames) == len(set(frames)) == 6


def test_restart_after_a_torn_log_line(tmp_path, engine):
    src, out = tmp_path / "frames", tmp_path / "out"
    src.mkdir()
    write_atomic(src, "a.tif", _tiff_bytes(0))
    config = StreamConfig(src, params=PARAMS, model=engine, out_dir=out, settle_s=0.0, max_frames=1, drift=False)
    assert run_stream(config, echo=None).processed == ("a.tif",)
    with open(out / LOG_NAME, "a") as fh:
        fh.write('{"event": "frame", "frame": "b.t')  # a crash mid-line
    write_atomic(src, "b.tif", _tiff_bytes(1))
    with pytest.warns(RuntimeWarning, match="torn last line"):
        rep = run_stream(config, echo=None)
    assert rep.processed == ("b.tif",) and rep.already_done == 1  # a.tif is not redone, b.tif is done
    events = [json.loads(x) for x in (out / LOG_NAME).read_text().splitlines()]  # every line parses
    assert [e.get("frame") for e in events if e["event"] == "frame"] == ["a.tif", "b.tif"]


def test_drift_monitor_flags_a_blank_frame(tmp_path, engine):
    mon = DriftMonitor(ContrastSuite(), prior=None, baseline_frames=2, tolerance=0.2)
    src = tmp_path / "frames"
    src.mkdir()
    for i in range(3):
        write_atomic(src, f"f{i}.tif", _tiff_bytes(i))
    write_atomic(src, "f3.tif", _tiff_bytes(3, blank=True))
    write_atomic(src, "f4.tif", _tiff_bytes(4))
    rep = run_stream(StreamConfig(src, params=PARAMS, model=engine, out_dir=tmp_path / "out", settle_s=0.0, max_frames=5), monitor=mon, echo=None)
    assert rep.flagged == ("f3.tif",)
    recs = {r["frame"]: r for r in frame_lines(tmp_path / "out")}
    assert recs["f3.tif"]["drift"] is True and recs["f3.tif"]["below"] == ["contrast"]
    assert recs["f0.tif"]["drift"] is False and recs["f0.tif"]["rewards_s"] >= 0


def test_tuned_level_from_params_file(tmp_path, engine):
    params = tmp_path / "best_params.json"
    params.write_text(json.dumps({"params": PARAMS.to_dict(), "rewards": [0.95], "reward_names": ["contrast"]}))
    src = tmp_path / "frames"
    src.mkdir()
    write_atomic(src, "f0.tif", _tiff_bytes(0, blank=True))
    from samstar_env.stream import read_params_file

    _, level, _ = read_params_file(params)
    mon = DriftMonitor(ContrastSuite(), prior=None, tuned_level=level)
    assert mon.level_source == "params-file"
    rep = run_stream(StreamConfig(src, params=params, model=engine, out_dir=tmp_path / "out", settle_s=0.0, max_frames=1), monitor=mon, echo=None)
    assert rep.flagged == ("f0.tif",)  # the very first frame is judged against the recorded level


def test_a_params_files_tuned_rewards_are_the_level_only_when_asked(tmp_path, engine):
    # The tuned image's optimized rewards are biased high (they flagged 3 of 3 in-distribution frames):
    # by default the level is the first frames' mean; --drift-level params opts into the file's.
    params = tmp_path / "best_params.json"
    params.write_text(json.dumps({"params": PARAMS.to_dict(), "rewards": {"coverage": 0.99}, "task": "perovskite"}))
    src = tmp_path / "frames"
    src.mkdir()
    write_atomic(src, "f0.tif", _tiff_bytes(0))

    def start_line(out, **kw):
        run_stream(StreamConfig(src, params=params, model=engine, out_dir=out, settle_s=0.0, max_frames=1, **kw), echo=None)
        return next(json.loads(x) for x in (out / LOG_NAME).read_text().splitlines() if '"start"' in x)

    assert start_line(tmp_path / "a")["drift"]["level_source"] == "baseline"
    assert start_line(tmp_path / "b", drift_level="params")["drift"]["level_source"] == "partly params-file"
    with pytest.raises(Exception, match="drift_level must be one of"):
        StreamConfig(src, drift_level="tuned")


class ThresholdSuite:
    """Stub rewards that prefer lower thresholds, so some re-tuning candidates dominate."""

    names = ("low_iou_thresh", "low_stability_thresh")

    def evaluate(self, masks, image, prior, *, params=None):
        return np.array([1.0 - params.pred_iou_thresh, 1.0 - params.stability_score_thresh])


def test_retune_switches_to_dominating_params(tmp_path, engine):
    start = PARAMS.replace(pred_iou_thresh=0.6, stability_score_thresh=0.7)
    mon = DriftMonitor(ThresholdSuite(), prior=None, tuned_level={"low_iou_thresh": 0.9, "low_stability_thresh": 0.9})
    src = tmp_path / "frames"
    src.mkdir()
    write_atomic(src, "f0.tif", _tiff_bytes(0))
    config = StreamConfig(src, params=start, model=engine, out_dir=tmp_path / "out", retune=True, retune_evals=8, settle_s=0.0, idle_timeout_s=3.0)
    rep = run_stream(config, monitor=mon, echo=None)
    assert rep.flagged == ("f0.tif",) and rep.switches == 1
    assert rep.params.pred_iou_thresh <= 0.6 and rep.params.stability_score_thresh <= 0.7
    assert rep.params != start
    events = [json.loads(x) for x in (tmp_path / "out" / LOG_NAME).read_text().splitlines()]
    tune = [e for e in events if e["event"] == "retune"]
    assert tune and tune[0]["switched"] and dominates(np.array(tune[0]["new_rewards"]), np.array(tune[0]["current_rewards"]))


def test_retuner_keeps_params_when_nothing_dominates(engine, rng):
    from samstar_env.data.micrograph import Micrograph

    mon = DriftMonitor(ThresholdSuite(), prior=None)
    r = Retuner(engine, mon, n_evals=4)
    frame = Micrograph(image=rng.random(SHAPE).astype(np.float32), name="x")
    assert r.start(PARAMS, [frame])  # thresholds already 0: no candidate can do better
    r.join()
    out = r.take()
    assert out is not None and out.error is None and out.best_params is None


def test_cli_stream(tmp_path, random_sam):
    from samstar_env.models.checkpoint import save_checkpoint
    from tests.conftest import TEST_SAM_CONFIG

    ckpt = tmp_path / "m.pt"
    save_checkpoint(random_sam, TEST_SAM_CONFIG, ckpt)
    src = tmp_path / "frames"
    src.mkdir()
    write_atomic(src, "a.tif", _tiff_bytes(0))
    params = tmp_path / "p.json"
    PARAMS.to_json(str(params))
    rc = main(["stream", str(src), "--params", str(params), "--model", str(ckpt), "-o", str(tmp_path / "o"), "--max-frames", "1", "--poll-s", "0.05"])
    assert rc == 0
    recs = frame_lines(tmp_path / "o")
    assert [r["frame"] for r in recs] == ["a.tif"]
    starts = [json.loads(x) for x in (tmp_path / "o" / LOG_NAME).read_text().splitlines() if '"start"' in x]
    assert starts[0]["drift_off_reason"].startswith("no task")


def test_real_reward_preset_in_the_monitor(engine):
    from samstar_env.data.synthetic import generate
    from samstar_env.stream import make_monitor

    mon = make_monitor("perovskite", baseline_frames=1)
    frame = generate("perovskite", seed=0, size=SHAPE)
    masks = engine.generate(frame, PARAMS)
    first = mon.check(masks, frame, PARAMS)
    assert first.level is None and not first.flagged  # baseline frame
    second = mon.check(masks, frame, PARAMS)
    assert second.level is not None and not second.flagged  # the same frame cannot drift
    assert len(second.rewards) == len(mon.names) and np.all((second.rewards >= 0) & (second.rewards <= 1))


def test_cli_defaults_are_the_config_defaults(tmp_path):
    from samstar_env.cli import build_parser

    args = build_parser("stream").parse_args(["stream", str(tmp_path)])
    default = StreamConfig(tmp_path)
    assert (args.poll_s, args.drift_tol, args.baseline_frames, args.model, args.device) == (
        default.poll_s, default.drift_tol, default.baseline_frames, default.model, default.device
    )
    assert default.out == tmp_path / "samstar_stream"


def test_stream_tiles_large_frames_and_says_so_once(tmp_path, engine):
    import tifffile

    src, out = tmp_path / "frames", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(src / name, (rng.random((160, 150)) * 4000).astype(np.uint16))
    lines: list[str] = []
    rep = run_stream(StreamConfig(src, params=PARAMS, model=engine, out_dir=out, settle_s=0.0, max_frames=2, drift=False),
                     echo=lines.append)
    assert rep.processed == ("a.tif", "b.tif")
    assert sum("tiling: tiles of 32 px with a halo of 8 px, automatic" in s for s in lines) == 1
    assert (rep.params.tile_shape, rep.params.halo) == (32, 8) and (out / "frames" / "a_rois.zip").is_file()
    rep = run_stream(StreamConfig(src, params=PARAMS, model=engine, out_dir=tmp_path / "o2", settle_s=0.0, max_frames=1,
                                  drift=False, tile_shape=0), echo=None)
    assert rep.params.tile_shape == 0


def test_without_params_or_model_the_default_models_recommended_point_is_used(tmp_path):
    from samstar_env.models.registry import recommended_params

    src = tmp_path / "frames"
    src.mkdir()
    run_stream(StreamConfig(src, out_dir=tmp_path / "o", idle_timeout_s=0.0, drift=False), echo=None)
    start = next(json.loads(x) for x in (tmp_path / "o" / LOG_NAME).read_text().splitlines() if '"start"' in x)
    assert start["model"] == "samstar-tiny" and start["policy"] is None
    assert start["params"] == recommended_params("samstar-tiny")[0].to_dict()
