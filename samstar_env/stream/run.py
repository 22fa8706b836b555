"""The stream's run loop: ``run_stream(StreamConfig(DIR, params="best_params.json"))``.

State and restart
-----------------
``OUT/stream_log.jsonl`` is both the log and the journal (a :class:`samstar_env.journal.Journal`):
one JSON line per event, written with ``flush`` + ``os.fsync``. A frame's line (``"event": "frame"``)
is written after its output files, and on start every frame named in a frame line (done or skipped)
is never processed again. A crash between the files and the line reprocesses that one frame,
overwriting the same files with identical content; the log never holds a frame twice. A line torn by
a crash is skipped with a warning and cut off before the next line is written. Per-frame files go
to ``OUT/frames/`` (label TIFF and particle CSV; overlay PNGs with ``--overlay``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError, MissingFileError
from samstar_env.journal import Journal
from samstar_env.params import AmgParams
from samstar_env.stream.drift import DriftCheck, DriftMonitor, make_monitor, read_params_file
from samstar_env.stream.retune import RetuneOutcome, Retuner
from samstar_env.stream.watch import FolderWatcher

__all__ = ["LOG_NAME", "StreamConfig", "StreamReport", "run_stream"]

LOG_NAME = "stream_log.jsonl"
DRIFT_LEVELS = ("auto", "frames", "params", "policy")


@dataclass(frozen=True)
class StreamConfig:
    """Everything ``samstar stream`` needs (the CLI fills it; Python users may too).

    Parameters
    ----------
    directory : str or Path
        Folder the frames are written into.
    params : AmgParams or path, optional
        The configuration (``best_params.json``); SAM's defaults when omitted.
    model : str, Path, Sam or MaskEngine, optional
        As for :func:`samstar_env.segment` (default: the policy's model with ``policy``, else samstar-tiny).
    out_dir : str or Path, optional
        Log/journal and per-frame files; default ``DIRECTORY/samstar_stream``.
    poll_s : float
        Seconds between folder scans when nothing is ready.
    settle_s : float, optional
        Stability window of a file (default ``poll_s``).
    max_frames : int, optional
        Stop after handling (processing or skipping) this many frames in this run.
    idle_timeout_s : float, optional
        Stop after this long without a new frame (default: never).
    task : str, optional
        Task whose reward preset and prior the drift monitor uses (default: the params file's).
    drift : bool
        Compute rewards and flag drift (needs a task or monitor; off with a log line otherwise).
    drift_tol : float
        Absolute reward drop that flags a frame (see :class:`~samstar_env.stream.drift.DriftMonitor`).
    baseline_frames : int
        Frames averaged into the drift monitor's level (``drift_level`` ``frames``).
    retune : bool
        Run background re-tuning bursts on flagged frames (needs the drift monitor).
    retune_evals : int
        Candidates per burst.
    retune_frames : int
        How many recent frames a burst scores on.
    pixel_size_nm : float, optional
        Calibration overriding the files' own.
    overlay : bool
        Also write overlay PNGs (costs time per frame; off by default).
    device : str
        ``auto``, ``cpu`` or ``cuda`` (for model names and paths).
    tile_shape, halo : int, optional
        Tiles for large frames (:func:`~samstar_env.engine.tiles.choose_tiling`, decided on the
        first frame and announced): 0 never tiles; None follows the parameters, else tiles frames
        larger than twice the model's input automatically.
    policy : str or Path, optional
        A trained amortized policy (``samstar train-policy``): it chooses each frame's parameters
        from the frame in one forward pass, instead of ``params`` (they exclude each other, and
        re-tuning). The drift monitor then uses its task's rewards and prior, and its level is the
        policy's held-out level.
    drift_level : {"auto", "frames", "params", "policy"}
        What the drift monitor compares each frame with. ``frames``: the mean of the first
        ``baseline_frames`` frames (never flagged themselves). ``policy``: the policy's rewards on
        its held-out images. ``params``: the rewards a params file records (the tuned image's
        optimized, hence biased-high level: it flagged 3 of 3 in-distribution frames, so it is
        opt-in only). ``auto`` (default): ``policy`` with a policy, else ``frames``.
    """

    directory: str | Path
    params: AmgParams | str | Path | None = None
    model: Any = None
    out_dir: str | Path | None = None
    poll_s: float = 0.5
    settle_s: float | None = None
    max_frames: int | None = None
    idle_timeout_s: float | None = None
    task: str | None = None
    drift: bool = True
    drift_tol: float = 0.1
    baseline_frames: int = 5
    retune: bool = False
    retune_evals: int = 16
    retune_frames: int = 2
    pixel_size_nm: float | None = None
    overlay: bool = False
    device: str = "auto"
    tile_shape: int | None = None
    halo: int | None = None
    policy: str | Path | None = None
    drift_level: str = "auto"

    def __post_init__(self) -> None:
        if self.drift_level not in DRIFT_LEVELS:
            raise InputError(f"stream: drift_level must be one of {DRIFT_LEVELS}, got {self.drift_level!r}")
        if self.policy is not None and self.params is not None:
            raise InputError("stream: give either params or a policy, not both (the policy chooses the parameters per frame)")
        if self.policy is not None and self.retune:
            raise InputError("stream: re-tuning switches fixed parameters; it does not combine with a policy")
        if self.drift_level == "policy" and self.policy is None:
            raise InputError("stream: drift_level 'policy' needs a policy")

    @property
    def out(self) -> Path:
        """The output folder in effect."""
        return Path(self.out_dir) if self.out_dir is not None else Path(self.directory) / "samstar_stream"


@dataclass(frozen=True)
class StreamReport:
    """What one ``run_stream`` call did.

    Parameters
    ----------
    processed, skipped, flagged : tuple of str
        Frame names processed, skipped as unreadable, and flagged by the drift monitor (this run).
    already_done : int
        Frames found finished in the journal at start.
    switches : int
        Parameter switches made by re-tuning.
    latencies_s : tuple of float
        Per-frame processing time (read to files written; rewards excluded).
    wall_s : float
        Wall time of the run.
    params : AmgParams
        Parameters in use at the end.
    """

    processed: tuple[str, ...]
    skipped: tuple[str, ...]
    flagged: tuple[str, ...]
    already_done: int
    switches: int
    latencies_s: tuple[float, ...]
    wall_s: float
    params: AmgParams
    log_path: Path = field(default=Path(LOG_NAME))


def run_stream(
    config: StreamConfig,
    *,
    monitor: DriftMonitor | None = None,
    echo: Callable[[str], None] | None = print,
    stop: threading.Event | None = None,
) -> StreamReport:
    """Process frames of ``config.directory`` as they arrive, until a stop condition.

    Parameters
    ----------
    config : StreamConfig
        The stream's options.
    monitor : DriftMonitor, optional
        A ready monitor (overrides ``config.task``; unused when ``config.drift`` is off).
    echo : callable or None
        Where per-frame lines are printed.
    stop : threading.Event, optional
        Set it to end the stream from another thread.

    Returns
    -------
    StreamReport
    """
    run = _StreamRun(config, monitor=monitor, say=echo or _silent)
    stop = stop or threading.Event()
    try:
        run.loop(stop)
    except KeyboardInterrupt:
        run.say("stopped")
    finally:
        run.finish()
    return run.report()


def _silent(_line: str) -> None:
    pass


def _initial_params(params: AmgParams | str | Path | None, *, model: Any,
                    backbone: str = "sam1") -> tuple[AmgParams, dict[str, float], str | None]:
    """The parameters, the tuned level and the task a params file records (none for other forms).

    With no parameters: the model's recommended operating point, as ``samstar segment`` uses.
    """
    from samstar_env.segmentation import choose_params

    if isinstance(params, (str, Path)):
        return read_params_file(params)
    return choose_params(params, model=model, backbone=backbone)[0], {}, None


def _drift_monitor(config: StreamConfig, given: DriftMonitor | None, *, task: str | None, tuned_level: dict[str, float],
                   policy: Any = None) -> DriftMonitor | None:
    if not config.drift or given is not None:
        return given if config.drift else None
    source = config.drift_level if config.drift_level != "auto" else ("policy" if policy is not None else "frames")
    if source == "params" and not tuned_level:
        raise InputError("stream: drift_level 'params' needs a params file that records its rewards")
    level = tuned_level if source == "params" else None
    if source == "policy":
        held = policy.info.held_out or {}
        if not held.get("rewards"):
            raise InputError(f"stream: {policy.path} records no held-out level (it had no held-out images); use drift_level 'frames'")
        level = dict(held["rewards"])
    if policy is not None and config.task is None:
        from samstar_env.policy.policy_file import policy_suite

        return DriftMonitor(policy_suite(policy.info), policy.info.prior, tuned_level=level,
                            baseline_frames=config.baseline_frames, tolerance=config.drift_tol, level_source=source)
    if task is not None:
        return make_monitor(task, tuned_level=level, baseline_frames=config.baseline_frames, tolerance=config.drift_tol,
                            level_source="params-file" if source == "params" else source)
    return None


def _retuner(config: StreamConfig, engine: Any, monitor: DriftMonitor | None) -> Retuner | None:
    if not config.retune or monitor is None:
        return None
    from samstar_env.engine import MaskEngine

    # A burst re-scores the recent frames many times: the frame engine's cache still holds
    # their proposals, so the burst is replays (a user's own segmenter gets an engine here).
    tune_engine = engine if isinstance(engine, MaskEngine) else MaskEngine(engine.model)
    return Retuner(tune_engine, monitor, n_evals=config.retune_evals)


class _StreamRun:
    """One ``run_stream`` call: its journal, engine and monitor, and what it has handled so far."""

    def __init__(self, config: StreamConfig, *, monitor: DriftMonitor | None, say: Callable[[str], None]) -> None:
        from samstar_env.segmentation import resolve_engine

        self.directory = Path(config.directory)
        if not self.directory.is_dir():
            raise MissingFileError(f"stream folder {self.directory} not found")
        self.config, self.say = config, say
        self.policy = None
        if config.policy is not None:
            from samstar_env.policy.policy_file import load_policy

            self.policy = load_policy(config.policy)
        model = config.model
        if model is None:
            model = self.policy.info.model if self.policy is not None and self.policy.info.model is not None else DEFAULT_MODEL
        self.model = model
        self.engine = resolve_engine(model, device=config.device)
        if self.policy is not None:
            self.amg, tuned_level, file_task = self.policy.space.base, {}, None
        else:
            self.amg, tuned_level, file_task = _initial_params(config.params, model=model,
                                                               backbone=getattr(self.engine, "backbone", "sam1"))
        self.out = config.out
        self.frames_dir = self.out / "frames"
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.out / LOG_NAME)
        # Every frame named in a frame line (done or skipped) is never processed again.
        self.finished: dict[str, dict[str, Any]] = {rec["frame"]: rec for rec in self.journal.read() if rec.get("event") == "frame"}
        self.already = len(self.finished)
        self.monitor = _drift_monitor(config, monitor, task=config.task or file_task, tuned_level=tuned_level, policy=self.policy)
        self.retuner = _retuner(config, self.engine, self.monitor)
        self.recent: deque[Micrograph] = deque(maxlen=max(1, config.retune_frames))
        self._log_start()
        self.watcher = FolderWatcher(self.directory, settle_s=config.poll_s if config.settle_s is None else config.settle_s)
        self.used_stems = {rec.get("stem") for rec in self.finished.values()}
        self.processed: list[str] = []
        self.skipped: list[str] = []
        self.flagged: list[str] = []
        self.latencies: list[float] = []
        self.switches = 0
        self._tiling_chosen, self._tiling_line = False, "no tiles"
        self.wall = 0.0
        self.t_start = self.last_activity = time.perf_counter()

    # -- the loop --------------------------------------------------------------------------------
    def loop(self, stop: threading.Event) -> None:
        """Handle ready frames one at a time until ``stop``, ``max_frames`` or the idle timeout."""
        cfg = self.config
        while not stop.is_set():
            if cfg.max_frames is not None and len(self.processed) + len(self.skipped) >= cfg.max_frames:
                break
            if self.retuner is not None and self.monitor is not None:
                outcome = self.retuner.take()
                if outcome is not None:
                    self._adopt(outcome, self.monitor)
            ready = self.watcher.ready(self.finished)
            if not ready:
                if cfg.idle_timeout_s is not None and time.perf_counter() - self.last_activity >= cfg.idle_timeout_s:
                    break
                stop.wait(cfg.poll_s)
                continue
            self._handle(ready[0])  # one at a time: a newer, earlier-named frame may have arrived meanwhile

    def _handle(self, path: Path) -> None:
        from samstar_env.segmentation import segment_one, to_micrograph

        name = path.name
        t0 = time.perf_counter()
        try:
            micrograph, src = to_micrograph(path, pixel_size_nm=self.config.pixel_size_nm)
        except Exception as exc:  # any reader error: unreadable for now
            self._read_failed(name, exc)
            return
        stem = Path(name).stem if Path(name).stem not in self.used_stems else name.replace(".", "_")
        self.used_stems.add(stem)
        if not self._tiling_chosen:
            # Once, on the first frame: a camera's frames share a size, and the drift monitor and
            # re-tuning then compare parameters of one tiling.
            from samstar_env.engine.tiles import choose_tiling, model_input_size

            self.amg, line = choose_tiling(self.amg, micrograph.shape, input_size=model_input_size(self.engine),
                                           tile_shape=self.config.tile_shape, halo=self.config.halo)
            self._tiling_chosen, self._tiling_line = True, line
            if line != "no tiles":
                self.say(f"tiling: {line}")
        params = self.amg
        if self.policy is not None:
            # The frame's own parameters, in the tiling chosen on the first frame.
            params = self.policy.propose(micrograph).params.replace(tile_shape=self.amg.tile_shape, halo=self.amg.halo)
        res = segment_one(micrograph, self.engine, params, pixel_size_source=src, out_dir=self.frames_dir, stem=stem,
                          overlay=self.config.overlay, tiling=self._tiling_line)
        latency = time.perf_counter() - t0
        check = self.monitor.check(res.masks, micrograph, params) if self.monitor is not None else None
        rec = _frame_record(path, stem=stem, latency=latency, res=res, src=src, check=check, names=() if self.monitor is None else self.monitor.names)
        if self.policy is not None:
            rec["params"] = params.to_dict()
        self._log_frame(rec)
        self.watcher.forget(name)
        self.processed.append(name)
        self.latencies.append(latency)
        self.last_activity = time.perf_counter()
        self.say(_frame_line(name, res, latency, check))
        if check is not None:
            self._after_check(name, micrograph, check)

    def _read_failed(self, name: str, exc: Exception) -> None:
        if self.watcher.read_failed(name) < 2:
            return  # maybe still being written: retry after another settle period
        msg = f"{type(exc).__name__}: {exc}"
        self._log_frame({"event": "frame", "frame": name, "status": "skipped", "error": msg, "time": time.time()})
        self.watcher.forget(name)
        self.skipped.append(name)
        self.last_activity = time.perf_counter()
        self.say(f"{name}: SKIPPED unreadable file ({msg})")

    def _after_check(self, name: str, micrograph: Micrograph, check: DriftCheck) -> None:
        if check.flagged:
            self.flagged.append(name)
        if self.retuner is None:
            return
        self.recent.append(micrograph)
        if check.flagged and self.retuner.start(self.amg, list(self.recent)):
            self.journal.append({"event": "retune_started", "time": time.time(), "frames": [m.name for m in self.recent]})

    def _adopt(self, outcome: RetuneOutcome, monitor: DriftMonitor) -> None:
        """Log a finished burst and switch to its parameters when they dominate."""
        switched = outcome.best_params is not None
        self.journal.append(
            {
                "event": "retune",
                "time": time.time(),
                "switched": switched,
                "seconds": outcome.seconds,
                "n_evals": outcome.n_evals,
                "current_rewards": outcome.current,
                "new_rewards": outcome.best_rewards,
                "new_params": None if outcome.best_params is None else outcome.best_params.to_dict(),
                "error": outcome.error,
            }
        )
        if switched and outcome.best_params is not None and outcome.best_rewards is not None and outcome.current is not None:
            self.amg = outcome.best_params
            monitor.reset_level(outcome.best_rewards)
            self.switches += 1
            self.say(f"params_switched: new rewards {np.round(outcome.best_rewards, 3).tolist()} dominate {np.round(outcome.current, 3).tolist()}")

    # -- the journal -----------------------------------------------------------------------------
    def _log_start(self) -> None:
        cfg, monitor = self.config, self.monitor
        self.journal.append(
            {
                "event": "start",
                "time": time.time(),
                "directory": str(self.directory),
                "params": self.amg.to_dict(),
                "model": str(self.model) if isinstance(self.model, (str, Path)) else type(self.model).__name__,
                "policy": None if self.policy is None else str(self.policy.path),
                "already_done": self.already,
                "drift": None if monitor is None else {"rewards": list(monitor.names), "level_source": monitor.level_source, "tolerance": cfg.drift_tol},
                "drift_off_reason": None if monitor is not None else ("--no-drift" if not cfg.drift else "no task given (--task) and none recorded in the params file"),
                "retune": self.retuner is not None,
            }
        )
        if cfg.drift and monitor is None:
            self.say("drift monitor off: no --task given and the params file records none")

    def _log_frame(self, record: dict[str, Any]) -> None:
        self.journal.append(record)
        self.finished[str(record["frame"])] = record

    def finish(self) -> None:
        """Log the stop line and close the journal (a running burst is left to its daemon thread)."""
        if self.retuner is not None:
            self.retuner.join(timeout=0)  # daemon thread: never hold the exit for a burst
        self.wall = time.perf_counter() - self.t_start
        self.journal.append({"event": "stop", "time": time.time(), "processed": len(self.processed), "skipped": len(self.skipped), "wall_s": self.wall})
        self.journal.close()

    def report(self) -> StreamReport:
        """What the run did (after :meth:`finish`)."""
        return StreamReport(
            tuple(self.processed), tuple(self.skipped), tuple(self.flagged), self.already, self.switches,
            tuple(self.latencies), self.wall, self.amg, self.out / LOG_NAME,
        )


def _frame_record(path: Path, *, stem: str, latency: float, res: Any, src: str, check: DriftCheck | None, names: tuple[str, ...]) -> dict[str, Any]:
    """A processed frame's journal line (written after its files)."""
    rec: dict[str, Any] = {
        "event": "frame",
        "frame": path.name,
        "status": "done",
        "stem": stem,
        "time": time.time(),
        "latency_s": latency,
        "segment_s": res.timings_s["segment"],
        "measure_s": res.timings_s["measure"],
        "write_s": res.timings_s["write"],
        "read_s": latency - sum(res.timings_s.values()),
        "age_s": time.time() - path.stat().st_mtime if path.exists() else None,
        "n_particles": len(res.table),
        "median_diameter": res.summary.median_diameter,  # NaN (no particles) is written as null
        "unit": res.table.unit,
        "pixel_size_source": src,
    }
    if check is not None:
        rec.update(
            rewards_s=check.seconds,
            rewards={n: float(v) for n, v in zip(names, check.rewards, strict=True)},
            drift=check.flagged,
            below=list(check.below),
        )
    return rec


def _frame_line(name: str, res: Any, latency: float, check: DriftCheck | None) -> str:
    line = f"{name}: {len(res.table)} particles, latency {latency:.3f} s (segment {res.timings_s['segment']:.3f} s)"
    if check is not None:
        line += f", rewards {check.seconds:.3f} s"
        if check.flagged:
            line += f"  DRIFT: {', '.join(check.below)} below the drift level"
    return line
