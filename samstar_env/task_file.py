"""Task files: a :class:`~samstar_env.task.Task` from a TOML file or from the user's images.

The parser sits beside :class:`~samstar_env.task.Task` (layer 3), below the env and the applications:
``samstar_env.registration`` (``make_env_from_toml``, ``samstar/Custom-v4``), ``tune`` and ``cache warm``
all read task files through it. Errors are :class:`TaskFileError` naming the file and the key.

A task file::

    [task]
    name = "my-sample"
    images = "micrographs/"          # folder, relative to this file
    pixel_size_nm = 0.42             # optional: overrides the files' calibration
    modality = "haadf"               # optional
    model = "checkpoints/sam.pth"    # a path (relative to this file) or a registered name
    backbone = "sam2"                # optional: "sam2" for a SAM 2 checkpoint (tunes its own parameters too)
    rewards = ["size_window", "shape_fidelity", "overlap_fidelity"]   # optional: "generic" preset
                                     # (or a preset name: "perovskite", "ito", "auco", "generic")
    tile_shape = 512                 # optional: tiles of 512 px (0: never tile; default: automatic
    halo = 64                        # above twice the model input); halo default: a quarter tile

    [prior]
    diameter_range_nm = [8.0, 15.0]
    shape = "cube"                   # sphere | cube | irregular

    [rewards]                        # optional: weights (others keep 1 or the preset's) and options
    weights = { overlap_fidelity = 2.0 }
    options.size_window = { tolerance = 0.3, count_floor = 0.3 }   # keyword arguments of the reward

    [space]                          # optional: tune a subset of the default dimensions
    dimensions = ["points_per_side", "pred_iou_thresh", "stability_score_thresh"]

    [env]                            # optional: SamStarEnv options
    mode = "budget"
    budget = 30
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from samstar_env import _toml
from samstar_env.defaults import DEFAULT_MODEL
from samstar_env.errors import InputError, MissingFileError, TaskFileError

# Task, params, data and rewards are imported inside the functions: `import samstar_env` imports this
# module (through registration) and stays light.

# The keyword options of SamStarEnv: the keys an [env] table may hold and the options the env ids take.
# Listed here rather than read off SamStarEnv: `import samstar_env` registers the ids and must not
# import the env (torch) to do so.
ENV_OPTIONS: tuple[str, ...] = (
    "mode", "budget", "images_per_episode", "obs_mode", "thumbnail_size", "reward_mode", "gt_metrics", "device",
    "max_masks", "tile_shape", "halo",
)  # fmt: skip


def is_task_file(spec: str) -> bool:
    """Whether ``spec`` names a task file (a ``.toml`` name or an existing file) rather than a registered task.

    Examples
    --------
    >>> is_task_file("perovskite"), is_task_file("my_task.toml")
    (False, True)
    """
    return spec.endswith(".toml") or Path(spec).is_file()


def check_env_options(options: Mapping[str, Any], where: str) -> None:
    """Raise ``TypeError`` naming ``where`` when ``options`` holds a key that is not a SamStarEnv option.

    Examples
    --------
    >>> check_env_options({"budget": 20}, "make_env_from_toml")
    >>> check_env_options({"budgett": 20}, "make_env_from_toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: make_env_from_toml: unknown option(s) ['budgett']; SamStarEnv takes [...]
    """
    unknown = sorted(set(options) - set(ENV_OPTIONS))
    if unknown:
        raise TypeError(f"{where}: unknown option(s) {unknown}; SamStarEnv takes {list(ENV_OPTIONS)}")


def build_custom_task(
    *,
    images: Any,
    prior: Any,
    rewards: Any = None,
    model: Any = None,
    pixel_size_nm: float | None = None,
    modality: str = "unknown",
    space: Any = None,
    name: str = "custom",
    where: str = "custom task",
    backbone: str | None = None,
) -> Any:
    """A :class:`~samstar_env.task.Task` from user images (shared by ``Custom-v4`` and task files).

    ``where`` prefixes error messages (the env id or the task file); ``backbone`` is
    :func:`~samstar_env.task.make_task`'s.
    """
    from samstar_env.data.micrograph import Micrograph, PhysicsPrior
    from samstar_env.params import ParamSpace
    from samstar_env.task import Task, resolve_backbone

    if images is None:
        raise InputError(f"{where}: pass images= (a folder, a Micrograph or a list of Micrograph)")
    if prior is None:
        raise InputError(f"{where}: pass prior= (a PhysicsPrior or a mapping such as {{'diameter_range_nm': (8, 15)}})")
    if isinstance(images, (str, Path)):
        from samstar_env.data.loaders import load_folder

        folder = Path(images)
        if not folder.is_dir():
            raise MissingFileError(f"{where}: image folder {str(folder)!r} does not exist")
        imgs = tuple(load_folder(folder, pixel_size_nm=pixel_size_nm, modality=modality))
        if not imgs:
            raise InputError(f"{where}: no images found in {str(folder)!r}")
    elif isinstance(images, Micrograph):
        imgs = (images,)
    else:
        imgs = tuple(images)
        bad = [type(im).__name__ for im in imgs if not isinstance(im, Micrograph)]
        if bad or not imgs:
            raise TypeError(f"{where}: images must be a folder or Micrograph values, got {bad or 'nothing'}")
    if isinstance(prior, Mapping):
        prior = _prior_from_mapping(prior, where)
    elif not isinstance(prior, PhysicsPrior):
        raise TypeError(f"{where}: prior must be a PhysicsPrior or a mapping, got {type(prior).__name__}")
    return Task(
        name=name,
        images=imgs,
        prior=prior,
        rewards=_suite(rewards, where),
        space=(space if space is not None else ParamSpace.env_default()).for_backbone(
            resolve_backbone(backbone, DEFAULT_MODEL if model is None else model, space)),
        model=DEFAULT_MODEL if model is None else model,
    )


# -- the TOML file ---------------------------------------------------------------------------------
def task_from_toml(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read a task file: the :class:`~samstar_env.task.Task` and the ``[env]`` options.

    Relative paths (images, model) are resolved against the file's folder. Errors are
    :class:`TaskFileError` (or ``FileNotFoundError``) naming the file and the key.
    """
    from samstar_env.params import ENV_DIMENSIONS, AmgParams, ParamSpace

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"task file {str(p)!r} does not exist")
    try:
        with p.open("rb") as fh:
            doc = _toml.load(fh)
    except _toml.TOMLDecodeError as exc:
        raise TaskFileError(f"{p}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"task", "prior", "rewards", "space", "env"})
    if unknown:
        raise TaskFileError(f"{p}: unknown table(s) {unknown}; expected [task], [prior], [rewards], [space], [env]")
    task_tbl = _table(doc, "task", p, required=True)
    prior_tbl = _table(doc, "prior", p, required=True)
    rewards_tbl = _table(doc, "rewards", p, required=False)
    space_tbl = _table(doc, "space", p, required=False)
    env_tbl = _table(doc, "env", p, required=False)

    known_task = {"name", "images", "pixel_size_nm", "modality", "model", "backbone", "rewards", "tile_shape", "halo"}
    _no_unknown(task_tbl, known_task, p, "task")
    images = _get(task_tbl, "images", str, p, "task", required=True)
    folder = (p.parent / images).resolve()
    if not folder.is_dir():
        raise TaskFileError(f"{p}: [task].images: folder {str(folder)!r} does not exist")
    px = _get(task_tbl, "pixel_size_nm", (int, float), p, "task")
    if px is not None and not px > 0:
        raise TaskFileError(f"{p}: [task].pixel_size_nm must be positive, got {px!r}")
    model = _get(task_tbl, "model", str, p, "task")
    if model is not None:
        # A relative path is relative to the task file; anything that is not a file there is a
        # registered model name, left for load_sam to resolve (or reject with its list of names).
        cand = p.parent / model
        if cand.is_file():
            model = str(cand.resolve())
        elif any(sep in model for sep in ("/", "\\")) or model.endswith((".pth", ".pt", ".ckpt")):
            raise TaskFileError(f"{p}: [task].model: checkpoint {str(cand)!r} does not exist")
    rewards = _get(task_tbl, "rewards", (list, str), p, "task")
    if isinstance(rewards, list) and not all(isinstance(r, str) for r in rewards):
        raise TaskFileError(f"{p}: [task].rewards must be a preset name or a list of reward names, got {rewards!r}")
    suite = _suite_from_file(rewards, rewards_tbl, p)

    space = None
    if space_tbl:
        _no_unknown(space_tbl, {"dimensions", "base"}, p, "space")
        dims = _get(space_tbl, "dimensions", list, p, "space")
        base_tbl = _get(space_tbl, "base", dict, p, "space") or {}
        try:
            base = AmgParams.from_dict(base_tbl)
            space = ParamSpace.subset(dims, base=base) if dims is not None else ParamSpace(ENV_DIMENSIONS, base=base)
        except (ValueError, TypeError) as exc:
            raise TaskFileError(f"{p}: [space]: {exc}") from None

    tile = _get(task_tbl, "tile_shape", int, p, "task")
    halo = _get(task_tbl, "halo", int, p, "task")
    if tile is not None or halo is not None:
        from samstar_env.engine.tiles import check_tiling

        if tile is None:
            raise TaskFileError(f"{p}: [task].halo needs [task].tile_shape (the halo of which tiles?)")
        halo = tile // 4 if halo is None else halo
        try:
            check_tiling(tile, halo, source=f"{p}: [task].tile_shape")
        except InputError as exc:
            raise TaskFileError(str(exc)) from None
        space = (space if space is not None else ParamSpace.env_default()).with_tiling(tile, halo)

    env_opts = dict(env_tbl)
    _no_unknown(env_opts, set(ENV_OPTIONS), p, "env")
    where = f"{p}"
    try:
        task = build_custom_task(
            images=str(folder),
            prior=_prior_from_mapping(prior_tbl, f"{p}: [prior]"),
            rewards=suite,
            model=model,
            pixel_size_nm=px,
            modality=_get(task_tbl, "modality", str, p, "task") or "unknown",
            space=space,
            name=_get(task_tbl, "name", str, p, "task") or p.stem,
            where=where,
            backbone=_get(task_tbl, "backbone", str, p, "task"),
        )
    except TaskFileError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        msg = str(exc)
        raise TaskFileError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
    return task, env_opts


# -- helpers ---------------------------------------------------------------------------------------
def _suite_from_file(rewards: str | list[str] | None, table: Mapping[str, Any], p: Path) -> Any:
    """The suite of a task file: ``[task].rewards`` (a preset or names) with ``[rewards]`` options and weights."""
    from samstar_env.rewards import configure_suite

    _no_unknown(table, {"options", "weights"}, p, "rewards")
    options = _get(table, "options", dict, p, "rewards")
    weights = _get(table, "weights", dict, p, "rewards")
    try:
        return configure_suite("generic" if rewards is None else rewards, options=options, weights=weights)
    except (KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if exc.args else exc
        raise TaskFileError(f"{p}: [task].rewards / [rewards]: {msg}") from None


def _suite(rewards: Any, where: str) -> Any:
    from samstar_env.rewards import RewardSuite, preset

    if rewards is None:
        # A new sample has no task preset: the balanced one, every physics criterion once.
        return preset("generic")
    if isinstance(rewards, RewardSuite):
        return rewards
    if isinstance(rewards, str):
        try:
            return preset(rewards)
        except ValueError as exc:
            raise InputError(f"{where}: rewards: {exc}") from None
    if isinstance(rewards, (str, bytes)) or not isinstance(rewards, Sequence):
        raise TypeError(f"{where}: rewards must be a RewardSuite or a list of reward names/callables, got {rewards!r}")
    try:
        return RewardSuite(list(rewards))
    except KeyError as exc:
        raise InputError(f"{where}: rewards: {exc.args[0] if exc.args else exc}") from None


def _prior_from_mapping(data: Mapping[str, Any], where: str) -> Any:
    from samstar_env.data.micrograph import PhysicsPrior, SizeComponent

    known = {f.name for f in fields(PhysicsPrior)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TaskFileError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    if "diameter_range_nm" not in data:
        raise TaskFileError(f"{where}: missing key 'diameter_range_nm' (e.g. [8.0, 15.0])")
    d = dict(data)
    d["diameter_range_nm"] = tuple(d["diameter_range_nm"])
    if "size_components" in d:
        try:
            d["size_components"] = tuple(SizeComponent(**c) for c in d["size_components"])
        except TypeError as exc:
            raise TaskFileError(f"{where}: size_components: {exc} (each needs weight, median_nm, sigma)") from None
    try:
        return PhysicsPrior(**d)
    except (ValueError, TypeError) as exc:
        raise TaskFileError(f"{where}: {exc}") from None


def _table(doc: Mapping[str, Any], key: str, path: Path, *, required: bool) -> dict[str, Any]:
    if key not in doc:
        if required:
            raise TaskFileError(f"{path}: missing table [{key}]")
        return {}
    if not isinstance(doc[key], dict):
        raise TaskFileError(f"{path}: {key} must be a table ([{key}]), got {type(doc[key]).__name__}")
    return dict(doc[key])


def _get(tbl: Mapping[str, Any], key: str, typ: Any, path: Path, table: str, *, required: bool = False) -> Any:
    if key not in tbl:
        if required:
            raise TaskFileError(f"{path}: missing key [{table}].{key}")
        return None
    v = tbl[key]
    if not isinstance(v, typ) or isinstance(v, bool):
        names = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
        raise TaskFileError(f"{path}: [{table}].{key} must be {names}, got {v!r}")
    return v


def _no_unknown(tbl: Mapping[str, Any], known: set[str], path: Path, table: str) -> None:
    unknown = sorted(set(tbl) - known)
    if unknown:
        raise TaskFileError(f"{path}: [{table}]: unknown key(s) {unknown}; expected some of {sorted(known)}")
