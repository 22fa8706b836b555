"""Shipped reference Pareto fronts, one per suite and task, for IGD+ and evaluations-to-target.

A front only means something for the problem it was made on: the same model, images, search space
and rewards. So fronts are stored per suite, ``reference_fronts/<suite>-v<version>/<task>.json``,
with keys ``schema``, ``reward_names`` (objective order), ``front`` (reward vectors, higher is
better), ``problem`` (the suite fields that define the problem) and ``how`` (agents, budgets, seeds,
wall time). A front whose ``problem`` differs from the suite's is not used.
``benchmarks/scripts/make_reference_front.py`` makes them and writes ``README.md`` beside them saying how.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.errors import InputError
from samstar_env.rewards.registry import REWARDS_VERSION

REFERENCE_SCHEMA = "samstar-reference-front/1"
# Suite fields that define the optimization problem (agents, seeds and budget do not).
PROBLEM_FIELDS = ("tasks", "image_size", "n_images", "model", "space", "grids", "version")


def problem_of(suite: Any) -> dict[str, Any]:
    """The part of a suite that defines the problem a front was made on.

    It includes the sha256 of the model's weights, not only its name: retrained weights under the
    same name (samstar-tiny) define another problem, and a front made on the old ones must not be
    compared with runs on the new ones. For the same reason it includes
    :data:`~samstar_env.rewards.REWARDS_VERSION`: the rewards keep their names when their
    definitions change.
    """
    d = suite.to_dict()
    out = {k: d[k] for k in PROBLEM_FIELDS}
    out["model_sha256"] = model_sha256(str(d["model"]))
    out["rewards_version"] = REWARDS_VERSION
    return out


def model_sha256(model: str) -> str | None:
    """sha256 of a registered model's weights (from its registration) or of a checkpoint file; None if unknown."""
    from samstar_env.models.registry import list_models

    for info in list_models():
        if info.name == model:
            return info.expected_sha256()
    path = Path(model)
    if not path.is_file():
        return None
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    # Keyed on mtime and size so a replaced checkpoint is hashed again; a multi-GB SAM is hashed once.
    from samstar_env.models.checkpoint import file_sha256

    return file_sha256(path)


def reference_front_path(suite: Any, task: str, *, root: str | Path | None = None) -> Path:
    """Where the reference front of ``task`` under ``suite`` lives (it may not exist).

    ``root`` defaults to the fronts shipped in the package.
    """
    base = Path(root) if root is not None else Path(str(resources.files("samstar_env.benchmarks") / "reference_fronts"))
    return base / f"{suite.name}-v{suite.version}" / f"{task}.json"


def load_reference_front(
    suite: Any, task: str, *, reward_names: Sequence[str], root: str | Path | None = None
) -> np.ndarray | None:
    """The reference front as an (n, k) array in ``reward_names`` order, or ``None``.

    ``None`` when no front is shipped, or when it was made on another problem or other rewards.
    """
    path = reference_front_path(suite, task, root=root)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != REFERENCE_SCHEMA:
        raise InputError(f"{path}: schema {data.get('schema')!r}, expected {REFERENCE_SCHEMA!r}")
    names = list(data["reward_names"])
    if sorted(names) != sorted(reward_names) or data.get("problem") != problem_of(suite):
        return None
    front = np.asarray(data["front"], np.float64).reshape(-1, len(names))
    return front[:, [names.index(n) for n in reward_names]]


def write_reference_front(path: Path, *, suite: Any, reward_names: Sequence[str], front: np.ndarray, how: dict[str, Any]) -> None:
    """Write a reference front file (used by ``make_reference_front.py``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "schema": REFERENCE_SCHEMA,
                "reward_names": list(reward_names),
                "front": np.asarray(front).tolist(),
                "problem": problem_of(suite),
                "how": how,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
