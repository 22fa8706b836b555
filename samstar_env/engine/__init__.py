"""MaskEngine: a cached, exact equivalent of SamAutomaticMaskGenerator."""

from samstar_env.engine.maskset import MaskCrops, MaskSet

__all__ = ["MaskCrops", "MaskSet"]

from samstar_env.engine.engine import (  # noqa: E402
    DEFAULT_CACHE_BYTES,
    DEFAULT_STABILITY_OFFSETS,
    DecodeUnit,
    EngineStats,
    MaskEngine,
    decode_units,
)
from samstar_env.engine.image_input import to_sam_image  # noqa: E402
from samstar_env.engine.location import default_cache_dir  # noqa: E402

__all__ += ["DEFAULT_CACHE_BYTES", "DEFAULT_STABILITY_OFFSETS", "DecodeUnit", "EngineStats", "MaskEngine", "decode_units",
            "default_cache_dir", "to_sam_image"]
