"""SAM models: checkpoints by path, the shipped samstar-tiny, and its training recipe."""

from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, TinySamConfig, build_tiny_sam, count_parameters

__all__ = ["SAMSTAR_TINY_CONFIG", "TinySamConfig", "build_tiny_sam", "count_parameters"]
