"""Load a measurement script of ``benchmarks/scripts/`` by its path (the folder is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: The scripts' folder: run as ``python benchmarks/scripts/NAME.py``, never installed.
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts"


def load_script(name: str) -> ModuleType:
    """The module ``benchmarks/scripts/<name>.py``, imported once (importing runs nothing but definitions).

    It is registered in ``sys.modules`` as ``benchmark_script_<name>`` (dataclasses look their module up
    there), and the scripts' folder is on ``sys.path`` while it loads, as it is for ``python
    benchmarks/scripts/NAME.py``, so its ``from script_args import ...`` finds the sibling file.
    """
    key = f"benchmark_script_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, SCRIPTS_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(SCRIPTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    sys.path.insert(0, str(SCRIPTS_DIR))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    finally:
        sys.path.remove(str(SCRIPTS_DIR))
    return module
