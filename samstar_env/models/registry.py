"""Load any SAM checkpoint (or a registered name) into a ``segment_anything`` ``Sam``.

Accepted checkpoints:

- the official ViT-H / ViT-L / ViT-B files, by path; the type is inferred from the state dict (ViT
  width 1280 / 1024 / 768 and 32 / 24 / 12 blocks) unless ``model_type`` is given;
- any plain SAM state dict (e.g. micro-sam's fine-tuned SAMs), also wrapped under ``"model"``,
  ``"state_dict"`` or ``"model_state"`` and with a ``module.`` or ``sam.`` key prefix;
- samstar's self-describing checkpoints for small models:
  ``{"format": "samstar-sam/1", "config": TinySamConfig.to_dict(), "model": state_dict}``, read and
  rebuilt by :mod:`samstar_env.models.checkpoint` (which also writes them);
- registered names (:func:`register_model`, :func:`list_models`), e.g. ``"samstar-tiny"``, whose
  sha256 is checked at load;
- SAM 2 / 2.1 checkpoints (Hiera tiny, small, base+, large), by path, with the ``sam2`` extra: the
  configuration is read off the state dict, or checked against ``model_type="hiera_t"`` etc.
  (:mod:`samstar_env.models.sam2_models`); the result is a ``sam2`` ``SAM2Base``. A SAM 2 of another
  architecture is saved with its config and Hydra overrides (``save_sam2_checkpoint``, format
  ``samstar-sam2/1``).

Nothing is ever downloaded: this workplace has no model hub, so a missing file is an error that says
where the weights were expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam

from samstar_env.errors import InputError, MissingFileError
from samstar_env.models.checkpoint import (
    SAMSTAR_FORMAT,
    file_sha256,
    is_samstar_checkpoint,
    load_state_dict_strict,
    model_from_checkpoint,
    read_checkpoint,
    unwrap_state_dict,
)
from samstar_env.models.sam2_models import (
    SAM2_FORMAT,
    SAM2_SIZES,
    is_sam2_model,
    is_sam2_state_dict,
    load_sam2_checkpoint,
    load_sam2_state_dict,
    parse_sam2_config,
)
from samstar_env.params import AmgParams, Sam2AmgParams

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# ViT width and depth of the three official SAM image encoders.
MODEL_TYPES: dict[str, tuple[int, int]] = {"vit_h": (1280, 32), "vit_l": (1024, 24), "vit_b": (768, 12)}


@dataclass(frozen=True)
class ModelInfo:
    """A registered model.

    Parameters
    ----------
    name : str
        Registry name.
    path : Path
        Checkpoint file.
    sha256 : str or None
        Expected sha256 of the file, or of the file named ``<path>.sha256`` when this is ``None``
        and that file exists (read at load time, so weights trained later are checked too).
    description : str
        One line for listings.
    operating_point : mapping, optional
        The AMG parameters (``AmgParams.to_dict()`` keys) the model is meant to be used with when
        a user gives none. ``None``: read ``<path stem>.operating_point.json`` beside the weights
        when it exists (written by ``benchmarks/scripts/operating_point.py``), else none.
    """

    name: str
    path: Path
    sha256: str | None = None
    description: str = ""
    operating_point: Mapping[str, Any] | None = None

    @property
    def available(self) -> bool:
        """Whether the checkpoint file exists."""
        return self.path.is_file()

    def expected_sha256(self) -> str | None:
        """The checksum to verify, from the registration or the ``.sha256`` file beside the weights."""
        if self.sha256 is not None:
            return self.sha256.lower()
        side = self.path.with_name(self.path.name + ".sha256")
        if side.is_file():
            # sha256sum format ("<hex>  <file>") or the bare digest.
            token = side.read_text(encoding="utf-8").split()
            return token[0].lower() if token else None
        return None

    def operating_point_file(self) -> Path:
        """Where a measured operating point of this model is kept (beside the weights)."""
        return self.path.with_name(self.path.stem + ".operating_point.json")

    def recommended_params(self) -> AmgParams | None:
        """The model's recommended AMG parameters, or ``None`` when it has none."""
        if self.operating_point is not None:
            return AmgParams.from_dict(self.operating_point)
        side = self.operating_point_file()
        if not side.is_file():
            return None
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
            return AmgParams.from_dict(data["params"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{side}: not an operating-point file (expected JSON with a 'params' mapping of AmgParams): {exc}") from exc


_REGISTRY: dict[str, ModelInfo] = {}
_REGISTRY_LOCK = threading.Lock()


def register_model(
    name: str,
    path: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    description: str = "",
    operating_point: Mapping[str, Any] | None = None,
) -> ModelInfo:
    """Register (or replace) a named checkpoint.

    Parameters
    ----------
    name : str
        Name accepted by :func:`load_sam`.
    path : path
        Checkpoint file (need not exist yet).
    sha256 : str, optional
        Expected checksum; by default read from ``<path>.sha256`` when present.
    description : str
        One line for :func:`list_models`.
    operating_point : mapping, optional
        AMG parameters to use when none are given (validated now); by default read from
        ``<path stem>.operating_point.json`` beside the weights when present.

    Returns
    -------
    ModelInfo
    """
    if name in MODEL_TYPES:
        raise ValueError(f"register_model: {name!r} is a SAM model type, not a usable model name")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"register_model: sha256 for {name!r} must be 64 hex digits, got {sha256!r}")
    if operating_point is not None:
        AmgParams.from_dict(operating_point)  # a bad point fails at registration, not at first use
    info = ModelInfo(name=name, path=Path(path), sha256=sha256, description=description, operating_point=operating_point)
    with _REGISTRY_LOCK:
        _REGISTRY[name] = info
    return info


def list_models() -> list[ModelInfo]:
    """The registered models, sorted by name."""
    with _REGISTRY_LOCK:
        return [_REGISTRY[k] for k in sorted(_REGISTRY)]


register_model(
    "samstar-tiny",
    WEIGHTS_DIR / "samstar_tiny.pt",
    description="1.2M-parameter SAM (ViT 4x128, 256-px input, decoder width 64) trained on samstar's synthetic micrographs",
)


def recommended_params(model: str | os.PathLike[str] | Any, *, backbone: str = "sam1") -> tuple[AmgParams, str]:
    """The AMG parameters to use with ``model`` when the user gives none, and where they come from.

    A registered model (by name, or by the path of its weights) with an operating point gets that
    point; anything else (a SAM checkpoint, an in-memory model) gets SAM's defaults, which is what
    SAM's own checkpoints were tuned for: SAM 2's (:class:`~samstar_env.params.Sam2AmgParams`) for a
    SAM 2 model (in memory, or ``backbone="sam2"`` for a path, whose file is not read here).

    Parameters
    ----------
    model : str, path or torch.nn.Module
        What :func:`load_sam` would load.

    Returns
    -------
    (AmgParams, str)
        The parameters and a short description of their source for logs and summaries.

    Examples
    --------
    >>> params, source = recommended_params("/no/such/sam_vit_b.pth")
    >>> params == AmgParams(), source
    (True, "SAM's defaults")
    """
    info = None
    if isinstance(model, str) and model in _REGISTRY:
        info = _REGISTRY[model]
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model).resolve()
        with _REGISTRY_LOCK:
            info = next((i for i in _REGISTRY.values() if i.path.resolve() == path), None)
    point = info.recommended_params() if info is not None else None
    if info is None or point is None:
        if backbone == "sam2" or is_sam2_model(model):
            return Sam2AmgParams(), "SAM 2's defaults"
        return AmgParams(), "SAM's defaults"
    return point, f"{info.name}'s recommended operating point ({info.operating_point_file().name})"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_state_dict(state_dict: Mapping[str, Any]) -> tuple[int | None, int]:
    """(ViT embedding width, number of ViT blocks) of a SAM state dict (width ``None`` if absent)."""
    pos = state_dict.get("image_encoder.pos_embed")
    width = int(pos.shape[-1]) if pos is not None else None
    blocks = {m.group(1) for k in state_dict if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))}
    return width, len(blocks)


def infer_model_type(state_dict: Mapping[str, Any]) -> str | None:
    """``"vit_h"``, ``"vit_l"`` or ``"vit_b"`` from the encoder's width and depth; ``None`` otherwise.

    Examples
    --------
    >>> infer_model_type({"image_encoder.pos_embed": torch.zeros(1, 1, 1, 768)}) is None  # no blocks
    True
    """
    width, depth = describe_state_dict(state_dict)
    for name, (w, d) in MODEL_TYPES.items():
        if width == w and depth == d:
            return name
    return None


def _looks_like(width: int | None, depth: int) -> str:
    guess = next((n for n, (w, _) in MODEL_TYPES.items() if w == width), None)
    what = f"embedding width {width} and {depth} blocks"
    return f"{what} look like {guess}" if guess and MODEL_TYPES[guess][1] == depth else f"{what} match no standard SAM type"


def _resolve_name(name_or_path: str | os.PathLike[str]) -> tuple[Path, ModelInfo | None]:
    key = os.fspath(name_or_path)
    with _REGISTRY_LOCK:
        info = _REGISTRY.get(key)
    if info is not None:
        if not info.available:
            raise MissingFileError(
                f"model {info.name!r}: weights not found at {info.path}. They are not shipped yet (the training "
                f"run that produces them has not landed) and nothing is downloaded here; pass a checkpoint path, "
                f"or use samstar_env.models.build_tiny_sam() for a random-weight model."
            )
        return info.path, info
    if key in MODEL_TYPES or key == "default":
        raise MissingFileError(
            f"{key!r} is a SAM model type, not a checkpoint; nothing is downloaded here, so pass the checkpoint "
            f"path, e.g. load_sam('sam_{key}.pth', model_type={key!r})"
        )
    path = Path(key).expanduser()
    if not path.exists():
        names = ", ".join(i.name for i in list_models())
        raise MissingFileError(f"no checkpoint file at {path} and no registered model of that name (registered: {names})")
    if not path.is_file():
        raise InputError(f"{path} is a directory, not a checkpoint file")
    return path, None


def load_sam(name_or_path: str | os.PathLike[str], model_type: str | None = None, device: str | torch.device = "auto") -> Sam:
    """Load a SAM from a registered name or a checkpoint path.

    Parameters
    ----------
    name_or_path : str or path
        A name from :func:`list_models` or a checkpoint file (see the module docstring).
    model_type : {"vit_h", "vit_l", "vit_b"} or a SAM 2 config, optional
        Checked against the state dict when given; inferred when not. Ignored for samstar-format
        checkpoints, which carry their own configuration. SAM 2 configs: ``hiera_t``, ``hiera_s``,
        ``hiera_b+``, ``hiera_l``, optionally prefixed ``sam2.1_`` or ``sam2_``.
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...

    Returns
    -------
    segment_anything.modeling.Sam or sam2.modeling.sam2_base.SAM2Base
        In eval mode, on ``device``.

    Raises
    ------
    FileNotFoundError
        Missing file, or a registered model whose weights are absent.
    ValueError
        Not a checkpoint, not a SAM state dict, a sha256 mismatch, or a state dict that does not
        match ``model_type`` (the message says what the state dict looks like).
    """
    sam2_config = None
    if model_type is not None and model_type not in MODEL_TYPES:
        try:
            parse_sam2_config(model_type)
        except InputError:
            raise InputError(f"load_sam: model_type must be one of {sorted(MODEL_TYPES)}, a SAM 2 config "
                             f"({', '.join(SAM2_SIZES)}) or None, got {model_type!r}") from None
        sam2_config, model_type = model_type, None
    path, info = _resolve_name(name_or_path)
    if info is not None:
        expected = info.expected_sha256()
        if expected is not None:
            actual = file_sha256(path)
            if actual != expected:
                raise InputError(
                    f"model {info.name!r}: sha256 of {path} is {actual}, expected {expected}; the file is corrupted or "
                    f"was replaced without updating its checksum"
                )
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and obj.get("format") == SAM2_FORMAT:
        return load_sam2_checkpoint(obj, path, device=resolve_device(device))
    if is_samstar_checkpoint(obj):
        model = model_from_checkpoint(obj, path)
    else:
        if isinstance(obj, Mapping) and "format" in obj and obj["format"] != SAMSTAR_FORMAT:
            raise InputError(f"{path}: unknown checkpoint format {obj['format']!r}; expected {SAMSTAR_FORMAT!r} or a SAM state dict")
        sd = unwrap_state_dict(obj, path)
        if is_sam2_state_dict(sd):
            if model_type is not None:
                raise InputError(f"{path}: model_type={model_type!r} but the file is a SAM 2 checkpoint; pass a SAM 2 "
                                 f"config ({', '.join(SAM2_SIZES)}) or none")
            return load_sam2_state_dict(sd, path, config=sam2_config, device=resolve_device(device))
        if sam2_config is not None:
            raise InputError(f"{path}: model_type={sam2_config!r} is a SAM 2 config but the file is not a SAM 2 checkpoint "
                             "(no 'image_encoder.trunk' keys)")
        width, depth = describe_state_dict(sd)
        if width is None:
            raise InputError(f"{path}: not a SAM state dict (no 'image_encoder.pos_embed'; first keys: {list(sd)[:3]})")
        inferred = infer_model_type(sd)
        if model_type is not None and inferred != model_type:
            raise InputError(f"{path}: model_type={model_type!r} but the state dict's {_looks_like(width, depth)}, not {model_type}")
        if inferred is None:
            raise InputError(
                f"{path}: the state dict's {_looks_like(width, depth)}; save small models in samstar's format "
                f"({{'format': {SAMSTAR_FORMAT!r}, 'config': TinySamConfig.to_dict(), 'model': state_dict}})"
            )
        model = sam_model_registry[inferred](checkpoint=None)
        load_state_dict_strict(model, sd, path, inferred)
    model.eval()
    return model.to(resolve_device(device))


_FP_ATTR = "_samstar_fingerprint"


# Bumped whenever a module of a fingerprinted model registers a parameter, buffer or submodule
# (assignment, ``load_state_dict(assign=True)``, ``register_buffer``): the one change a stored
# tensor list misses. Modules of other models (a policy network being built) do not bump it.
_STRUCTURE_GENERATION = [0]
_TRACKED_MODULES: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _bump_generation(module: torch.nn.Module, *_args: object) -> None:
    if module in _TRACKED_MODULES:
        _STRUCTURE_GENERATION[0] += 1


for _hook in ("register_module_parameter_registration_hook", "register_module_buffer_registration_hook",
              "register_module_module_registration_hook"):
    getattr(torch.nn.modules.module, _hook)(_bump_generation)


def _state_token(model: torch.nn.Module, tensors: list[torch.Tensor]) -> tuple:
    # Identity of the module, the registration generation, and the storage and in-place version
    # counter of every tensor: a deep copy (new id), a replaced tensor or submodule (new generation)
    # or any in-place weight update (load_state_dict, optimizer step, mul_) changes it, so a stored
    # fingerprint can never outlive the weights it describes. Checked on every engine call, so it
    # walks a stored tensor list (0.05 ms) rather than the module tree (0.3 ms for samstar-tiny).
    return (id(model), _STRUCTURE_GENERATION[0], [(t.data_ptr(), t._version) for t in tensors])


def model_fingerprint(model: torch.nn.Module, *, refresh: bool = False) -> str:
    """A stable sha256 of a model's weights and configuration (for cache keys).

    Hashing the weights takes a moment for large models, so the result is stored on the model with a
    cheap token (object identity and the tensors' storage pointers and in-place version counters);
    it is recomputed only when that token changes (a deep copy, ``load_state_dict``, an optimizer
    step) or when ``refresh`` is given.

    Parameters
    ----------
    model : torch.nn.Module
        Usually a ``Sam``.
    refresh : bool
        Recompute even when a valid fingerprint is stored.

    Returns
    -------
    str
        64 hex digits; equal for models with equal weights, buffers and architecture settings.
    """
    cached = getattr(model, _FP_ATTR, None)
    if cached is not None and not refresh and cached[0] == _state_token(model, cached[2]):
        return cached[1]
    tensors = [*model.parameters(), *model.buffers()]
    _TRACKED_MODULES.update(model.modules())
    token = _state_token(model, tensors)
    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    for attr in ("mask_threshold", "image_format"):
        h.update(f"|{attr}={getattr(model, attr, None)}".encode())
    enc = getattr(model, "image_encoder", None)
    h.update(f"|img_size={getattr(enc, 'img_size', None)}".encode())
    if hasattr(model, "image_size"):  # SAM 2's input size (SAM 1 fingerprints stay as they were)
        h.update(f"|image_size={model.image_size}".encode())
    # Hyperparameters that shape the computation without showing in the weights' shapes.
    for name, module in model.named_modules():
        for attr in ("num_heads", "window_size", "downsample_rate"):
            if isinstance(getattr(module, attr, None), int):
                h.update(f"|{name}.{attr}={getattr(module, attr)}".encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            t = tensor.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"|{name}:{t.dtype}:{tuple(tensor.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    fp = h.hexdigest()
    object.__setattr__(model, _FP_ATTR, (token, fp, tensors))
    return fp
