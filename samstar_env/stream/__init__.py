"""Segment frames as they arrive in a folder: ``samstar stream DIR --params best_params.json``.

Each stable new frame is segmented with the tuned parameters, its label TIFF and particle table are
written, and one fsynced journal line records it, so a restarted stream never processes a frame
twice. A drift monitor scores every frame with the task's physics rewards and flags the frames that
fall below the tuned level; with ``--retune`` a background burst searches the cheap parameters and
switches to ones that Pareto-dominate.

The parts, one job each:

- :mod:`~samstar_env.stream.watch`: which files are frames, their order, when they are ready;
- :mod:`~samstar_env.stream.drift`: the drift monitor and the tuned level of a params file;
- :mod:`~samstar_env.stream.retune`: the background re-tuning bursts;
- :mod:`~samstar_env.stream.run`: :class:`StreamConfig` and the run loop, :func:`run_stream`;
- :mod:`~samstar_env.stream.cli`: the ``samstar stream`` options.

Speed
-----
Each frame costs one cold decode at the given parameters (a
:class:`~samstar_env.engine.MaskEngine`, faster than a ``SamAutomaticMaskGenerator`` call and
bounded in memory; :func:`~samstar_env.segmentation.resolve_engine`), plus reading the file, the
particle table and writing the label TIFF and CSV (milliseconds; ``read_s``, ``measure_s``,
``write_s`` in the log). The drift monitor's rewards are extra, logged as ``rewards_s`` and excluded
from ``latency_s``; overlays are off unless ``--overlay``. ``benchmarks/scripts/bench_stream.py``
measures frames per second and the ratio to a bare AMG call.

Examples
--------
>>> from samstar_env.stream import StreamConfig
>>> StreamConfig("frames").out.as_posix()  # log, journal and per-frame files
'frames/samstar_stream'
"""

from samstar_env.stream.drift import DriftCheck, DriftMonitor, make_monitor, read_params_file
from samstar_env.stream.retune import CHEAP_PARAMS, RetuneOutcome, Retuner
from samstar_env.stream.run import LOG_NAME, StreamConfig, StreamReport, run_stream
from samstar_env.stream.watch import IMAGE_SUFFIXES, FolderWatcher, is_candidate, natural_key

__all__ = [
    "CHEAP_PARAMS",
    "IMAGE_SUFFIXES",
    "LOG_NAME",
    "DriftCheck",
    "DriftMonitor",
    "FolderWatcher",
    "RetuneOutcome",
    "Retuner",
    "StreamConfig",
    "StreamReport",
    "is_candidate",
    "make_monitor",
    "natural_key",
    "read_params_file",
    "run_stream",
]
