"""Where real data live: the ``SAMSTAR_DATA`` setting.

Real micrographs are never copied into the repo; code finds them through ``SAMSTAR_DATA`` (a folder
holding ``emps-train/`` and ``emps-dev/``), defaulting to ``../shared/data`` beside the repo checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from samstar_env.errors import MissingFileError

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root(*, required: bool = False) -> Path | None:
    """The data root, or ``None`` when it does not exist.

    Parameters
    ----------
    required : bool
        Raise ``FileNotFoundError`` (naming the setting) instead of returning ``None``.
    """
    env = os.environ.get("SAMSTAR_DATA")
    cand = Path(env).expanduser() if env else _REPO_ROOT.parent / "shared" / "data"
    if cand.is_dir():
        return cand
    if required:
        raise MissingFileError(
            f"data root {cand} not found: set SAMSTAR_DATA to a folder holding emps-train/ and emps-dev/"
        )
    return None


def dataset_dir(name: str) -> Path:
    """``data_root() / name`` (e.g. ``"emps-dev"``), with a clear error when missing."""
    root = data_root(required=True)
    assert root is not None
    path = root / name
    if not path.is_dir():
        raise MissingFileError(f"dataset {name!r} not found under {root} (SAMSTAR_DATA); expected a folder {path}")
    return path
