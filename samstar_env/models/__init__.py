"""SAM models: checkpoints by path, the shipped samstar-tiny, and its training recipe."""

from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, TinySamConfig, build_tiny_sam, count_parameters

__all__ = ["SAMSTAR_TINY_CONFIG", "TinySamConfig", "build_tiny_sam", "count_parameters"]

from samstar_env.models.registry import (  # noqa: E402
    ModelInfo,
    infer_model_type,
    list_models,
    load_sam,
    model_fingerprint,
    register_model,
    save_samstar_checkpoint,
)

__all__ += ["ModelInfo", "infer_model_type", "list_models", "load_sam", "model_fingerprint", "register_model", "save_samstar_checkpoint"]
