"""The one JSON-lines journal (samstar_env.journal): durable appends, resume, torn last lines."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from samstar_env.journal import Journal


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_append_writes_one_line_per_record_and_reads_back(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"kind": "header", "format": "x/1"})
        j.append({"kind": "trial", "index": 0, "rewards": np.array([0.5, 0.25]), "n": np.int64(3), "dir": tmp_path})
    assert path.read_bytes().count(b"\n") == 2
    recs = Journal(path).read()
    assert recs == _lines(path)
    assert recs[1] == {"kind": "trial", "index": 0, "rewards": [0.5, 0.25], "n": 3, "dir": str(tmp_path)}


def test_missing_file_reads_as_empty(tmp_path):
    assert Journal(tmp_path / "none.jsonl").read() == []


def test_append_is_fsynced_before_returning(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append({"event": "a"})
    # Durable and complete on disk before append returned, with the file still open.
    assert len(synced) == 1 and _lines(path) == [{"event": "a"}]
    j.append({"event": "b"})
    assert len(synced) == 2
    j.close()


def test_non_finite_values_are_written_as_null(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"median": math.nan, "r": np.array([np.inf, 1.0])})
    assert "NaN" not in path.read_text() and _lines(path) == [{"median": None, "r": [None, 1.0]}]


@pytest.mark.parametrize("torn", ['{"event": "frame", "frame": "b.t', '{"event": "frame"}', "\0\0\0\0"])
def test_torn_last_line_is_skipped_with_a_warning_and_cut_before_appending(tmp_path, torn):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"event": "frame", "frame": "a.tif"})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(torn)  # a crash mid-write: no newline (even a complete object is unfinished without it)
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert Journal(path).read() == [{"event": "frame", "frame": "a.tif"}]  # no finished record lost
    # Resume: the next record starts on a line of its own, never after the garbage.
    with Journal(path) as j:
        j.append({"event": "frame", "frame": "c.tif"})
    assert _lines(path) == [{"event": "frame", "frame": "a.tif"}, {"event": "frame", "frame": "c.tif"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Journal(path).read()) == 2  # the file is clean again


def test_resume_continues_the_same_file(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        for i in range(3):
            j.append({"index": i})
    with Journal(path) as j:  # a second process: reads, then appends
        assert [r["index"] for r in j.read()] == [0, 1, 2]
        j.append({"index": 3})
    assert [r["index"] for r in Journal(path).read()] == [0, 1, 2, 3]


def test_bad_line_before_the_end_is_skipped_and_kept(tmp_path):
    # e.g. written by an older samstar that appended after a torn line: the later lines stay readable.
    path = tmp_path / "j.jsonl"
    path.write_text('{"i": 0}\n{"i": 1, "tor{"i": 2}\n{"i": 3}\n', encoding="utf-8")
    with pytest.warns(RuntimeWarning, match="unreadable line 2"):
        assert Journal(path).read() == [{"i": 0}, {"i": 3}]
    with Journal(path) as j:
        j.append({"i": 4})
    assert path.read_text(encoding="utf-8").count("\n") == 4  # nothing was cut


def test_unserializable_record_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"i": 0})
        with pytest.raises(TypeError, match="not JSON serializable"):
            j.append({"i": object()})
    assert _lines(path) == [{"i": 0}]
