"""samstar's self-describing checkpoint format, ``samstar-sam/1``: the one writer and the one reader.

A file holds ``{"format": "samstar-sam/1", "config": TinySamConfig.to_dict(), "model": state_dict}``
(``torch.save``), so a small SAM rebuilds itself with
:func:`~samstar_env.models.tiny.build_tiny_sam`; a ``<file>.sha256`` beside it may hold its digest.
:func:`save_checkpoint` writes it (the training loop, tests, users), :func:`load_checkpoint` reads it
back, and :func:`~samstar_env.models.registry.load_sam` reads it through :func:`read_checkpoint` and
:func:`model_from_checkpoint`, beside the official SAM checkpoints. A file that is not a readable
checkpoint in the format raises :class:`~samstar_env.errors.InputError` (a ``ValueError``) naming it.

Examples
--------
>>> import tempfile
>>> from samstar_env.models.tiny import TinySamConfig, build_tiny_sam
>>> config = TinySamConfig(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
...                        global_attn_indexes=(1,), prompt_dim=32, decoder_heads=2, decoder_mlp_dim=64)
>>> with tempfile.TemporaryDirectory() as tmp:
...     digest = save_checkpoint(build_tiny_sam(config, seed=0), config, f"{tmp}/small.pt", sha256_file=True)
...     sam = load_checkpoint(f"{tmp}/small.pt")
...     (checkpoint_config(f"{tmp}/small.pt") == config, sam.training, len(digest))
(True, False, 64)
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from segment_anything.modeling import Sam

from samstar_env.errors import InputError
from samstar_env.models.tiny import TinySamConfig, build_tiny_sam

SAMSTAR_FORMAT = "samstar-sam/1"

# Keys under which training frameworks nest a state dict, and prefixes they put on its keys.
_WRAPPER_KEYS = ("model", "state_dict", "model_state")
_PREFIXES = ("module.", "sam.", "model.")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file_of(path: str | os.PathLike[str]) -> Path:
    """Where the digest of ``path`` is kept: ``<path>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_checkpoint(model: Sam, config: TinySamConfig, path: str | os.PathLike[str], *, sha256_file: bool = False) -> str:
    """Write ``model`` in the ``samstar-sam/1`` format; returns the file's sha256.

    The weights are stored as float32 CPU tensors, so a model trained on a GPU loads anywhere. The
    file is written under a temporary name and renamed, so a reader (or a run killed mid-write) never
    sees half a file. ``torch.save`` names the archive inside the file after the file it writes:
    writing ``<name>.tmp`` first is part of the format's bytes (the shipped weights were written so,
    and re-saving them reproduces their sha256).

    Parameters
    ----------
    model : Sam
        The model (any device; it is not modified).
    config : TinySamConfig
        The configuration that rebuilds it (:func:`~samstar_env.models.tiny.build_tiny_sam`).
    path : str or path
        The file; its folder is created.
    sha256_file : bool
        Also write the digest to ``<path>.sha256`` (checked by :func:`load_checkpoint` and by the
        registry for registered models).

    Returns
    -------
    str
        64 hex digits.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": SAMSTAR_FORMAT, "config": config.to_dict(), "model": state}, tmp)
    digest = file_sha256(tmp)
    os.replace(tmp, path)
    if sha256_file:
        sha256_file_of(path).write_text(digest + "\n")
    return digest


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` a checkpoint as data (CPU), with an error that names the file when it is not one.

    Raises
    ------
    InputError
        The file is not a PyTorch checkpoint (or one that needs code to unpickle).
    """
    path = Path(path)
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
        raise InputError(
            f"{path} is not a PyTorch checkpoint of a SAM model (torch.load failed: {str(exc).splitlines()[0][:200]})"
        ) from exc


def is_samstar_checkpoint(obj: Any) -> bool:
    """Whether a loaded checkpoint object is in the ``samstar-sam/1`` format."""
    return isinstance(obj, Mapping) and obj.get("format") == SAMSTAR_FORMAT


def unwrap_state_dict(obj: Any, path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The SAM state dict in a loaded checkpoint: unwrapped from a training wrapper, key prefixes removed.

    Parameters
    ----------
    obj : object
        What :func:`read_checkpoint` returned (or its ``"model"`` entry).
    path : str or path
        The file, for error messages.

    Raises
    ------
    InputError
        ``obj`` is not a mapping of parameter names to tensors (optionally under a wrapper key).
    """
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(
            f"{path} holds a {type(obj).__name__}, not a SAM state dict (a mapping of parameter names to tensors, "
            f"optionally under one of {list(_WRAPPER_KEYS)})"
        )
    sd = dict(obj)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def load_state_dict_strict(model: Sam, state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], what: str) -> None:
    """``model.load_state_dict(strict=True)``, with an ``InputError`` naming the file and the model ``what``."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        msg = str(exc).replace("\n", " ")
        raise InputError(f"{path}: state dict does not fit a {what} SAM ({msg[:400]})") from exc


def _require_format(obj: Any, path: str | os.PathLike[str]) -> None:
    if not is_samstar_checkpoint(obj):
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise InputError(f"{path}: not a {SAMSTAR_FORMAT} file (format={found!r})")


def _config_of(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> TinySamConfig:
    try:
        return TinySamConfig.from_dict(dict(obj["config"]))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: samstar checkpoint with an invalid config ({exc})") from exc


def model_from_checkpoint(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Sam:
    """Rebuild the SAM of a loaded ``samstar-sam/1`` object (CPU, in the mode ``build_tiny_sam`` leaves it).

    Raises
    ------
    InputError
        Not in the format, an invalid config, or weights that do not fit the config.
    """
    _require_format(obj, path)
    config = _config_of(obj, path)
    model = build_tiny_sam(config)
    load_state_dict_strict(model, unwrap_state_dict(obj.get("model"), path), path, f"samstar {config}")
    return model


def verify_sha256_file(path: str | os.PathLike[str]) -> None:
    """Check ``path`` against the digest in ``<path>.sha256`` when that file exists.

    Raises
    ------
    InputError
        The digests differ (the file is corrupted or was replaced without updating its checksum).
    """
    side = sha256_file_of(path)
    if side.exists():
        expected = side.read_text().split()[0]
        actual = file_sha256(path)
        if actual != expected:
            raise InputError(f"{path}: sha256 {actual} does not match {side} ({expected})")


def load_checkpoint(path: str | os.PathLike[str], *, check_sha256: bool = True) -> Sam:
    """Rebuild a SAM from a ``samstar-sam/1`` file (eval mode, CPU).

    Parameters
    ----------
    path : str or path
        A file written by :func:`save_checkpoint`.
    check_sha256 : bool
        Check the file against ``<path>.sha256`` when that file exists.

    Raises
    ------
    InputError
        A sha256 mismatch, a file that is not a checkpoint or not in the format, or weights that do
        not fit the stored config.
    """
    if check_sha256:
        verify_sha256_file(path)
    return model_from_checkpoint(read_checkpoint(path), path).eval()


def checkpoint_config(path: str | os.PathLike[str]) -> TinySamConfig:
    """The model configuration stored in a ``samstar-sam/1`` file."""
    obj = read_checkpoint(path)
    _require_format(obj, path)
    return _config_of(obj, path)
