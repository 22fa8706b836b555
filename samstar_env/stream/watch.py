"""Which files of the stream folder are frames, in which order, and when they are ready to read.

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

Examples
--------
>>> sorted(["f10.tif", "f9.tif", "f1.tif"], key=natural_key)
['f1.tif', 'f9.tif', 'f10.tif']
>>> [is_candidate(Path(n)) for n in ("a.tif", ".a.tif", "a.tif.part", "notes.txt")]
[True, False, False, False]
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_SUFFIXES", "FolderWatcher", "is_candidate", "natural_key"]

IMAGE_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".ser", ".mrc"})
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically (``f9`` < ``f10``)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def is_candidate(path: Path) -> bool:
    """An image file that is not hidden and not a partial/temporary name."""
    n = path.name
    return not n.startswith(".") and not n.lower().endswith(_PARTIAL_SUFFIXES) and path.suffix.lower() in IMAGE_SUFFIXES


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
