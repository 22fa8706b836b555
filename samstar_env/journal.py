"""One append-only JSON-lines journal, one fsynced line per record: :class:`Journal`.

``samstar tune`` (``journal.jsonl``: a header, then one line per evaluation) and ``samstar stream``
(``stream_log.jsonl``: one line per event) keep their restart state in such a file. Layer 0: imports
only the standard library and :mod:`samstar_env.jsonutil`.

Torn lines
----------
A record is one ``write`` of its JSON text and ``"\\n"``, flushed and fsynced before
:meth:`Journal.append` returns, so a crash (``kill -9``, power loss) can cut short only the last line.
The policy for such a **torn last line** (no final newline, or text that is not a JSON object):

- :meth:`Journal.read` skips it with a :class:`RuntimeWarning`; every finished record before it is
  returned, so a resumed run loses none;
- the first :meth:`Journal.append` truncates it away before writing, so a new record never lands
  after garbage on the same line (which would make both unreadable).

A bad line that is *not* the last (the file was edited, or written by an older samstar that appended
after a torn line) is skipped with a warning and left in place: it ends with a newline, so the lines
after it stay readable, and a reader that needs every record (``tune``'s numbered trials) notices
the gap.

Examples
--------
>>> import tempfile, warnings
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> with Journal(path) as j:
...     j.append({"event": "start"})
...     j.append({"event": "frame", "frame": "a.tif"})
>>> with open(path, "a") as fh:
...     _ = fh.write('{"event": "frame", "fra')  # a crash mid-write
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     [r["event"] for r in Journal(path).read()]
['start', 'frame']
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from samstar_env.jsonutil import to_jsonable

__all__ = ["Journal"]


class Journal:
    """Append-only JSON-lines file: one record (a JSON object) per line, durable when appended.

    Parameters
    ----------
    path : str or Path
        The file; created by the first :meth:`append` when missing (its folder must exist).

    Notes
    -----
    Records are converted with :func:`samstar_env.jsonutil.to_jsonable` and written as strict JSON
    (NaN and infinities become ``null``). Appends from several threads are serialized by a lock.
    See the module docstring for the torn-line policy.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()

    def read(self) -> list[dict[str, Any]]:
        """The records in file order (none when the file is missing), skipping bad lines with a warning."""
        records, _ = self._scan()
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line, flushed and fsynced before returning."""
        line = json.dumps(to_jsonable(record), allow_nan=False) + "\n"
        with self._lock:
            fh = self._fh if self._fh is not None else self._open()
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        """Close the file (a later :meth:`append` opens it again)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _open(self) -> IO[str]:
        if self.path.exists():
            _, good_bytes = self._scan(warn=False)
            if good_bytes < self.path.stat().st_size:
                with self.path.open("r+b") as fh:
                    fh.truncate(good_bytes)  # the torn last line: never write after it
        self._fh = self.path.open("a", encoding="utf-8")
        return self._fh

    def _scan(self, *, warn: bool = True) -> tuple[list[dict[str, Any]], int]:
        """The readable records and the length of the file without a torn last line."""
        if not self.path.exists():
            return [], 0
        lines = _lines(self.path.read_bytes())
        records: list[dict[str, Any]] = []
        good_bytes = 0
        for i, raw in enumerate(lines):
            rec = _parse(raw)
            last = i == len(lines) - 1
            if rec is not None and raw.endswith(b"\n"):
                records.append(rec)
            elif last:
                if warn:
                    warnings.warn(f"{self.path}: skipping a torn last line (cut short by a crash); it is removed on the next append", RuntimeWarning, stacklevel=3)
                break
            elif warn:
                warnings.warn(f"{self.path}: skipping unreadable line {i + 1}", RuntimeWarning, stacklevel=3)
            good_bytes += len(raw)
        return records, good_bytes


def _lines(data: bytes) -> list[bytes]:
    # Split on b"\n" only (``splitlines`` would also split on a stray b"\r" in a torn line).
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return rec if isinstance(rec, dict) else None
