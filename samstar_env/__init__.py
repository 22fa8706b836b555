"""samstar: task-adaptive Segment Anything for microscopy (SAM*).

Heavy submodules are imported lazily so that ``import samstar_env`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY = {
    "AmgParams": "samstar_env.params",
    "ParamSpace": "samstar_env.params",
    "Micrograph": "samstar_env.data.micrograph",
    "PhysicsPrior": "samstar_env.data.micrograph",
    "MaskSet": "samstar_env.engine.maskset",
    "SamStarEnv": "samstar_env.env",
    "make_env_from_toml": "samstar_env.registration",
    "segment": "samstar_env.segmentation",
    "load_policy": "samstar_env.policy.policy_file",
}


# Registers the samstar/ Gymnasium ids (imports gymnasium only; the env itself stays lazy).
from samstar_env import registration as _registration  # noqa: E402,F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'samstar_env' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
