"""The one JSON conversion (samstar_env.jsonutil.to_jsonable)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from samstar_env.jsonutil import to_jsonable


@dataclass(frozen=True)
class _Point:
    x: float
    where: Path


def test_numpy_paths_tuples_and_dataclasses_become_plain_json():
    value = {
        1: np.float32(0.5),
        "ints": np.arange(3),
        "flag": np.bool_(True),
        "path": Path("a/b"),
        "nested": ({"t": (1, 2)},),
        "point": _Point(0.25, Path("p")),
    }
    got = to_jsonable(value)
    assert got == {"1": 0.5, "ints": [0, 1, 2], "flag": True, "path": "a/b", "nested": [{"t": [1, 2]}], "point": {"x": 0.25, "where": "p"}}
    assert type(got["ints"][0]) is int and type(got["flag"]) is bool
    json.dumps(got, allow_nan=False)  # strict JSON


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan"), np.array([np.nan])])
def test_non_finite_floats_become_null_or_str(bad):
    null = to_jsonable(bad)
    assert null is None or null == [None]
    text = to_jsonable(bad, non_finite="str")
    assert text in ("nan", "inf", "-inf", ["nan"])


def test_other_objects_raise_unless_a_fallback_is_given():
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        to_jsonable({"x": object()})
    assert to_jsonable({"f": len}, fallback=repr) == {"f": "<built-in function len>"}
    assert to_jsonable([1.0, "s", None, True]) == [1.0, "s", None, True]  # plain values pass unchanged
