"""One conversion of samstar's values to JSON-ready Python: :func:`to_jsonable`.

Layer 0: imports only the standard library and numpy, so every layer can use it. Every file samstar
writes as JSON (journals, results, reports, headers) passes its values through this one function,
so a numpy scalar, a path or a NaN is written the same way everywhere.

Examples
--------
>>> import numpy as np
>>> from pathlib import Path
>>> to_jsonable({"n": np.int64(3), "r": np.array([0.5, np.nan]), "dir": Path("runs/a"), "t": (1, 2)})
{'n': 3, 'r': [0.5, None], 'dir': 'runs/a', 't': [1, 2]}
>>> to_jsonable(float("inf"), non_finite="str")  # a result file's options keep a readable mark
'inf'
>>> to_jsonable(object())
Traceback (most recent call last):
...
TypeError: not JSON serializable: object
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any, *, non_finite: Literal["null", "str"] = "null", fallback: Callable[[Any], Any] | None = None) -> Any:
    """``obj`` as plain JSON types (dict with str keys, list, str, int, float, bool, None).

    Parameters
    ----------
    obj : Any
        Mappings (keys become ``str``), lists and tuples, numpy arrays and scalars (``tolist`` /
        ``item``), paths (``str``), dataclass instances (a dict of their fields) and plain
        JSON values, nested in any way.
    non_finite : {"null", "str"}
        How NaN and infinities are written: ``None`` (``null``; strict JSON, the default), or
        ``str(value)`` (``"nan"``, ``"inf"``, ``"-inf"``).
    fallback : callable, optional
        Applied to any other object (e.g. ``str`` or ``repr``); without it such an object raises.

    Returns
    -------
    Any
        A value ``json.dumps(..., allow_nan=False)`` accepts.

    Raises
    ------
    TypeError
        For an object of another type when no ``fallback`` is given.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, non_finite=non_finite, fallback=fallback) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, non_finite=non_finite, fallback=fallback) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), non_finite=non_finite, fallback=fallback)
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item(), non_finite=non_finite, fallback=fallback)
    if isinstance(obj, float):
        # bool and int are exact; only a float can be NaN or infinite, which strict JSON forbids.
        if math.isfinite(obj):
            return obj
        return None if non_finite == "null" else str(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name), non_finite=non_finite, fallback=fallback) for f in dataclasses.fields(obj)}
    if fallback is not None:
        return fallback(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
