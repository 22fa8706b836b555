"""``samstar cache``: decode ahead every (image, crop box, point grid) a search space can reach.

Only points_per_side, crop_n_layers, crop_overlap_ratio and crop_n_points_downscale_factor decide what
the mask engine must decode (DESIGN.md, "The caching engine"); every other parameter is a replay.
:func:`plan_warm` enumerates the distinct :class:`~samstar_env.engine.DecodeUnit` of every
combination of those four dimensions' values, on every image of a task; :func:`warm` decodes the
ones not yet in the disk cache (:func:`~samstar_env.engine.default_cache_dir`), in this process or on
Dask workers. Each unit is written to the disk cache as soon as it is decoded (atomically), so a
warm that is killed resumes where it stopped and never repeats a decode.

Commands::

    samstar cache warm perovskite                # the env's default space on the tune image
    samstar cache warm my_task.toml --space all --images 4 --executor dask
    samstar cache info                           # location, entries, bytes per model
    samstar cache clear [--yes]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samstar_env.engine import DecodeUnit, decode_units, default_cache_dir
from samstar_env.engine.tiles import add_tiling_arguments
from samstar_env.errors import InputError, MissingExtraError
from samstar_env.params import DEFAULT_DIMENSIONS, ENV_DIMENSIONS, ParamSpace

# The parameters that decide what is decoded (all others are replayed from cached proposals).
# The parameters that decide what is decoded (the tiles too: each tile is decoded on its own).
DECODE_DIMENSIONS = ("points_per_side", "crop_n_layers", "crop_overlap_ratio", "crop_n_points_downscale_factor",
                     "tile_shape", "halo")
# SAM 2's: each value of these is a decode of its own. (Every mask_threshold of the grid comes from
# one decode; min_mask_region_area changes SAM 2's decode only where its CUDA extension is built, and
# is then listed too.)
SAM2_DECODE_DIMENSIONS = ("multimask_output", "use_m2m")


@dataclass(frozen=True)
class WarmJob:
    """One decode of ``cache warm``: a unit of one image.

    Parameters
    ----------
    image_index : int
        Index into the task's tune images.
    unit : DecodeUnit
        Crop box and point grid.
    """

    image_index: int
    unit: DecodeUnit


@dataclass(frozen=True)
class WarmPlan:
    """What a space can reach on a task's images.

    Parameters
    ----------
    jobs : tuple of WarmJob
        Every distinct (image, crop box, grid).
    points_per_batch : int
        The space's AMG batch size (part of every cache key).
    combinations : int
        Combinations of the decode dimensions' values.
    """

    jobs: tuple[WarmJob, ...]
    points_per_batch: int
    combinations: int

    @property
    def points(self) -> int:
        """Prompts decoded by the whole plan."""
        return sum(j.unit.n_points for j in self.jobs)


def _values(space: ParamSpace, name: str) -> tuple[Any, ...]:
    dims = {d.name: d for d in space.dimensions}
    if name not in dims:
        return (getattr(space.base, name),)
    d = dims[name]
    if d.kind == "grid":
        return tuple(d.choices)
    if d.kind == "int" and d.high - d.low <= 64:
        return tuple(range(int(d.low), int(d.high) + 1))
    raise InputError(
        f"cache warm: dimension {name!r} is continuous ({d.kind} in [{d.low}, {d.high}]), so the points a space can "
        "reach cannot be listed; make it a grid (Dimension(kind='grid', choices=...)) to warm it"
    )


def plan_warm(images: Sequence[Any], space: ParamSpace) -> WarmPlan:
    """Every distinct decode ``space`` can trigger on ``images`` (crop order of AMG, small grids first).

    Parameters
    ----------
    images : sequence of Micrograph or arrays
        The images (only their shapes matter here).
    space : ParamSpace
        The search space; its decode dimensions must be grids (or short integer ranges).

    Returns
    -------
    WarmPlan

    Examples
    --------
    >>> from samstar_env.params import Dimension
    >>> space = ParamSpace((Dimension("points_per_side", "grid", choices=(4, 8)),))
    >>> plan = plan_warm([np.zeros((64, 64))], space)
    >>> len(plan.jobs), plan.points
    (2, 80)
    """
    names = DECODE_DIMENSIONS
    if space.backbone == "sam2":
        from samstar_env.models.sam2_models import hole_filling_available

        names += SAM2_DECODE_DIMENSIONS + (("min_mask_region_area",) if hole_filling_available() else ())
    value_lists = [_values(space, n) for n in names]
    combos = list(itertools.product(*value_lists))
    jobs: list[WarmJob] = []
    for i, im in enumerate(images):
        shape = tuple(int(v) for v in np.shape(getattr(im, "image", im))[:2])
        seen: set[Any] = set()
        units: list[DecodeUnit] = []
        for combo in combos:
            params = space.with_values(dict(zip(names, combo, strict=True)))
            for u in decode_units(shape, params):
                if u.identity not in seen:
                    seen.add(u.identity)
                    units.append(u)
        jobs.extend(WarmJob(i, u) for u in sorted(units, key=lambda u: (u.n_points, u.layer)))
    return WarmPlan(tuple(jobs), int(space.base.points_per_batch), len(combos))


@dataclass(frozen=True)
class WarmEstimate:
    """A measured cost model of decoding: seconds = points * (per_point_s + pixels * per_point_pixel_s)."""

    per_point_s: float
    per_point_pixel_s: float
    bytes_per_proposal: float

    def seconds(self, job: WarmJob) -> float:
        """Predicted seconds of one decode."""
        return job.unit.n_points * (self.per_point_s + job.unit.pixels * self.per_point_pixel_s)


def estimate_cost(model: Any, image: Any, *, points_per_batch: int) -> WarmEstimate:
    """Time two small decodes (full image, quarter image) of ``image`` to calibrate :class:`WarmEstimate`.

    Uses a throwaway engine without a disk cache, so nothing of the calibration is stored.
    """
    from samstar_env.engine import MaskEngine
    from samstar_env.engine.image_input import to_sam_image

    rgb = to_sam_image(image)
    h, w = rgb.shape[:2]
    grid = np.array([[(x + 0.5) / 8, (y + 0.5) / 8] for y in range(8) for x in range(8)])
    engine = MaskEngine(model)
    times, pixels, nbytes, count = [], [], 0, 0
    for box in ((0, 0, w, h), (0, 0, max(w // 2, 1), max(h // 2, 1))):
        unit = DecodeUnit(box, 0, grid)
        engine.ensure(rgb, unit, points_per_batch=points_per_batch)  # embedding, not timed
        engine.clear_cache()
        engine.ensure(rgb, DecodeUnit(box, 0, grid[:1]), points_per_batch=points_per_batch)
        t0 = time.perf_counter()
        engine.ensure(rgb, unit, points_per_batch=points_per_batch)
        times.append((time.perf_counter() - t0) / len(grid))
        pixels.append(unit.pixels)
        props = engine.proposals(rgb, _unit_params(unit, points_per_batch))
        nbytes += sum(p.nbytes for p in props)
        count += sum(len(p) for p in props)
    slope = max((times[0] - times[1]) / max(pixels[0] - pixels[1], 1), 0.0)
    return WarmEstimate(max(times[1] - slope * pixels[1], 0.0), slope, nbytes / max(count, 1))


def _unit_params(unit: DecodeUnit, points_per_batch: int) -> Any:
    from samstar_env.params import AmgParams

    return AmgParams(points_per_side=None, point_grids=(tuple(map(tuple, unit.grid)),), points_per_batch=points_per_batch)


@dataclass(frozen=True)
class WarmReport:
    """What :func:`warm` did.

    Parameters
    ----------
    jobs, decoded, already_cached : int
        Units in the plan; decoded now; found (valid) in the cache.
    seconds : float
        Wall time.
    cache_dir : Path
        Where they are.
    rejected : int
        Cache files found corrupted or stale (and recomputed).
    """

    jobs: int
    decoded: int
    already_cached: int
    seconds: float
    cache_dir: Path
    rejected: int = 0


def warm(
    task: Any,
    *,
    space: ParamSpace | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> WarmReport:
    """Decode every unit of :func:`plan_warm` that the disk cache lacks.

    Parameters
    ----------
    task : Task
        Its images (tune images) and model.
    space : ParamSpace, optional
        Default: the task's space.
    executor : {"local", "dask"}
        Decode here, or on Dask workers (a new LocalCluster, or ``scheduler``'s cluster).
    scheduler : str, optional
        Address of a Dask scheduler.
    n_workers : int, optional
        Workers of the LocalCluster (default: one per two cores, at least one).
    progress : bool
        Show a tqdm bar with an ETA.
    cache_dir : path, optional
        Default: :func:`~samstar_env.engine.default_cache_dir`.
    log : callable
        Where the plan and the estimate are printed.

    Returns
    -------
    WarmReport
    """
    from samstar_env.engine import MaskEngine
    from samstar_env.models import load_sam

    space = space if space is not None else task.space
    folder = _cache_folder(cache_dir)
    if executor not in ("local", "dask"):
        raise InputError(f"cache warm: executor must be 'local' or 'dask', got {executor!r}")
    plan = plan_warm(task.images, space)
    model = load_sam(task.model) if isinstance(task.model, (str, Path)) else task.model
    engine = MaskEngine(model, cache_dir=folder)
    on_disk = [engine.is_cached(task.images[j.image_index], j.unit, points_per_batch=plan.points_per_batch) for j in plan.jobs]
    todo = [j for j, cached in zip(plan.jobs, on_disk, strict=True) if not cached]
    present = [j for j, cached in zip(plan.jobs, on_disk, strict=True) if cached]
    t0 = time.perf_counter()
    if todo:
        est = estimate_cost(model, task.images[todo[0].image_index], points_per_batch=plan.points_per_batch)
        secs = sum(est.seconds(j) for j in todo)
        nbytes = sum(3 * j.unit.n_points for j in todo) * est.bytes_per_proposal
        log(f"samstar cache warm: {len(plan.jobs)} decodes ({plan.combinations} combinations of {', '.join(DECODE_DIMENSIONS)} "
            f"on {len(task.images)} image(s)); {len(present)} already cached; {len(todo)} to decode, "
            f"{sum(j.unit.n_points for j in todo)} prompts: about {_duration(secs)} here and {_size(nbytes)} in {folder}")
    else:
        log(f"samstar cache warm: all {len(plan.jobs)} decodes already cached in {folder}; verifying them")
    # Files already there are read back and checked (a corrupted or stale one is recomputed here).
    local = present + todo if executor == "local" else present
    decoded = 0
    bar = _bar(len(local), progress and bool(local))
    for j in local:
        decoded += bool(engine.ensure(task.images[j.image_index], j.unit, points_per_batch=plan.points_per_batch))
        engine.clear_cache()  # the disk holds them; memory stays one unit's worth
        bar.update(1)
    bar.close()
    if todo and executor == "dask":
        decoded += _warm_dask(task, todo, plan.points_per_batch, folder, scheduler=scheduler, n_workers=n_workers, progress=progress)
    rejected = engine.stats.disk_rejected
    if rejected:
        log(f"samstar cache warm: {rejected} corrupted or stale cache file(s) found and recomputed")
    return WarmReport(len(plan.jobs), decoded, len(plan.jobs) - decoded, time.perf_counter() - t0, folder, rejected)


def _warm_dask(task: Any, todo: Sequence[WarmJob], ppb: int, folder: Path, *, scheduler: str | None,
               n_workers: int | None, progress: bool) -> int:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError('cache warm --executor dask needs the "dist" extra: pip install "samstar[dist]"') from exc
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        n = n_workers or max(1, (os.cpu_count() or 2) // 2)
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=max(1, (os.cpu_count() or 2) // n),
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        images = client.scatter([im for im in task.images], broadcast=True)
        futures = [client.submit(_decode_on_worker, task.model, images[j.image_index], j.unit, ppb, str(folder), pure=False)
                   for j in todo]
        bar = _bar(len(todo), progress)
        decoded = 0
        for fut in distributed.as_completed(futures):
            decoded += bool(fut.result())
            bar.update(1)
        bar.close()
        return decoded
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _decode_on_worker(model: Any, image: Any, unit: DecodeUnit, ppb: int, folder: str) -> bool:
    """One decode on a Dask worker (its own engine per model and folder, kept between tasks)."""
    from samstar_env.engine import MaskEngine
    from samstar_env.models import load_sam, model_fingerprint

    key = (str(model) if isinstance(model, (str, Path)) else model_fingerprint(model), folder)
    engines = _decode_on_worker.__dict__.setdefault("engines", {})
    if key not in engines:
        m = load_sam(model) if isinstance(model, (str, Path)) else model
        engines[key] = MaskEngine(m, cache_dir=folder)
    engine = engines[key]
    done = engine.ensure(image, unit, points_per_batch=ppb)
    engine.clear_cache()
    return done


def _cache_folder(cache_dir: str | Path | None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder is None:
        raise InputError("samstar cache: SAMSTAR_CACHE is 'off'; set it to a folder (or unset it for the default)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".samstar-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"samstar cache: cannot write to the cache folder {str(folder)!r} ({exc.strerror or exc}); "
                         "set SAMSTAR_CACHE to a writable folder") from None
    return folder


@dataclass(frozen=True)
class CacheSummary:
    """What ``samstar cache info`` prints.

    Parameters
    ----------
    folder : Path
        The cache folder.
    entries, nbytes : int
        Files and their total size.
    by_kind : dict
        ``{"embedding" | "proposals": (files, bytes)}``.
    by_model : dict
        ``{model fingerprint: (files, bytes)}``.
    unreadable : int
        Files whose header cannot be read (they are recomputed when next needed).
    """

    folder: Path
    entries: int
    nbytes: int
    by_kind: dict[str, tuple[int, int]]
    by_model: dict[str, tuple[int, int]]
    unreadable: int


def cache_info(cache_dir: str | Path | None = None) -> CacheSummary:
    """Count the disk cache's entries by kind and model (reads only the files' headers)."""
    from samstar_env.engine.cache import DiskCache

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder is None:
        raise InputError("samstar cache: SAMSTAR_CACHE is 'off'; no disk cache is in use")
    by_kind: dict[str, list[int]] = {}
    by_model: dict[str, list[int]] = {}
    entries = nbytes = unreadable = 0
    if folder.is_dir():
        for path, header in DiskCache.scan(folder):
            size = path.stat().st_size
            entries += 1
            nbytes += size
            if header is None:
                unreadable += 1
                continue
            parts = str(header.get("key", "")).split("|")
            kind = parts[1] if len(parts) > 1 else "?"
            model = next((p.split("=", 1)[1] for p in parts if p.startswith("model=")), "?")
            for table, name in ((by_kind, kind), (by_model, model)):
                row = table.setdefault(name, [0, 0])
                row[0] += 1
                row[1] += size
    return CacheSummary(folder, entries, nbytes, {k: (v[0], v[1]) for k, v in by_kind.items()},
                        {k: (v[0], v[1]) for k, v in by_model.items()}, unreadable)


def cache_clear(cache_dir: str | Path | None = None) -> int:
    """Delete the disk cache's entries (``*.npc`` files and leftovers of interrupted writes); returns the count."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder is None or not folder.is_dir():
        return 0
    n = 0
    for path in list(folder.glob("*.npc")) + list(folder.glob(".tmp-*")):
        path.unlink(missing_ok=True)
        n += 1
    return n


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="decode", disable=not enabled, desc="cache warm", dynamic_ncols=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} GB"  # pragma: no cover


# -- command line --------------------------------------------------------------------------------
def resolve_task(spec: str, *, images: int | None = None, size: int = 512, model: str | None = None,
                 pool: bool = False, test_images: int | None = None) -> Any:
    """The task ``samstar cache warm SPEC`` warms: a registered name (its first ``images`` tune images,
    on the env's default space, as the env ids use) or a task file (its own space); with ``pool``, the
    amortized policy's pool (:func:`~samstar_env.policy.pool.policy_pool`: ``images`` training and
    ``test_images`` held-out images, both warmed, on the policy's space)."""
    from samstar_env.task import make_task

    if pool:
        from samstar_env.policy.pool import POOL_TEST, POOL_TRAIN, policy_pool

        t = policy_pool(spec, n_train=images or POOL_TRAIN, n_test=POOL_TEST if test_images is None else test_images,
                        size=size, model=model)
        return t.replace(images=(*t.images, *t.test_images), test_images=())

    from samstar_env.task_file import is_task_file

    if is_task_file(spec):
        from samstar_env.task_file import task_from_toml

        task, _ = task_from_toml(spec)
        if images is not None:
            if not 1 <= images <= len(task.images):
                raise InputError(f"cache warm: --images {images} out of range; {spec} has {len(task.images)} images")
            task = task.replace(images=task.images[:images])
        return task.replace(model=model) if model else task
    kw: dict[str, Any] = {"n_images": images or 1, "n_test_images": 0, "size": (size, size), "space": ParamSpace(ENV_DIMENSIONS)}
    if model:
        kw["model"] = model
    return make_task(spec, **kw)


def _space_of(task: Any, text: str | None) -> ParamSpace:
    if text is None:
        return task.space
    if text == "all":
        base = task.space.base
        base = type(base).from_dict({k: v for k, v in base.to_dict().items() if k != "point_grids"})
        return ParamSpace(DEFAULT_DIMENSIONS, base=base).for_backbone(task.space.backbone)
    names = [s.strip() for s in text.split(",") if s.strip()]
    return ParamSpace.subset(names, base=task.space.base)


def _run_warm(args: argparse.Namespace) -> int:
    from samstar_env.engine.tiles import model_input_size
    from samstar_env.problem import shared_engine
    from samstar_env.task import adapt_to_backbone, tile_task

    task = resolve_task(args.task, images=args.images, size=args.size, model=args.model, pool=args.pool,
                        test_images=args.test_images)
    _cache_folder(None)  # a clear error on an unusable folder before the model (and its engine) loads
    # The tiles `samstar tune` would use on these images, so what is warmed is what tuning reads.
    engine = shared_engine(task.model)
    task = adapt_to_backbone(task, engine.backbone)
    task, line = tile_task(task, input_size=model_input_size(engine), tile_shape=args.tile_shape, halo=args.halo)
    if line != "no tiles" and not args.no_progress:
        print(f"samstar cache warm: {line}")
    report = warm(task, space=_space_of(task, args.space), executor=args.executor, scheduler=args.scheduler,
                  n_workers=args.workers, progress=not args.no_progress)
    print(f"samstar cache warm: {report.decoded} decoded, {report.already_cached} already cached, "
          f"{report.jobs} in all, in {report.seconds:.1f} s; cache: {report.cache_dir}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    s = cache_info()
    print(f"samstar cache: {s.folder} (set by SAMSTAR_CACHE; default the user cache folder)")
    print(f"  {s.entries} entries, {_size(s.nbytes)}" + (f"; {s.unreadable} unreadable (recomputed when needed)" if s.unreadable else ""))
    for title, table in (("kind", s.by_kind), ("model", s.by_model)):
        for name, (n, b) in sorted(table.items()):
            print(f"  {title} {name}: {n} entries, {_size(b)}")
    return 0


def _run_clear(args: argparse.Namespace) -> int:
    folder = default_cache_dir()
    if folder is None:
        raise InputError("samstar cache: SAMSTAR_CACHE is 'off'; nothing to clear")
    if not args.yes:
        s = cache_info()
        print(f"samstar cache clear: would delete {s.entries} entries ({_size(s.nbytes)}) in {folder}; pass --yes to do it")
        return 1
    print(f"samstar cache clear: deleted {cache_clear()} entries in {folder}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar cache warm|info|clear``."""
    p = subparsers.add_parser("cache", help="prepare, inspect or clear the shared decode cache (SAMSTAR_CACHE)",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    sub.required = True
    w = sub.add_parser("warm", help="decode every crop and point grid a space can reach, ahead of tuning")
    w.add_argument("task", help="perovskite, ito, auco or a task .toml file")
    w.add_argument("--space", default=None,
                   help="'all' (the full default space), comma-separated dimension names, or omitted: the env's default space "
                        "(registered tasks) or the task file's")
    w.add_argument("--images", type=int, default=None, help="tune images to warm (registered tasks: first N of the tune split; "
                   "with --pool: the pool's training images, default 64)")
    w.add_argument("--pool", action="store_true", help="warm the amortized policy's pool (samstar train-policy) on its space")
    w.add_argument("--test-images", type=int, default=None, help="with --pool: held-out images (default 16)")
    w.add_argument("--size", type=int, default=512, help="side of the synthetic images, pixels (registered tasks)")
    w.add_argument("--model", default=None, help="model name or checkpoint path (default: the task's)")
    w.add_argument("--executor", choices=("local", "dask"), default="local")
    w.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a new LocalCluster)")
    w.add_argument("--workers", type=int, default=None, help="LocalCluster workers")
    w.add_argument("--no-progress", action="store_true")
    add_tiling_arguments(w)
    w.set_defaults(func=_run_warm)
    i = sub.add_parser("info", help="where the cache is and what it holds")
    i.set_defaults(func=_run_info)
    c = sub.add_parser("clear", help="delete the cache's entries")
    c.add_argument("--yes", action="store_true", help="really delete")
    c.set_defaults(func=_run_clear)
