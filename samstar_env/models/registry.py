"""Load any SAM checkpoint (or a registered name) into a ``segment_anything`` ``Sam``.

Accepted checkpoints:

- the official ViT-H / ViT-L / ViT-B files, by path; the type is inferred from the state dict (ViT
  width 1280 / 1024 / 768 and 32 / 24 / 12 blocks) unless ``model_type`` is given;
- any plain SAM state dict (e.g. micro-sam's fine-tuned SAMs), also wrapped under ``"model"``,
  ``"state_dict"`` or ``"model_state"`` and with a ``module.`` or ``sam.`` key prefix;
- samstar's self-describing checkpoints for small models:
  ``{"format": "samstar-sam/1", "config": TinySamConfig.to_dict(), "model": state_dict}``, rebuilt
  with :func:`~samstar_env.models.tiny.build_tiny_sam`;
- registered names (:func:`register_model`, :func:`list_models`), e.g. ``"samstar-tiny"``, whose
  sha256 is checked at load.

Nothing is ever downloaded: this workplace has no model hub, so a missing file is an error that says
where the weights were expected.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam

from samstar_env.models.tiny import TinySamConfig, build_tiny_sam

SAMSTAR_FORMAT = "samstar-sam/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# ViT width and depth of the three official SAM image encoders.
MODEL_TYPES: dict[str, tuple[int, int]] = {"vit_h": (1280, 32), "vit_l": (1024, 24), "vit_b": (768, 12)}
_WRAPPER_KEYS = ("model", "state_dict", "model_state")
_PREFIXES = ("module.", "sam.", "model.")


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
    """

    name: str
    path: Path
    sha256: str | None = None
    description: str = ""

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


_REGISTRY: dict[str, ModelInfo] = {}
_REGISTRY_LOCK = threading.Lock()


def register_model(name: str, path: str | os.PathLike[str], sha256: str | None = None, *, description: str = "") -> ModelInfo:
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

    Returns
    -------
    ModelInfo
    """
    if name in MODEL_TYPES:
        raise ValueError(f"register_model: {name!r} is a SAM model type, not a usable model name")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"register_model: sha256 for {name!r} must be 64 hex digits, got {sha256!r}")
    info = ModelInfo(name=name, path=Path(path), sha256=sha256, description=description)
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_checkpoint(path: Path) -> Any:
    try:
        # weights_only: a checkpoint is data; never run code from a file a user points us to.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        UnicodeDecodeError,
        AttributeError,
        # Arbitrary bytes reach the unpickler's internals: a memo lookup of a garbage index, a
        # garbage opcode argument, a bad struct length (seen with random files).
        KeyError,
        IndexError,
        TypeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise ValueError(
            f"{path} is not a PyTorch checkpoint of a SAM model (torch.load failed: {str(exc).splitlines()[0][:200]})"
        ) from exc


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} holds a {type(obj).__name__}, not a SAM state dict (a mapping of parameter names to tensors, "
            f"optionally under one of {list(_WRAPPER_KEYS)})"
        )
    sd = dict(obj)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


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


def _load_into(model: Sam, sd: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        msg = str(exc).replace("\n", " ")
        raise ValueError(f"{path}: state dict does not fit a {what} SAM ({msg[:400]})") from exc


def _resolve_name(name_or_path: str | os.PathLike[str]) -> tuple[Path, ModelInfo | None]:
    key = os.fspath(name_or_path)
    with _REGISTRY_LOCK:
        info = _REGISTRY.get(key)
    if info is not None:
        if not info.available:
            raise FileNotFoundError(
                f"model {info.name!r}: weights not found at {info.path}. They are not shipped yet (the training "
                f"run that produces them has not landed) and nothing is downloaded here; pass a checkpoint path, "
                f"or use samstar_env.models.build_tiny_sam() for a random-weight model."
            )
        return info.path, info
    if key in MODEL_TYPES or key == "default":
        raise FileNotFoundError(
            f"{key!r} is a SAM model type, not a checkpoint; nothing is downloaded here, so pass the checkpoint "
            f"path, e.g. load_sam('sam_{key}.pth', model_type={key!r})"
        )
    path = Path(key).expanduser()
    if not path.exists():
        names = ", ".join(i.name for i in list_models())
        raise FileNotFoundError(f"no checkpoint file at {path} and no registered model of that name (registered: {names})")
    if not path.is_file():
        raise ValueError(f"{path} is a directory, not a checkpoint file")
    return path, None


def load_sam(name_or_path: str | os.PathLike[str], model_type: str | None = None, device: str | torch.device = "auto") -> Sam:
    """Load a SAM from a registered name or a checkpoint path.

    Parameters
    ----------
    name_or_path : str or path
        A name from :func:`list_models` or a checkpoint file (see the module docstring).
    model_type : {"vit_h", "vit_l", "vit_b"}, optional
        Checked against the state dict when given; inferred when not. Ignored for samstar-format
        checkpoints, which carry their own configuration.
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...

    Returns
    -------
    segment_anything.modeling.Sam
        In eval mode, on ``device``.

    Raises
    ------
    FileNotFoundError
        Missing file, or a registered model whose weights are absent.
    ValueError
        Not a checkpoint, not a SAM state dict, a sha256 mismatch, or a state dict that does not
        match ``model_type`` (the message says what the state dict looks like).
    """
    if model_type is not None and model_type not in MODEL_TYPES:
        raise ValueError(f"load_sam: model_type must be one of {sorted(MODEL_TYPES)} or None, got {model_type!r}")
    path, info = _resolve_name(name_or_path)
    if info is not None:
        expected = info.expected_sha256()
        if expected is not None:
            actual = file_sha256(path)
            if actual != expected:
                raise ValueError(
                    f"model {info.name!r}: sha256 of {path} is {actual}, expected {expected}; the file is corrupted or "
                    f"was replaced without updating its checksum"
                )
    obj = _read_checkpoint(path)
    if isinstance(obj, Mapping) and obj.get("format") == SAMSTAR_FORMAT:
        try:
            config = TinySamConfig.from_dict(dict(obj["config"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: samstar checkpoint with an invalid config ({exc})") from exc
        model = build_tiny_sam(config)
        _load_into(model, _unwrap_state_dict(obj.get("model"), path), path, f"samstar {config}")
    else:
        if isinstance(obj, Mapping) and "format" in obj and obj["format"] != SAMSTAR_FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {obj['format']!r}; expected {SAMSTAR_FORMAT!r} or a SAM state dict")
        sd = _unwrap_state_dict(obj, path)
        width, depth = describe_state_dict(sd)
        if width is None:
            raise ValueError(f"{path}: not a SAM state dict (no 'image_encoder.pos_embed'; first keys: {list(sd)[:3]})")
        inferred = infer_model_type(sd)
        if model_type is not None and inferred != model_type:
            raise ValueError(f"{path}: model_type={model_type!r} but the state dict's {_looks_like(width, depth)}, not {model_type}")
        if inferred is None:
            raise ValueError(
                f"{path}: the state dict's {_looks_like(width, depth)}; save small models in samstar's format "
                f"({{'format': {SAMSTAR_FORMAT!r}, 'config': TinySamConfig.to_dict(), 'model': state_dict}})"
            )
        model = sam_model_registry[inferred](checkpoint=None)
        _load_into(model, sd, path, inferred)
    model.eval()
    return model.to(resolve_device(device))


def save_samstar_checkpoint(model: Sam, config: TinySamConfig, path: str | os.PathLike[str]) -> str:
    """Write a self-describing samstar checkpoint; returns its sha256 (for a ``.sha256`` file)."""
    torch.save({"format": SAMSTAR_FORMAT, "config": config.to_dict(), "model": model.state_dict()}, path)
    return file_sha256(path)


_FP_ATTR = "_samstar_fingerprint"


def _state_token(model: torch.nn.Module) -> tuple:
    # Identity of the module plus the storage and in-place version counter of every tensor: a deep
    # copy (new id) or any in-place weight update (load_state_dict, optimizer step, mul_) changes it,
    # so a stored fingerprint can never outlive the weights it describes.
    tensors = [*model.parameters(), *model.buffers()]
    return (id(model), tuple((t.data_ptr(), t._version) for t in tensors))


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
    token = _state_token(model)
    cached = getattr(model, _FP_ATTR, None)
    if cached is not None and not refresh and cached[0] == token:
        return cached[1]
    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    for attr in ("mask_threshold", "image_format"):
        h.update(f"|{attr}={getattr(model, attr, None)}".encode())
    enc = getattr(model, "image_encoder", None)
    h.update(f"|img_size={getattr(enc, 'img_size', None)}".encode())
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
    object.__setattr__(model, _FP_ATTR, (token, fp))
    return fp
