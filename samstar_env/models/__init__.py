"""SAM models: checkpoints by path, the shipped samstar-tiny, and its training recipe (``training/``)."""

from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, TinySamConfig, build_tiny_sam, count_parameters

__all__ = ["SAMSTAR_TINY_CONFIG", "TinySamConfig", "build_tiny_sam", "count_parameters"]

from samstar_env.models.checkpoint import SAMSTAR_FORMAT, load_checkpoint, save_checkpoint  # noqa: E402
from samstar_env.models.registry import (  # noqa: E402
    ModelInfo,
    infer_model_type,
    list_models,
    load_sam,
    model_fingerprint,
    register_model,
)

__all__ += ["SAMSTAR_FORMAT", "load_checkpoint", "save_checkpoint"]
__all__ += ["ModelInfo", "infer_model_type", "list_models", "load_sam", "model_fingerprint", "register_model"]
