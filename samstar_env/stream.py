"""Segment frames as they arrive in a folder: ``samstar stream DIR --params best_params.json``.

How frames are picked up
------------------------
- Files with an image suffix (png, jpg, tif, EM formats) directly in ``DIR``; hidden names
  (``.frame.tif``) and partial-download names (``*.tmp``, ``*.part``...) are ignored, so writers that
  write a temporary file and rename it (atomic writes) are picked up at the rename.
- **Order: by file name, in natural order** (``frame_9`` before ``frame_10``). Acquisition software
  numbers its frames, whereas modification times are coarse on some file systems, change when files
  are copied and skew on network shares. A frame that appears later with an earlier name is still
  processed, when it appears; it never blocks the stream.
- **A frame is read only when it is stable**: size and mtime unchanged for ``settle_s`` (default: the
  poll interval), counted from the file's own mtime, so a file that has been sitting there for a
  while is read at once. A non-atomic writer that pauses for longer than ``settle_s`` mid-file can
  make a read fail; a failed read is retried when the file changes or, if it does not, once more
  after ``settle_s``; a file that still cannot be read is **skipped** with a ``"status": "skipped"``
  log line naming the error, and the stream goes on.

State and restart
-----------------
``OUT/stream_log.jsonl`` is both the log and the journal: one JSON line per event, written with
``flush`` + ``os.fsync``. A frame's line (``"event": "frame"``) is written after its output files, and
on start every frame named in a frame line (done or skipped) is never processed again. A crash between
the files and the line reprocesses that one frame, overwriting the same files with identical content;
the log never holds a frame twice. Per-frame files go to ``OUT/frames/`` (label TIFF and particle
CSV; overlay PNGs with ``--overlay``).

Speed
-----
Each frame costs one cold decode at the given parameters (a
:class:`~samstar_env.engine.MaskEngine`, faster than a ``SamAutomaticMaskGenerator`` call and
bounded in memory; :func:`~samstar_env.segmentation.resolve_engine`), plus reading the file, the particle table and writing the
label TIFF and CSV (milliseconds; ``read_s``, ``measure_s``, ``write_s`` in the log). The drift
monitor's rewards are extra, logged as ``rewards_s`` and excluded from ``latency_s``; overlays are
off unless ``--overlay``. ``benchmarks/bench_stream.py`` measures frames per second and the ratio to a
bare AMG call.

Drift monitor
-------------
Per frame, the physics rewards of the task (``--task``, else a ``task`` key of the params file or of
the ``result.json`` that ``samstar tune`` writes beside it) are computed on the frame's masks, timed
separately from segmentation (``rewards_s``) and optional (``--no-drift``). A frame is flagged when
any reward falls more than ``drift_tol`` (absolute; rewards are in [0, 1]) below the tuned level. The tuned level is read from the params file
when it records rewards (``{"rewards": {name: value}}`` or ``"rewards"`` + ``"reward_names"`` lists,
matched by name); otherwise it is the mean of the first ``baseline_frames`` frames (never flagged
themselves).

Re-tuning (``--retune``)
------------------------
On a flagged frame a background thread runs a short local random search around the current
parameters on the most recent frames: ``retune_evals`` candidates drawn from a Gaussian (sigma 0.25
in the ``[-1, 1]`` action space of :class:`~samstar_env.params.ParamSpace`) over the *cheap*
parameters only (IoU and stability thresholds and offset, the two NMS thresholds, small-region
area), which the engine replays from its cache of those frames in milliseconds, so the burst costs
about one decode per frame. The stream switches to the best candidate (largest reward sum) among those
that Pareto-dominate the current parameters on those frames (>= on every reward, > on one), logs
``params_switched`` and takes the new rewards as the tuned level. It is a local search rather than
``samstar_env.agents``' NSGA-II because a burst needs a handful of evaluations around one point, not
a population. Searching points_per_side or crops would cost a full decode per candidate per frame.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.data.micrograph import Micrograph
from samstar_env.params import AmgParams, ParamSpace

IMAGE_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".ser", ".mrc"})
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~")
LOG_NAME = "stream_log.jsonl"
# Parameters a retune burst may change: each is a filter replayed from the engine's cache.
CHEAP_PARAMS: tuple[str, ...] = (
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "box_nms_thresh",
    "crop_nms_thresh",
    "min_mask_region_area",
)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically (``f9`` < ``f10``)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def is_candidate(path: Path) -> bool:
    """An image file that is not hidden and not a partial/temporary name."""
    n = path.name
    return not n.startswith(".") and not n.lower().endswith(_PARTIAL_SUFFIXES) and path.suffix.lower() in IMAGE_SUFFIXES


# -- journal -------------------------------------------------------------------------------------
class Journal:
    """Append-only JSON-lines log whose ``frame`` lines are the restart state (fsync'ed per line).

    Parameters
    ----------
    path : Path
        The log file; created when missing. A torn last line (a crash mid-write) is ignored.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.finished: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("event") == "frame":
                    self.finished[rec["frame"]] = rec
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one line and make it durable before returning."""
        line = json.dumps(record, allow_nan=False, default=_json_default)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if record.get("event") == "frame":
                self.finished[str(record["frame"])] = dict(record)

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


# -- folder watching -----------------------------------------------------------------------------
@dataclass
class _Seen:
    signature: tuple[int, int]
    stable_since: float
    failures: int = 0
    failed_signature: tuple[int, int] | None = None


class FolderWatcher:
    """Reports files of a folder once they have stopped changing, in natural name order.

    Parameters
    ----------
    directory : Path
        The folder (not recursive).
    settle_s : float
        How long size and mtime must stay unchanged before a file is read.
    """

    def __init__(self, directory: Path, *, settle_s: float) -> None:
        self.directory = Path(directory)
        self.settle_s = float(settle_s)
        self._seen: dict[str, _Seen] = {}

    def ready(self, exclude: Mapping[str, Any] | set[str]) -> list[Path]:
        """Stable candidate files not in ``exclude``, in natural name order."""
        now = time.time()
        out = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for e in entries:
            if e.name in exclude or not is_candidate(Path(e.name)):
                continue
            try:
                st = e.stat()
            except FileNotFoundError:  # renamed or deleted between listing and stat
                continue
            if not e.is_file():
                continue
            sig = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(e.name)
            if seen is None or seen.signature != sig:
                # The file's mtime is when it last changed; counting from it means a file that was
                # already complete is read at once, while a file being written keeps moving it.
                since = min(now, st.st_mtime) if seen is None else now
                self._seen[e.name] = seen = _Seen(sig, since, 0 if seen is None else seen.failures, None if seen is None else seen.failed_signature)
            if sig[0] > 0 and now - seen.stable_since >= self.settle_s:
                out.append(self.directory / e.name)
        return sorted(out, key=lambda p: natural_key(p.name))

    def read_failed(self, name: str) -> int:
        """Record a failed read; returns how many times this unchanged file has failed."""
        seen = self._seen[name]
        if seen.failed_signature != seen.signature:
            seen.failures = 0
        seen.failures += 1
        seen.failed_signature = seen.signature
        seen.stable_since = time.time()  # wait another settle period before retrying
        return seen.failures

    def forget(self, name: str) -> None:
        """Drop bookkeeping for a handled file."""
        self._seen.pop(name, None)


# -- drift monitor -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftCheck:
    """The drift monitor's verdict on one frame.

    Parameters
    ----------
    rewards : ndarray of float
        The frame's reward vector.
    level : ndarray of float or None
        The tuned level it was compared with (``None`` while the baseline is being collected).
    flagged : bool
        Whether any reward fell more than the tolerance below its level.
    below : tuple of str
        Names of the rewards that did.
    seconds : float
        Time spent computing the rewards.
    """

    rewards: np.ndarray
    level: np.ndarray | None
    flagged: bool
    below: tuple[str, ...]
    seconds: float


class DriftMonitor:
    """Flags frames whose physics rewards fall below the tuned level.

    Parameters
    ----------
    suite : RewardSuite-like
        Has ``names`` and ``evaluate(masks, image, prior, params=...) -> vector``.
    prior : PhysicsPrior
        The task's prior.
    tuned_level : mapping of str to float, optional
        Reward values at tuning time (by name); missing names fall back to the running baseline.
    baseline_frames : int
        Frames averaged into the level when ``tuned_level`` does not give it.
    tolerance : float
        Absolute drop that flags a frame.
    """

    def __init__(self, suite: Any, prior: Any, *, tuned_level: Mapping[str, float] | None = None, baseline_frames: int = 5, tolerance: float = 0.1) -> None:
        if baseline_frames < 1:
            raise ValueError(f"baseline_frames must be >= 1, got {baseline_frames}")
        self.suite = suite
        self.prior = prior
        self.names: tuple[str, ...] = tuple(suite.names)
        self.tolerance = float(tolerance)
        self.baseline_frames = int(baseline_frames)
        given = dict(tuned_level or {})
        self._fixed = np.array([float(given.get(n, math.nan)) for n in self.names])
        self._history: list[np.ndarray] = []
        self.level_source = "params-file" if np.isfinite(self._fixed).all() else ("partly params-file" if np.isfinite(self._fixed).any() else "baseline")

    @property
    def level(self) -> np.ndarray | None:
        """Current tuned level (``None`` until the baseline is complete, where one is needed)."""
        if np.isfinite(self._fixed).all():
            return self._fixed
        if len(self._history) < self.baseline_frames:
            return None
        base = np.mean(self._history[: self.baseline_frames], axis=0)
        return np.where(np.isfinite(self._fixed), self._fixed, base)

    def evaluate(self, masks: Any, micrograph: Micrograph, params: AmgParams) -> np.ndarray:
        """The reward vector of one frame."""
        return np.asarray(self.suite.evaluate(masks, micrograph, self.prior, params=params), np.float64).reshape(-1)

    def check(self, masks: Any, micrograph: Micrograph, params: AmgParams) -> DriftCheck:
        """Compute the frame's rewards and compare them with the level."""
        t0 = time.perf_counter()
        r = self.evaluate(masks, micrograph, params)
        sec = time.perf_counter() - t0
        level = self.level
        if level is None:
            self._history.append(r)
            return DriftCheck(r, None, False, (), sec)
        below = tuple(n for n, v, lv in zip(self.names, r, level, strict=True) if not v >= lv - self.tolerance)
        return DriftCheck(r, level, bool(below), below, sec)

    def reset_level(self, level: np.ndarray) -> None:
        """Adopt a new tuned level (after switching parameters)."""
        self._fixed = np.asarray(level, np.float64).copy()
        self.level_source = "retune"


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Pareto dominance for maximization: ``a >= b`` everywhere and ``a > b`` somewhere."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a >= b) and np.any(a > b))


# -- background re-tuning ------------------------------------------------------------------------
@dataclass(frozen=True)
class RetuneOutcome:
    """Result of one burst.

    Parameters
    ----------
    current : ndarray
        Mean reward vector of the parameters in use, on the burst's frames.
    best_params : AmgParams or None
        The chosen dominating candidate, or ``None`` when no candidate dominated.
    best_rewards : ndarray or None
        Its mean reward vector.
    n_evals : int
        Candidates evaluated.
    seconds : float
        Wall time of the burst.
    error : str or None
        Set when the burst failed (the stream keeps its parameters).
    """

    current: np.ndarray | None
    best_params: AmgParams | None
    best_rewards: np.ndarray | None
    n_evals: int
    seconds: float
    error: str | None = None


class Retuner:
    """Runs local random-search bursts in a background thread.

    Parameters
    ----------
    engine : MaskEngine
        Shared with the stream (thread-safe); the burst's frames stay in its cache.
    monitor : DriftMonitor
        Supplies the rewards and prior.
    n_evals : int
        Candidates per burst.
    sigma : float
        Gaussian step in action space.
    seed : int
        Seed of the candidate draws (burst ``k`` uses ``seed + k``).
    """

    def __init__(self, engine: Any, monitor: DriftMonitor, *, n_evals: int = 16, sigma: float = 0.25, seed: int = 0) -> None:
        self.engine = engine
        self.monitor = monitor
        self.n_evals = int(n_evals)
        self.sigma = float(sigma)
        self.seed = int(seed)
        self._bursts = 0
        self._thread: threading.Thread | None = None
        self._outcome: RetuneOutcome | None = None

    @property
    def running(self) -> bool:
        """Whether a burst is in progress."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, params: AmgParams, frames: Sequence[Micrograph]) -> bool:
        """Start a burst unless one is running; returns whether it started."""
        if self.running or not frames:
            return False
        self._outcome = None
        rng = np.random.default_rng(self.seed + self._bursts)
        self._bursts += 1
        self._thread = threading.Thread(target=self._run, args=(params, tuple(frames), rng), name="samstar-retune", daemon=True)
        self._thread.start()
        return True

    def take(self) -> RetuneOutcome | None:
        """The finished burst's outcome, once (``None`` while running or when none finished)."""
        if self.running:
            return None
        out, self._outcome = self._outcome, None
        return out

    def join(self, timeout: float | None = None) -> None:
        """Wait for a running burst."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _score(self, params: AmgParams, frames: Sequence[Micrograph]) -> np.ndarray:
        return np.mean([self.monitor.evaluate(self.engine.generate(f, params), f, params) for f in frames], axis=0)

    def _run(self, params: AmgParams, frames: tuple[Micrograph, ...], rng: np.random.Generator) -> None:
        t0 = time.perf_counter()
        try:
            space = ParamSpace.subset(CHEAP_PARAMS, base=params)
            x0 = space.encode(params).astype(np.float64)
            current = self._score(params, frames)
            best: tuple[float, AmgParams, np.ndarray] | None = None
            for _ in range(self.n_evals):
                cand = space.decode(np.clip(x0 + self.sigma * rng.standard_normal(space.dim), -1.0, 1.0))
                r = self._score(cand, frames)
                if dominates(r, current) and (best is None or r.sum() > best[0]):
                    best = (float(r.sum()), cand, r)
            self._outcome = RetuneOutcome(current, None if best is None else best[1], None if best is None else best[2], self.n_evals, time.perf_counter() - t0)
        except Exception as exc:  # a failed burst must never stop the stream
            self._outcome = RetuneOutcome(None, None, None, 0, time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")


# -- the stream ----------------------------------------------------------------------------------
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


def read_params_file(path: str | Path) -> tuple[AmgParams, dict[str, float], str | None]:
    """Parameters, the rewards recorded at tuning time (by name; may be empty) and the task name."""
    params = AmgParams.from_json(str(path))
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    level: dict[str, float] = {}
    task = None
    if isinstance(data, dict):
        task = data.get("task") if isinstance(data.get("task"), str) else None
        r = data.get("rewards")
        if isinstance(r, dict):
            level = {str(k): float(v) for k, v in r.items() if isinstance(v, (int, float))}
        elif isinstance(r, list) and isinstance(data.get("reward_names"), list) and len(r) == len(data["reward_names"]):
            level = {str(k): float(v) for k, v in zip(data["reward_names"], r, strict=True)}
    sibling = Path(path).with_name("result.json")  # `samstar tune` records the task there
    if task is None and sibling.is_file():
        try:
            t = json.loads(sibling.read_text(encoding="utf-8")).get("task")
            task = t if isinstance(t, str) else None
        except (json.JSONDecodeError, AttributeError):
            task = None
    return params, level, task


def make_monitor(task: str, *, tuned_level: Mapping[str, float] | None = None, baseline_frames: int = 5, tolerance: float = 0.1) -> DriftMonitor:
    """A drift monitor with the task's reward preset and prior."""
    from samstar_env.data.synthetic import prior
    from samstar_env.rewards import preset

    return DriftMonitor(preset(task), prior(task), tuned_level=tuned_level, baseline_frames=baseline_frames, tolerance=tolerance)


def run_stream(
    directory: str | Path,
    *,
    params: AmgParams | str | Path | None = None,
    model: Any = "samstar-tiny",
    out_dir: str | Path | None = None,
    poll_s: float = 0.5,
    settle_s: float | None = None,
    max_frames: int | None = None,
    idle_timeout_s: float | None = None,
    monitor: DriftMonitor | None = None,
    task: str | None = None,
    drift: bool = True,
    drift_tol: float = 0.1,
    baseline_frames: int = 5,
    retune: bool = False,
    retune_evals: int = 16,
    retune_frames: int = 2,
    pixel_size_nm: float | None = None,
    overlay: bool = False,
    device: str = "auto",
    echo: Callable[[str], None] | None = print,
    stop: threading.Event | None = None,
) -> StreamReport:
    """Process frames of ``directory`` as they arrive, until a stop condition.

    Parameters
    ----------
    directory : str or Path
        Folder the frames are written into.
    params : AmgParams or path, optional
        The configuration (``best_params.json``); SAM's defaults when omitted.
    model : str, Path, Sam or MaskEngine
        As for :func:`samstar_env.segment`.
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
    monitor : DriftMonitor, optional
        A ready monitor (overrides ``task``).
    task : str, optional
        Task whose reward preset and prior the drift monitor uses (default: the params file's).
    drift : bool
        Compute rewards and flag drift (needs a task or monitor; off with a log line otherwise).
    drift_tol, baseline_frames : float, int
        See :class:`DriftMonitor`.
    retune : bool
        Run background re-tuning bursts on flagged frames (needs the drift monitor).
    retune_evals, retune_frames : int
        Candidates per burst and how many recent frames a burst scores on.
    pixel_size_nm : float, optional
        Calibration overriding the files' own.
    overlay : bool
        Also write overlay PNGs (costs time per frame; off by default).
    device : str
        For names and paths.
    echo : callable or None
        Where per-frame lines are printed.
    stop : threading.Event, optional
        Set it to end the stream from another thread.

    Returns
    -------
    StreamReport
    """
    from samstar_env.segmentation import resolve_engine, resolve_params, segment_one, to_micrograph

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"stream folder {directory} not found")
    say = echo or (lambda _s: None)
    tuned_level: dict[str, float] = {}
    file_task = None
    if isinstance(params, (str, Path)):
        amg, tuned_level, file_task = read_params_file(params)
    else:
        amg = resolve_params(params)
    out = Path(out_dir) if out_dir is not None else directory / "samstar_stream"
    frames_dir = out / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / LOG_NAME)
    engine = resolve_engine(model, device=device)

    task = task or file_task
    if drift and monitor is None and task is not None:
        monitor = make_monitor(task, tuned_level=tuned_level, baseline_frames=baseline_frames, tolerance=drift_tol)
    if not drift:
        monitor = None
    retuner = None
    if retune and monitor is not None:
        from samstar_env.engine import MaskEngine

        # A burst re-scores the recent frames many times: the frame engine's cache still holds
        # their proposals, so the burst is replays (a user's own segmenter gets an engine here).
        tune_engine = engine if isinstance(engine, MaskEngine) else MaskEngine(engine.model)
        retuner = Retuner(tune_engine, monitor, n_evals=retune_evals)
    recent: deque[Micrograph] = deque(maxlen=max(1, retune_frames))
    journal.append(
        {
            "event": "start",
            "time": time.time(),
            "directory": str(directory),
            "params": amg.to_dict(),
            "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
            "already_done": len(journal.finished),
            "drift": None if monitor is None else {"rewards": list(monitor.names), "level_source": monitor.level_source, "tolerance": drift_tol},
            "drift_off_reason": None if monitor is not None else ("--no-drift" if not drift else "no task given (--task) and none recorded in the params file"),
            "retune": retuner is not None,
        }
    )
    if drift and monitor is None:
        say("drift monitor off: no --task given and the params file records none")

    watcher = FolderWatcher(directory, settle_s=poll_s if settle_s is None else settle_s)
    used_stems = {rec.get("stem") for rec in journal.finished.values()}
    processed: list[str] = []
    skipped: list[str] = []
    flagged: list[str] = []
    latencies: list[float] = []
    switches = 0
    already = len(journal.finished)
    t_start = last_activity = time.perf_counter()
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            if max_frames is not None and len(processed) + len(skipped) >= max_frames:
                break
            if retuner is not None and monitor is not None:
                outcome = retuner.take()
                if outcome is not None:
                    switched = outcome.best_params is not None
                    journal.append(
                        {
                            "event": "retune",
                            "time": time.time(),
                            "switched": switched,
                            "seconds": outcome.seconds,
                            "n_evals": outcome.n_evals,
                            "current_rewards": None if outcome.current is None else outcome.current.tolist(),
                            "new_rewards": None if outcome.best_rewards is None else outcome.best_rewards.tolist(),
                            "new_params": None if outcome.best_params is None else outcome.best_params.to_dict(),
                            "error": outcome.error,
                        }
                    )
                    if switched and outcome.best_params is not None and outcome.best_rewards is not None and outcome.current is not None:
                        amg = outcome.best_params
                        monitor.reset_level(outcome.best_rewards)
                        switches += 1
                        say(f"params_switched: new rewards {np.round(outcome.best_rewards, 3).tolist()} dominate {np.round(outcome.current, 3).tolist()}")
            ready = watcher.ready(journal.finished)
            if not ready:
                if idle_timeout_s is not None and time.perf_counter() - last_activity >= idle_timeout_s:
                    break
                stop.wait(poll_s)
                continue
            path = ready[0]  # one at a time: a newer, earlier-named frame may have arrived meanwhile
            name = path.name
            t0 = time.perf_counter()
            try:
                micrograph, src = to_micrograph(path, pixel_size_nm=pixel_size_nm)
            except Exception as exc:  # any reader error: unreadable for now
                n_fail = watcher.read_failed(name)
                if n_fail < 2:
                    continue  # maybe still being written: retry after another settle period
                msg = f"{type(exc).__name__}: {exc}"
                journal.append({"event": "frame", "frame": name, "status": "skipped", "error": msg, "time": time.time()})
                watcher.forget(name)
                skipped.append(name)
                last_activity = time.perf_counter()
                say(f"{name}: SKIPPED unreadable file ({msg})")
                continue
            stem = Path(name).stem if Path(name).stem not in used_stems else name.replace(".", "_")
            used_stems.add(stem)
            res = segment_one(micrograph, engine, amg, pixel_size_source=src, out_dir=frames_dir, stem=stem, overlay=overlay)
            t_read = time.perf_counter()
            latency = t_read - t0
            check = monitor.check(res.masks, micrograph, amg) if monitor is not None else None
            rec: dict[str, Any] = {
                "event": "frame",
                "frame": name,
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
                "median_diameter": _finite(res.summary.median_diameter),
                "unit": res.table.unit,
                "pixel_size_source": src,
            }
            if check is not None:
                rec.update(
                    rewards_s=check.seconds,
                    rewards={n: float(v) for n, v in zip(monitor.names, check.rewards, strict=True)},  # type: ignore[union-attr]
                    drift=check.flagged,
                    below=list(check.below),
                )
            journal.append(rec)
            watcher.forget(name)
            processed.append(name)
            latencies.append(latency)
            last_activity = time.perf_counter()
            line = f"{name}: {len(res.table)} particles, latency {latency:.3f} s (segment {res.timings_s['segment']:.3f} s)"
            if check is not None:
                line += f", rewards {check.seconds:.3f} s"
                if check.flagged:
                    line += f"  DRIFT: {', '.join(check.below)} below tuned level"
            say(line)
            if retuner is not None and check is not None:
                recent.append(micrograph)
                if check.flagged:
                    flagged.append(name)
                    if retuner.start(amg, list(recent)):
                        journal.append({"event": "retune_started", "time": time.time(), "frames": [m.name for m in recent]})
            elif check is not None and check.flagged:
                flagged.append(name)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        if retuner is not None:
            retuner.join(timeout=0)  # daemon thread: never hold the exit for a burst
        wall = time.perf_counter() - t_start
        journal.append({"event": "stop", "time": time.time(), "processed": len(processed), "skipped": len(skipped), "wall_s": wall})
        journal.close()
    return StreamReport(tuple(processed), tuple(skipped), tuple(flagged), already, switches, tuple(latencies), wall, amg, out / LOG_NAME)


def _run_cli(args: argparse.Namespace) -> int:
    rep = run_stream(
        args.directory,
        params=args.params,
        model=args.model,
        out_dir=args.out,
        poll_s=args.poll_s,
        max_frames=args.max_frames,
        idle_timeout_s=args.idle_timeout_s,
        task=args.task,
        drift=not args.no_drift,
        drift_tol=args.drift_tol,
        baseline_frames=args.baseline_frames,
        retune=args.retune,
        pixel_size_nm=args.pixel_size_nm,
        overlay=args.overlay,
        device=args.device,
    )
    lat = np.asarray(rep.latencies_s)
    med = f"{np.median(lat):.3f} s" if lat.size else "n/a"
    print(
        f"processed {len(rep.processed)} frame(s), skipped {len(rep.skipped)}, flagged {len(rep.flagged)}, "
        f"{rep.already_done} already done; median latency {med}; log {rep.log_path}",
        file=sys.stderr,
    )
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar stream``."""
    p = subparsers.add_parser("stream", help="segment frames as they arrive in a folder (with a drift monitor)", description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="folder the frames are written into")
    p.add_argument("--params", default=None, help="best_params.json (default: SAM's defaults)")
    p.add_argument("--model", default="samstar-tiny", help="samstar-tiny or a SAM checkpoint path (default: %(default)s)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: DIRECTORY/samstar_stream)")
    p.add_argument("--poll-s", type=float, default=0.5, help="seconds between folder scans (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--idle-timeout-s", type=float, default=None, help="stop after this long without a new frame")
    p.add_argument("--task", default=None, help="perovskite, ito or auco: rewards and prior of the drift monitor")
    p.add_argument("--no-drift", action="store_true", help="do not compute rewards per frame")
    p.add_argument("--drift-tol", type=float, default=0.1, help="absolute reward drop that flags a frame (default: %(default)s)")
    p.add_argument("--baseline-frames", type=int, default=5, help="frames averaged into the level when the params file has no rewards")
    p.add_argument("--retune", action="store_true", help="re-tune in the background on drift; switch when the new params dominate")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="nm per pixel; overrides the files' calibration")
    p.add_argument("--overlay", action="store_true", help="also write overlay PNGs per frame")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.set_defaults(func=_run_cli)
