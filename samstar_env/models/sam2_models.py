"""SAM 2 models (the optional ``sam2`` extra): recognize, build and load them, and a small random one for tests.

A SAM 2 checkpoint (``sam2.1_hiera_tiny.pt`` ... ``sam2_hiera_large.pt``) is a state dict under
``"model"`` whose image encoder is a Hiera trunk (``image_encoder.trunk.*`` keys). Its configuration is
read off the state dict: the trunk's width (96 for tiny and small, 112 for base+, 144 for large) and
its number of blocks (12 / 16 / 24 / 48) name the Hiera size, and the ``no_obj_embed_spatial`` tensor
tells SAM 2.1 from SAM 2.0. A config name given by the user (``hiera_t``, ``hiera_s``, ``hiera_b+``,
``hiera_l``, optionally prefixed ``sam2.1_`` or ``sam2_``) is checked against it. The model itself
is built by sam2's own ``build_sam2`` from the package's bundled Hydra configs (with the
post-processing options sam2 applies by default), then the weights are loaded strictly.

Nothing is downloaded: ``build_sam2_hf`` and ``from_pretrained`` are never used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from samstar_env.errors import InputError, MissingExtraError
from samstar_env.models.checkpoint import load_state_dict_strict

# Hiera size -> (trunk width, number of blocks), as sam2's bundled configs define them.
SAM2_SIZES: dict[str, tuple[int, int]] = {
    "hiera_t": (96, 12),
    "hiera_s": (96, 16),
    "hiera_b+": (112, 24),
    "hiera_l": (144, 48),
}
SAM2_VERSIONS = ("sam2.1", "sam2")
_TRUNK_KEY = "image_encoder.trunk.patch_embed.proj.weight"


def require_sam2() -> None:
    """Raise :class:`~samstar_env.errors.MissingExtraError` with the install line when ``sam2`` is absent."""
    try:
        import sam2  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "SAM 2 models need the optional `sam2` package: pip install -e \".[sam2]\" (a source build; "
            "its CUDA extension is optional)"
        ) from exc


def is_sam2_model(model: Any) -> bool:
    """Whether ``model`` is a SAM 2 model (``sam2.modeling.sam2_base.SAM2Base``), without importing sam2 needlessly."""
    return any(c.__name__ == "SAM2Base" and c.__module__.startswith("sam2.") for c in type(model).__mro__)


def is_sam2_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether a state dict is SAM 2's (a Hiera trunk under ``image_encoder.trunk``).

    >>> is_sam2_state_dict({"image_encoder.trunk.patch_embed.proj.weight": None})
    True
    >>> is_sam2_state_dict({"image_encoder.pos_embed": None})
    False
    """
    return _TRUNK_KEY in state_dict


def describe_sam2_state_dict(state_dict: Mapping[str, Any]) -> tuple[int, int, str]:
    """(trunk width, number of Hiera blocks, ``"sam2.1"`` or ``"sam2"``) of a SAM 2 state dict."""
    width = int(state_dict[_TRUNK_KEY].shape[0])
    blocks = {m.group(1) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    version = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return width, len(blocks), version


def parse_sam2_config(name: str) -> tuple[str | None, str]:
    """(version or None, size) of a config name: ``hiera_t``, ``sam2.1_hiera_l``, ``sam2_hiera_b+``...

    >>> parse_sam2_config("sam2.1_hiera_b+")
    ('sam2.1', 'hiera_b+')
    >>> parse_sam2_config("hiera_t")
    (None, 'hiera_t')
    """
    text = str(name).strip().lower().removesuffix(".yaml")
    version = next((v for v in SAM2_VERSIONS if text.startswith(v + "_")), None)
    size = text[len(version) + 1:] if version else text
    if size not in SAM2_SIZES:
        raise InputError(f"unknown SAM 2 config {name!r}; expected one of {sorted(SAM2_SIZES)}, optionally prefixed "
                         f"'sam2.1_' or 'sam2_' (e.g. 'sam2.1_hiera_t')")
    return version, size


def infer_sam2_config(state_dict: Mapping[str, Any]) -> str | None:
    """The bundled config (``"sam2.1_hiera_t"``...) that a SAM 2 state dict matches, or None."""
    width, blocks, version = describe_sam2_state_dict(state_dict)
    size = next((s for s, (w, b) in SAM2_SIZES.items() if (w, b) == (width, blocks)), None)
    return None if size is None else f"{version}_{size}"


def _config_file(config: str) -> str:
    version, size = parse_sam2_config(config)
    version = version or "sam2.1"
    return f"configs/{version}/{version}_{size}.yaml"


def build_sam2_model(config: str, *, overrides: Sequence[str] = (), device: str | torch.device = "cpu") -> torch.nn.Module:
    """A random-weight SAM 2 from sam2's bundled config (``build_sam2``, eval mode, sam2's default post-processing)."""
    require_sam2()
    from sam2.build_sam import build_sam2

    return build_sam2(_config_file(config), ckpt_path=None, device=str(device), mode="eval",
                      hydra_overrides_extra=list(overrides))


def load_sam2_state_dict(state_dict: Mapping[str, Any], path: Path, *, config: str | None,
                         device: str | torch.device) -> torch.nn.Module:
    """Build the SAM 2 a state dict describes (checked against ``config`` when given) and load it strictly."""
    require_sam2()
    width, blocks, version = describe_sam2_state_dict(state_dict)
    inferred = infer_sam2_config(state_dict)
    what = f"a Hiera trunk of width {width} with {blocks} blocks ({version})"
    if config is not None:
        want_version, size = parse_sam2_config(config)
        if SAM2_SIZES[size] != (width, blocks) or (want_version is not None and want_version != version):
            raise InputError(f"{path}: config {config!r} but the state dict holds {what}"
                             + (f", which is {inferred}" if inferred else ", which matches no bundled SAM 2 config"))
    if inferred is None:
        raise InputError(f"{path}: the SAM 2 state dict holds {what}, which matches no bundled config "
                         f"({', '.join(f'{s}: width {w}, {b} blocks' for s, (w, b) in SAM2_SIZES.items())})")
    model = build_sam2_model(inferred, device="cpu")
    load_state_dict_strict(model, state_dict, path, inferred)
    return model.eval().to(device)


# A SAM 2 whose architecture is a bundled config changed by Hydra overrides (a small test model, a
# fine-tuned variant) is saved with its recipe, so that load_sam can rebuild it without guessing.
SAM2_FORMAT = "samstar-sam2/1"


def save_sam2_checkpoint(model: torch.nn.Module, path: str | Path, *, config: str, overrides: Sequence[str] = ()) -> Path:
    """Write ``{"format": "samstar-sam2/1", "config", "overrides", "model": state_dict}`` (read by ``load_sam``)."""
    parse_sam2_config(config)
    path = Path(path)
    torch.save({"format": SAM2_FORMAT, "config": str(config), "overrides": list(overrides), "model": model.state_dict()}, path)
    return path


def load_sam2_checkpoint(obj: Mapping[str, Any], path: Path, *, device: str | torch.device) -> torch.nn.Module:
    """Rebuild a model saved by :func:`save_sam2_checkpoint` (config and overrides) and load its weights strictly."""
    overrides = obj.get("overrides", [])
    if not isinstance(obj.get("config"), str) or not isinstance(overrides, list):
        raise InputError(f"{path}: a {SAM2_FORMAT} checkpoint needs a 'config' name and a list of 'overrides'")
    model = build_sam2_model(obj["config"], overrides=[str(o) for o in overrides], device="cpu")
    load_state_dict_strict(model, obj["model"], path, f"{obj['config']} (overrides {overrides})")
    return model.eval().to(device)


# A SAM 2 small enough for tests on a CPU: the tiny config's modules with a 16-wide, 5-block Hiera
# and a 256-px input (the decoder's low-resolution masks are 64², not 256²).
TINY_SAM2_OVERRIDES: tuple[str, ...] = (
    "++model.image_size=256",
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.memory_attention.num_layers=1",
)


def build_tiny_sam2(*, seed: int = 0) -> torch.nn.Module:
    """A small random-weight SAM 2 built from sam2's own modules (sam2.1 tiny config, shrunk), in eval mode.

    Its input is 256 px, so ``SAM2ImagePredictor``'s feature sizes (fixed for 1024 px) must follow
    :func:`feature_sizes`, as the engine's do.
    """
    torch.manual_seed(int(seed))
    return build_sam2_model("sam2.1_hiera_t", overrides=TINY_SAM2_OVERRIDES)


def feature_sizes(model: Any) -> list[tuple[int, int]]:
    """The backbone feature sizes of a SAM 2 at its input size (stride 4, 8, 16): SAM2ImagePredictor's
    ``_bb_feat_sizes``, which it fixes at 1024 px's [(256, 256), (128, 128), (64, 64)]."""
    side = int(model.image_size)
    return [(side // 4, side // 4), (side // 8, side // 8), (side // 16, side // 16)]


def sam2_generator(model: Any, **kwargs: Any) -> Any:
    """``SAM2AutomaticMaskGenerator(model, **kwargs)`` with its predictor's feature sizes set for the model's
    input size (:func:`feature_sizes`; sam2 1.1 fixes them for 1024 px): the reference the engine equals."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(model, **kwargs)
    gen.predictor._bb_feat_sizes = feature_sizes(model)
    return gen


@functools.lru_cache(maxsize=1)
def hole_filling_available() -> bool:
    """Whether sam2's CUDA extension is built: without it SAM 2 skips the low-resolution hole and
    island removal that ``min_mask_region_area`` asks for (it warns and carries on). Asked once per
    process: Python does not remember a failed import, and the engine asks on every call."""
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        return False
    return True
