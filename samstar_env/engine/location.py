"""The one on-disk cache location that tune, the env, bench, reproduce and ``samstar cache`` share.

``SAMSTAR_CACHE`` names the folder; ``SAMSTAR_CACHE=off`` (or ``0``, ``none``) turns the disk cache
off. Unset, it is the platform's user cache folder (``platformdirs.user_cache_dir("samstar")``:
``~/.cache/samstar`` on Linux, ``~/Library/Caches/samstar`` on macOS, ``%LOCALAPPDATA%\\samstar\\Cache``
on Windows). Entries are keyed by model fingerprint, image hash, crop box and point grid (see
:class:`~samstar_env.engine.MaskEngine`), so one folder serves every model and image safely.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SAMSTAR_CACHE"
_OFF = {"off", "0", "none", "false", "no"}


def default_cache_dir() -> Path | None:
    """The disk cache folder, or ``None`` when ``SAMSTAR_CACHE`` turns it off.

    Examples
    --------
    >>> import os
    >>> os.environ["SAMSTAR_CACHE"] = "off"
    >>> default_cache_dir() is None
    True
    >>> del os.environ["SAMSTAR_CACHE"]
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("samstar", appauthor=False))
