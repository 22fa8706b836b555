"""MaskEngine: a cached, exact equivalent of SamAutomaticMaskGenerator."""

from samstar_env.engine.maskset import MaskSet

__all__ = ["MaskSet"]

from samstar_env.engine.engine import DEFAULT_CACHE_BYTES, DEFAULT_STABILITY_OFFSETS, EngineStats, MaskEngine  # noqa: E402
from samstar_env.engine.image_input import to_sam_image  # noqa: E402

__all__ += ["DEFAULT_CACHE_BYTES", "DEFAULT_STABILITY_OFFSETS", "EngineStats", "MaskEngine", "to_sam_image"]
