"""Shipped reference Pareto fronts, one per task, for IGD+ and evaluations-to-target.

A reference front is a JSON file ``reference_fronts/<task>.json`` with keys ``reward_names``
(objective order), ``front`` (list of reward vectors, higher is better) and ``how`` (how it was made:
agent, budget, seeds, model, image size). ``benchmarks/make_reference_front.py`` makes them; the
Markdown file beside each says how it was made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_SCHEMA = "samstar-reference-front/1"


def reference_front_path(task: str) -> Path:
    """Where the shipped reference front of ``task`` lives (it may not exist)."""
    return Path(str(resources.files("samstar_env.benchmarks") / "reference_fronts" / f"{task}.json"))


def load_reference_front(task: str, *, reward_names: Sequence[str]) -> np.ndarray | None:
    """The reference front of ``task`` as an (n, k) array in ``reward_names`` order, or ``None``.

    ``None`` when no front is shipped for the task, or when it was made with other rewards (a
    front over different objectives cannot be compared).
    """
    path = reference_front_path(task)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != REFERENCE_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {REFERENCE_SCHEMA!r}")
    names = list(data["reward_names"])
    if sorted(names) != sorted(reward_names):
        return None
    front = np.asarray(data["front"], np.float64).reshape(-1, len(names))
    return front[:, [names.index(n) for n in reward_names]]


def write_reference_front(path: Path, *, reward_names: Sequence[str], front: np.ndarray, how: dict[str, Any]) -> None:
    """Write a reference front file (used by ``make_reference_front.py``)."""
    Path(path).write_text(
        json.dumps(
            {"schema": REFERENCE_SCHEMA, "reward_names": list(reward_names), "front": np.asarray(front).tolist(), "how": how},
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
