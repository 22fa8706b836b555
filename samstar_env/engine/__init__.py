"""MaskEngine: a cached, exact equivalent of SamAutomaticMaskGenerator."""

from samstar_env.engine.maskset import MaskSet

__all__ = ["MaskSet"]
