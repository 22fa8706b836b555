"""Byte-bounded, thread-safe caches: an in-memory LRU and an optional on-disk store.

The in-memory :class:`LruCache` holds image embeddings and decoded proposals; its bound is in bytes
because entries differ by orders of magnitude (a 4 MB ViT-H embedding vs. a few kB of proposals of a
tiny crop). The :class:`DiskCache` lets separate benchmark processes share work; each file carries a
versioned header with its full key and a sha256 of its payload, so a truncated, corrupted or stale
file (another format version, a hash-prefix collision) is detected, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the meaning or layout of anything stored on disk changes: old files then read as stale.
DISK_FORMAT_VERSION = 3
_MAGIC = b"SAMSTARC"


@dataclass(frozen=True)
class CacheInfo:
    """Counters of a cache (a snapshot).

    Parameters
    ----------
    hits, misses, evictions : int
        Lookups that found / did not find an entry, and entries dropped to respect the bound.
    entries, nbytes, max_bytes : int
        Current number of entries, their total size, and the bound.
    """

    hits: int
    misses: int
    evictions: int
    entries: int
    nbytes: int
    max_bytes: int


class LruCache:
    """A thread-safe least-recently-used cache bounded by the total size of its values.

    Parameters
    ----------
    max_bytes : int
        Bound on the summed ``nbytes`` of the entries. An entry larger than the bound is not kept.

    Examples
    --------
    >>> c = LruCache(max_bytes=10)
    >>> c.put("a", "x", nbytes=6); c.put("b", "y", nbytes=6)
    >>> c.get("a") is None, c.get("b")
    (True, 'y')
    """

    def __init__(self, *, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"LruCache.max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.RLock()
        self._hits = self._misses = self._evictions = 0

    def get(self, key: Hashable) -> Any | None:
        """The value for ``key`` (marked most recently used), or ``None``."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self._misses += 1
                return None
            self._data.move_to_end(key)
            self._hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, *, nbytes: int) -> None:
        """Insert or replace ``key`` (also used to re-account an entry that grew), then evict LRU entries."""
        nbytes = int(nbytes)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._nbytes -= old[1]
            if nbytes > self.max_bytes:
                return
            self._data[key] = (value, nbytes)
            self._nbytes += nbytes
            while self._nbytes > self.max_bytes:
                _, (_, size) = self._data.popitem(last=False)
                self._nbytes -= size
                self._evictions += 1

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """Total size of the entries held."""
        with self._lock:
            return self._nbytes

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()
            self._nbytes = 0

    def info(self) -> CacheInfo:
        """A snapshot of the counters."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, self._evictions, len(self._data), self._nbytes, self.max_bytes)


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class DiskCache:
    """Arrays stored on disk under string keys, safe against corrupted, stale and half-written files.

    File layout: ``SAMSTARC`` magic, a little-endian uint32 header length, a JSON header
    ``{"version", "key", "sha256", "nbytes", "arrays"}``, then the arrays' raw bytes, each at a
    64-byte aligned offset that ``arrays`` lists with its dtype and shape. Loading reads the file
    once, checks the sha256 and returns read-only views of it (no copy: an ``.npz`` payload cost a
    second copy and zipfile's own CRC pass, 0.23 s for a 140 MB entry). Writes go to a temporary
    file in the same folder followed by :func:`os.replace`, so readers in other processes never see
    a partial file. Files of another format version (1: ``.npz`` payloads; 2: run lengths only) read
    as stale and are recomputed.

    Parameters
    ----------
    directory : path
        Folder of the cache (created when missing).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = self.misses = self.rejected = 0

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.directory / f"{_key_digest(key)[:40]}.npc"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or ``None`` (missing, corrupted or stale: then deleted)."""
        path = self.path_for(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                self.misses += 1
            return None
        reason = None
        try:
            if blob[:8] != _MAGIC:
                raise ValueError("bad magic")
            (hlen,) = struct.unpack("<I", blob[8:12])
            header = json.loads(blob[12 : 12 + hlen].decode())
            payload = blob[12 + hlen :]
            if header.get("version") != DISK_FORMAT_VERSION:
                reason = f"format version {header.get('version')} != {DISK_FORMAT_VERSION}"
            elif header.get("key") != key:
                reason = "key mismatch"
            elif header.get("nbytes") != len(payload) or header.get("sha256") != hashlib.sha256(payload).hexdigest():
                reason = "checksum mismatch"
            else:
                arrays = _views(payload, header["arrays"])
                with self._lock:
                    self.hits += 1
                return arrays
        except Exception as exc:  # any parse failure means a corrupted file; recompute it
            reason = f"unreadable ({type(exc).__name__}: {exc})"
        warnings.warn(f"samstar disk cache: discarding {path.name} ({reason}); recomputing", RuntimeWarning, stacklevel=2)
        with self._lock:
            self.rejected += 1
            self.misses += 1
        try:
            path.unlink()
        except OSError:
            pass
        return None

    @staticmethod
    def scan(directory: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any] | None]]:
        """Every entry file of ``directory`` with its header (``None`` when unreadable), payloads unread."""
        out: list[tuple[Path, dict[str, Any] | None]] = []
        for path in sorted(Path(directory).glob("*.npc")):
            header = None
            try:
                with open(path, "rb") as fh:
                    head = fh.read(12)
                    if head[:8] == _MAGIC:
                        (hlen,) = struct.unpack("<I", head[8:12])
                        header = json.loads(fh.read(hlen).decode())
            except (OSError, ValueError, struct.error):
                header = None
            out.append((path, header if isinstance(header, dict) else None))
        return out

    def save(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store ``arrays`` under ``key`` atomically (failures to write only warn: the cache is optional)."""
        specs, parts, offset = {}, [], 0
        for name, value in arrays.items():
            a = np.ascontiguousarray(value)
            if a.dtype.hasobject:
                raise TypeError(f"DiskCache.save: array {name!r} has dtype object; only plain arrays are stored")
            pad = (-offset) % 64
            parts.append(b"\0" * pad)
            offset += pad
            specs[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes}
            parts.append(a.tobytes())
            offset += a.nbytes
        payload = b"".join(parts)
        header = json.dumps(
            {"version": DISK_FORMAT_VERSION, "key": key, "sha256": hashlib.sha256(payload).hexdigest(), "nbytes": len(payload),
             "arrays": specs}
        ).encode()
        path = self.path_for(key)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".npc")
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<I", len(header)) + header + payload)
            os.replace(tmp, path)
        except OSError as exc:
            warnings.warn(f"samstar disk cache: could not write {path} ({exc})", RuntimeWarning, stacklevel=2)


def _views(payload: bytes, specs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in specs.items():
        dtype = np.dtype(spec["dtype"])
        count = int(np.prod(spec["shape"], dtype=np.int64))
        if int(spec["offset"]) + count * dtype.itemsize > len(payload):
            raise ValueError(f"array {name!r} runs past the payload")
        out[name] = np.frombuffer(payload, dtype=dtype, count=count, offset=int(spec["offset"])).reshape(spec["shape"])
    return out


class KeyedLocks:
    """One lock per key, so that concurrent callers needing the same entry compute it once."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: Hashable) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock


def get_or_compute(
    key: str,
    *,
    memory: LruCache,
    locks: KeyedLocks,
    compute: Callable[[], tuple[Any, int]],
) -> tuple[Any, bool]:
    """Look ``key`` up in ``memory``; on a miss run ``compute`` once even under concurrency.

    Returns
    -------
    (value, hit)
        ``hit`` is False when this call ran ``compute``.
    """
    value = memory.get(key)
    if value is not None:
        return value, True
    with locks(key):
        value = memory.get(key)
        if value is not None:
            return value, True
        value, nbytes = compute()
        memory.put(key, value, nbytes=nbytes)
        return value, False
