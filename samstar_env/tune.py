"""``samstar tune``: run a tuner on a task, journal every evaluation, and write the report.

The run folder (``--out``) holds:

- ``journal.jsonl``: a header line, then one line per evaluation, each flushed and fsynced before the
  next evaluation starts, so a crash or ``kill -9`` loses at most the evaluation in flight;
- ``result.json``: the :class:`~samstar_env.agents.TuningResult` (every evaluation);
- ``front.json``: the non-dominated evaluations; ``front.png``: the Pareto plot (pairwise panels for
  more than two rewards);
- ``best_params.json``: the chosen operating point in ``AmgParams.to_json`` layout (a ``params``
  key, read by ``samstar segment --params``), with the rule that chose it;
- ``operating_points.json`` and ``overlays/*.png``: every requested operating point and its masks;
- ``tb/``: TensorBoard logs (a scalar per reward per evaluation, hypervolume, HParams, overlays).

``--resume`` replays the journal into the agent without evaluating again (agents are deterministic,
so re-asking yields the journaled actions; a mismatch is an error) and continues to the budget.

Hypervolume (progress bar, TensorBoard) uses :func:`samstar_env.metrics.multiobjective.hypervolume`:
rewards are in [0, 1] and the reference point is reward 0 on every objective (the worst possible
value), so the value lies in [0, 1], is comparable across runs, and any evaluation with all rewards
above 0 contributes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from samstar_env.agents import RunState, Trial, TuningResult, make_agent
from samstar_env.agents.operating_points import DEFAULT_RULE, RULES, choose
from samstar_env.defaults import TUNE_BUDGET
from samstar_env.engine.tiles import add_tiling_arguments
from samstar_env.errors import InputError, MissingFileError
from samstar_env.journal import Journal
from samstar_env.jsonutil import to_jsonable
from samstar_env.params import DEFAULT_DIMENSIONS, ParamSpace
from samstar_env.rewards.registry import REWARDS_VERSION

if TYPE_CHECKING:
    # Imported where used (the CLI's --help must not load the problem's dependencies).
    from samstar_env.problem import TuningProblem
    from samstar_env.task import Task

JOURNAL_FORMAT = "samstar-tune-journal/1"

# `samstar tune perovskite` with no options is the README's first command and must finish in a few
# minutes on 2 CPU cores with the shipped samstar-tiny. Measured (see the report in issue 7): an
# NSGA-II run of 60 evaluations (population 12, 5 generations) on one 256 x 256 perovskite image.
DEFAULT_BUDGET = TUNE_BUDGET  # not the env's episode budget: see samstar_env.defaults
DEFAULT_SIZE = 256
DEFAULT_AGENT_OPTIONS: dict[str, dict[str, Any]] = {"nsga2": {"pop_size": 12}}
# The first rule goes to best_params.json: the default rule of samstar_env.agents.operating_points
# (chosen against ground truth on held-out images), then the knee and the balanced priority.
DEFAULT_PICKS = tuple(dict.fromkeys((DEFAULT_RULE, "knee", "balanced")))
# Default search space of `samstar tune`: the parameters the engine replays from its cache (threshold
# filters, NMS, stability offset, hole/island removal), so a run costs one decode per image and
# offset. Measured with a 1.9 M-parameter SAM on a loaded 2-core machine: a single new point grid
# with two crop layers took 168 s, so the full space is opt-in (`--space all`).
DEFAULT_SPACE = ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh", "min_mask_region_area")


@dataclass(frozen=True)
class TuneConfig:
    """Everything ``samstar tune`` needs (the CLI fills it; Python users may too).

    Parameters
    ----------
    task : str
        A registered task name (``perovskite``, ``ito``, ``auco``) or a task ``.toml`` file.
    out : Path
        Run folder.
    agent : str
        Registered agent name.
    agent_options : mapping
        Keyword options of the agent (default: :data:`DEFAULT_AGENT_OPTIONS` for the agent).
    budget : int
        Number of evaluations.
    seed : int
        Seed of the agent.
    resume : bool
        Continue the journal in ``out`` (error if there is none).
    model : str, optional
        Model name or checkpoint path (default: the task's, i.e. samstar-tiny).
    size : int
        Side of the synthetic images, in pixels (registered tasks only).
    n_images : int
        Tune images an evaluation averages over (registered tasks only).
    space : tuple of str
        Tune only these parameters (default :data:`DEFAULT_SPACE`; empty: the task's whole space).
    picks : tuple of str
        Operating-point rules; the first goes to ``best_params.json``.
    tensorboard : bool
        Write TensorBoard logs.
    progress : bool
        Show a progress bar.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    tile_shape, halo : int, optional
        Tiles for large images (:mod:`samstar_env.engine.tiles`): ``tile_shape`` 0 never tiles;
        None tiles as the task file says, else automatically above twice the model's input size.
    """

    task: str
    out: Path
    agent: str = "nsga2"
    agent_options: Mapping[str, Any] | None = None
    budget: int = DEFAULT_BUDGET
    seed: int = 0
    resume: bool = False
    model: str | None = None
    size: int = DEFAULT_SIZE
    n_images: int = 1
    space: tuple[str, ...] = DEFAULT_SPACE
    picks: tuple[str, ...] = DEFAULT_PICKS
    tensorboard: bool = True
    progress: bool = True
    device: str = "auto"
    tile_shape: int | None = None
    halo: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The agent options in effect."""
        if self.agent_options is None:
            return dict(DEFAULT_AGENT_OPTIONS.get(self.agent, {}))
        return dict(self.agent_options)


# -- task --------------------------------------------------------------------------------------
def resolve_task(cfg: TuneConfig) -> Task:
    """Build the :class:`~samstar_env.task.Task` named by ``cfg.task`` (a name or a ``.toml`` file)."""
    from samstar_env.task import make_task

    spec = cfg.task
    from samstar_env.task_file import is_task_file

    if is_task_file(spec):
        from samstar_env.task_file import task_from_toml

        task, _env_options = task_from_toml(spec)
        if cfg.model is not None:
            task = task.replace(model=cfg.model)
    else:
        kw: dict[str, Any] = {"n_images": cfg.n_images, "n_test_images": 0, "size": (cfg.size, cfg.size)}
        if cfg.model is not None:
            kw["model"] = cfg.model
        task = make_task(spec, **kw)
    if cfg.space:
        task = task.replace(space=ParamSpace.subset(list(cfg.space), base=task.space.base))
    else:  # "all": every dimension of DEFAULT_DIMENSIONS, whatever the task's own default
        task = task.replace(space=ParamSpace(DEFAULT_DIMENSIONS, base=task.space.base))
    from samstar_env.engine.tiles import model_input_size
    from samstar_env.problem import shared_engine
    from samstar_env.task import adapt_to_backbone, tile_task

    engine = shared_engine(task.model, device=cfg.device)
    task = adapt_to_backbone(task, engine.backbone)  # a SAM 2 checkpoint tunes SAM 2's own parameters too
    task, line = tile_task(task, input_size=model_input_size(engine), tile_shape=cfg.tile_shape, halo=cfg.halo)
    if cfg.progress and line != "no tiles":
        print(f"samstar tune: {line}")
    return task


# -- journal -----------------------------------------------------------------------------------
# The file is a samstar_env.journal.Journal (fsynced lines; a torn last line is skipped and cut off
# before the next append); reading gives its records their tune meaning.
def _read_journal(journal: Journal) -> tuple[dict[str, Any], list[Trial]]:
    """The header and the journaled trials, which must be numbered 0, 1, ... without a gap."""
    header: dict[str, Any] | None = None
    trials: list[Trial] = []
    for rec in journal.read():
        if rec.get("kind") == "header":
            header = rec
        elif rec.get("kind") == "trial":
            t = Trial.from_dict(rec)
            if t.index != len(trials):
                raise InputError(f"{journal.path}: trial {t.index} out of order (expected {len(trials)})")
            trials.append(t)
    if header is None or header.get("format") != JOURNAL_FORMAT:
        raise InputError(f"{journal.path}: not a samstar tune journal (no {JOURNAL_FORMAT} header)")
    return header, trials


def _header(cfg: TuneConfig, task: Task) -> dict[str, Any]:
    return {
        "format": JOURNAL_FORMAT,
        "task": cfg.task,
        "agent": cfg.agent,
        "agent_options": cfg.options,
        "seed": cfg.seed,
        "budget": cfg.budget,
        "reward_names": list(task.rewards.names),
        # Task files can set reward options and weights; a resume under other ones would mix scores.
        "reward_options": to_jsonable(list(task.rewards.options), fallback=repr),
        "reward_weights": [round(float(w), 12) for w in task.rewards.weights],
        # Journaled rewards were scored under these definitions; a resume under others would mix them.
        "rewards_version": REWARDS_VERSION,
        "space": task.space.describe(),
        "space_base": task.space.base.to_dict(),
        "model": str(cfg.model if cfg.model is not None else task.model),
        "size": cfg.size,
        "n_images": cfg.n_images,
    }


# Header keys that journals written before them lack: such a journal resumes without the check.
_ADDED_HEADER_KEYS = ("reward_options", "reward_weights")


def _check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], path: Path) -> None:
    # The budget may grow on resume (continue a finished run); everything else must be identical.
    diffs = [
        k for k in new
        if k not in ("budget", "format") and not (k in _ADDED_HEADER_KEYS and k not in old)
        and to_jsonable(new[k]) != old.get(k)
    ]
    if diffs:
        detail = "; ".join(f"{k}: journal {old.get(k)!r} vs now {new[k]!r}" for k in diffs)
        raise InputError(f"cannot resume {path}: the run's settings changed ({detail})")


# -- callbacks ---------------------------------------------------------------------------------
def _short(name: str) -> str:
    return "".join(p[:3] for p in name.split("_"))[:8]


class _Progress:
    """tqdm bar: evaluations, best value per reward, hypervolume (reference point: reward 0)."""

    def __init__(self, budget: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=budget, desc="tune", unit="eval", disable=not enabled, dynamic_ncols=True)

    def __call__(self, state: RunState) -> None:
        from samstar_env.metrics.multiobjective import hypervolume

        r = np.stack([t.rewards for t in state.trials])
        best = r.max(axis=0)
        post = {_short(n): f"{v:.2f}" for n, v in zip(state.reward_names, best, strict=True)}
        post["HV"] = f"{hypervolume(np.clip(r, 0, 1)):.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _TensorBoard:
    """A scalar per reward per evaluation (step = evaluation index), hypervolume and cost."""

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(logdir))

    def __call__(self, state: RunState) -> None:
        if state.replayed:
            return  # logged by the interrupted process already
        from samstar_env.metrics.multiobjective import hypervolume

        t = state.trial
        for n, v in zip(state.reward_names, t.rewards, strict=True):
            self.writer.add_scalar(f"reward/{n}", float(v), t.index)
        r = np.stack([x.rewards for x in state.trials])
        self.writer.add_scalar("hypervolume", hypervolume(np.clip(r, 0, 1)), t.index)
        self.writer.add_scalar("cost_s", t.cost_s, t.index)
        self.writer.flush()


# -- the run -----------------------------------------------------------------------------------
def tune(cfg: TuneConfig) -> TuningResult:
    """Run (or resume) a tuning run and write its report; returns the result."""
    from samstar_env.problem import TuningProblem

    out = Path(cfg.out)
    jpath = out / "journal.jsonl"
    if cfg.budget < 1:
        raise InputError(f"--budget must be >= 1, got {cfg.budget}")
    if cfg.resume and not jpath.is_file():
        raise MissingFileError(f"--resume: no journal at {jpath}")
    if not cfg.resume and jpath.exists():
        raise InputError(f"{out} already holds a run (journal.jsonl); pass --resume to continue it, or choose another --out")
    task = resolve_task(cfg)
    agent = make_agent(cfg.agent, **cfg.options)
    header = _header(cfg, task)
    journal = Journal(jpath)
    replay: list[Trial] = []
    if cfg.resume:
        old, replay = _read_journal(journal)
        _check_resumable(old, header, jpath)
        if len(replay) > cfg.budget:
            raise InputError(f"cannot resume {jpath}: it holds {len(replay)} evaluations, more than --budget {cfg.budget}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        journal.append({"kind": "header", **header})

    def journal_cb(state: RunState) -> None:
        if not state.replayed:
            journal.append({"kind": "trial", **state.trial.to_dict()})

    progress = _Progress(cfg.budget, cfg.progress)
    tb = _TensorBoard(out / "tb") if cfg.tensorboard else None
    problem = TuningProblem(task, device=cfg.device)
    callbacks = [journal_cb, progress] + ([tb] if tb is not None else [])
    try:
        result = agent.run(problem, budget=cfg.budget, seed=cfg.seed, callbacks=callbacks, replay=replay)
    finally:
        journal.close()
        progress.close()
    result = TuningResult(
        agent=result.agent, seed=result.seed, reward_names=result.reward_names, trials=result.trials,
        task=task.name, budget=result.budget, agent_options=result.agent_options, space=result.space,
        metadata={**result.metadata, "config": to_jsonable(cfg, non_finite="str", fallback=str)},
    )
    write_report(result, out, problem=problem, picks=cfg.picks, writer=None if tb is None else tb.writer)
    if tb is not None:
        tb.writer.close()
    return result


def write_report(result: TuningResult, out: Path, *, problem: TuningProblem, picks: Sequence[str] = DEFAULT_PICKS, writer: Any = None) -> dict[str, Path]:
    """``result.json``, ``front.json``, ``front.png``, operating points, overlays, ``best_params.json``."""
    from samstar_env.report_plots import overlay, pareto_plot, save_png

    out = Path(out)
    files: dict[str, Path] = {}
    files["result"] = out / "result.json"
    result.to_json(files["result"])
    names = result.reward_names
    front = [
        {"index": t.index, "params": t.params.to_dict(), "rewards": dict(zip(names, map(float, t.rewards), strict=True)), "cost_s": t.cost_s}
        for t in result.front
    ]
    files["front"] = out / "front.json"
    files["front"].write_text(json.dumps({"reward_names": list(names), "hypervolume": result.hypervolume(), "front": front}, indent=1) + "\n")
    points = []
    for rule in picks or DEFAULT_PICKS:
        try:
            points.append(choose(result, rule, problem=problem))
        except (ValueError, InputError) as exc:
            print(f"samstar tune: skipping operating point {rule!r}: {exc}")
    files["front_png"] = pareto_plot(result, out / "front.png", highlight=[(p.rule, p.trial.index) for p in points])
    if points:
        files["best_params"] = out / "best_params.json"
        files["best_params"].write_text(json.dumps(points[0].to_dict(names), indent=2, sort_keys=True) + "\n")
        (out / "operating_points.json").write_text(json.dumps([p.to_dict(names) for p in points], indent=1) + "\n")
    ov = out / "overlays"
    ov.mkdir(exist_ok=True)
    image = problem.task.images[0]
    for p in points:
        masks = problem.engine.generate(image, p.trial.params)
        rgb = overlay(image.image, masks.to_label_image())
        stem = p.rule.replace(":", "-")
        files[f"overlay_{stem}"] = save_png(rgb, ov / f"{stem}.png", title=f"{p.rule}: trial {p.trial.index}, {len(masks)} masks")
        if writer is not None:
            writer.add_image(f"operating_point/{stem}", rgb, len(result.trials), dataformats="HWC")
    if writer is not None:
        # A few front members too (the knee and the extremes are above); the first four by index.
        for t in result.front[:4]:
            rgb = overlay(image.image, problem.engine.generate(image, t.params).to_label_image())
            writer.add_image(f"front/trial_{t.index:04d}", rgb, len(result.trials), dataformats="HWC")
        hp = {"agent": result.agent, "seed": result.seed, "budget": result.budget or 0, "task": result.task or ""}
        hp.update({f"agent.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in result.agent_options.items()})
        metrics = {"hparam/hypervolume": result.hypervolume()}
        metrics.update({f"hparam/best_{n}": float(v) for n, v in zip(names, result.rewards.max(axis=0), strict=True)})
        writer.add_hparams(hp, metrics, run_name="hparams")
    return files


# -- command line ------------------------------------------------------------------------------
def _parse_opt(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--agent-opt expects KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def parse_space(text: str | None) -> tuple[str, ...]:
    """The tuned parameter names of a ``--space`` option (shared by ``samstar tune`` and ``reproduce``).

    Examples
    --------
    >>> parse_space("pred_iou_thresh, box_nms_thresh")
    ('pred_iou_thresh', 'box_nms_thresh')
    >>> parse_space("all")  # the task's whole space
    ()
    >>> parse_space(None) == DEFAULT_SPACE
    True
    """
    if text is None:
        return DEFAULT_SPACE
    if text == "all":
        return ()
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _run_cli(args: argparse.Namespace) -> int:
    opts = dict(args.agent_opt) if args.agent_opt else None
    if opts is not None and args.agent in DEFAULT_AGENT_OPTIONS:
        opts = {**DEFAULT_AGENT_OPTIONS[args.agent], **opts}
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.task).stem}-{args.agent}-s{args.seed}"
    cfg = TuneConfig(
        task=args.task, out=out, agent=args.agent, agent_options=opts, budget=args.budget, seed=args.seed,
        resume=args.resume, model=args.model, size=args.size, n_images=args.n_images,
        space=parse_space(args.space), picks=tuple(args.pick or DEFAULT_PICKS),
        tensorboard=not args.no_tensorboard, progress=not args.no_progress, device=args.device,
        tile_shape=args.tile_shape, halo=args.halo,
    )
    t0 = time.perf_counter()
    result = tune(cfg)
    print(
        f"samstar tune: {len(result.trials)} evaluations in {time.perf_counter() - t0:.1f} s; "
        f"{len(result.front)} non-dominated; hypervolume {result.hypervolume():.4f}; report in {out}/ "
        f"(best_params.json for `samstar segment`)"
    )
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``samstar tune``."""
    from samstar_env.agents import available_agents

    p = subparsers.add_parser(
        "tune",
        help="tune SAM's mask generator on a task (NSGA-II by default) and write a report",
        description=(
            "Tune the AMG hyperparameters on TASK (perovskite, ito, auco or a task .toml) against its physics "
            f"rewards. With no options: NSGA-II, {DEFAULT_BUDGET} evaluations, one {DEFAULT_SIZE}x{DEFAULT_SIZE} image, "
            "samstar-tiny (a few minutes on 2 CPU cores)."
        ),
    )
    p.add_argument("task", help="perovskite, ito, auco, or a task .toml file")
    p.add_argument("--agent", default="nsga2", choices=available_agents(), help="tuner (default nsga2)")
    p.add_argument("--agent-opt", action="append", type=_parse_opt, metavar="KEY=VALUE", help="agent option (JSON value), repeatable; e.g. pop_size=50")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help=f"number of evaluations (default {DEFAULT_BUDGET})")
    p.add_argument("--seed", type=int, default=0, help="agent seed (default 0)")
    p.add_argument("--out", help="run folder (default runs/TASK-AGENT-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the journal in --out (after a crash or kill)")
    p.add_argument("--model", help="model name or checkpoint path (default: samstar-tiny)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"synthetic image side in px (default {DEFAULT_SIZE})")
    p.add_argument("--n-images", type=int, default=1, help="tune images averaged per evaluation (default 1)")
    p.add_argument("--space", help="comma-separated parameters to tune, or 'all' for the task's whole space (default: the cache-replayed filters " + ",".join(DEFAULT_SPACE) + ")")
    p.add_argument("--pick", action="append", help="operating-point rule: " + ", ".join(RULES) + " or a reward name; repeatable; the first goes to best_params.json (default: " + ", ".join(DEFAULT_PICKS) + ")")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-tensorboard", action="store_true", help="skip TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tiling_arguments(p)
    p.set_defaults(func=_run_cli)
