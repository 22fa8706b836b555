"""SamStarEnv: SAM's automatic-mask-generator hyperparameters as a Gymnasium environment.

Every step is one evaluation of :meth:`samstar_env.problem.TuningProblem.evaluate`, the same call the
black-box tuners make, so the RL and black-box paths give identical numbers.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from samstar_env.data.micrograph import Micrograph
from samstar_env.defaults import ENV_EPISODE_BUDGET, ENV_MAX_MASKS
from samstar_env.observation import (
    IMAGE_FEATURE_HIGH,
    IMAGE_FEATURE_LOW,
    IMAGE_FEATURE_NAMES,
    ImageDescriptors,
    assemble_observation,
    describe_image,
    mean_descriptors,
    thumbnail,
)
from samstar_env.params import AmgParams
from samstar_env.problem import Evaluation, TuningProblem
from samstar_env.task import Task, tile_task
from samstar_env.type_aliases import DecodeCache, RewardSuiteLike, Segmenter

if TYPE_CHECKING:
    from samstar_env.engine import MaskSet

_log = logging.getLogger("samstar_env.env")

EpisodeMode = Literal["budget", "contextual"]
ObsMode = Literal["features", "thumbnail"]
RewardMode = Literal["value", "improvement"]

DEFAULT_BUDGET = ENV_EPISODE_BUDGET
"""Evaluations per tuning session in ``budget`` mode (also the registered ``max_episode_steps``);
:data:`samstar_env.defaults.ENV_EPISODE_BUDGET`."""

_DESCRIPTOR_CACHE_SIZE = 4096

# float32 rounding of an action that is exactly on the bound must not count as out of bounds.
_ACTION_TOLERANCE = 1e-6


class ActionClippedWarning(UserWarning):
    """An action outside ``[-1, 1]`` was clipped onto the action space before decoding."""


@dataclass(frozen=True)
class EvalCost:
    """What one evaluation cost (:attr:`SamStarEnv.last_cost`): a measurement, not an outcome.

    Wall-clock time and cache hits depend on what ran before (the second identical evaluation is a
    cache hit), not on the seed and the action, so they are kept out of the step's ``info``: that
    dict holds only what the seed and the action determine, which is what Gymnasium's ``check_env``
    determinism check and users comparing ``info`` dicts compare. Two costs compare equal when
    every field is equal.

    Parameters
    ----------
    seconds : float
        Wall-clock seconds of the evaluation (segmentation + rewards + optional GT metrics).
    cache_hits, cache_misses : int
        Engine cache hits and misses during this evaluation, summed over the engine's caches.
    engine : mapping
        All engine counters' changes during this evaluation (``"a.b" -> number``).

    Examples
    --------
    >>> EvalCost(seconds=0.5, cache_hits=2) == EvalCost(seconds=0.5, cache_hits=2)
    True
    >>> EvalCost(seconds=0.5) == EvalCost(seconds=0.7)
    False
    """

    seconds: float
    cache_hits: int = 0
    cache_misses: int = 0
    engine: Mapping[str, float] = field(default_factory=dict)

    def __hash__(self) -> int:
        # The engine mapping is a dict: hash what identifies the measurement without it.
        return hash((self.seconds, self.cache_hits, self.cache_misses, tuple(sorted(self.engine.items()))))

    @classmethod
    def of(cls, ev: Evaluation) -> EvalCost:
        """The cost of an :class:`~samstar_env.problem.Evaluation`."""
        eng = dict(ev.details.get("engine", {}))
        return cls(seconds=float(ev.cost_s), cache_hits=ev.cache_hits, cache_misses=ev.cache_misses, engine=eng)


def _plain(value: Any) -> Any:
    """A fresh, comparable copy of reward details: numpy scalars -> Python, NaN -> None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return [_plain(v) for v in value.tolist()]
        return value.copy()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        # NaN != NaN would make identical transitions look different.
        return v if math.isfinite(v) else None
    return value


class SamStarEnv(gym.Env):
    """Tune Segment Anything's automatic mask generator on micrographs with physics rewards (SAM*).

    ## Description

    SAM* (Barakati et al., arXiv 2509.07047) makes Segment Anything task-adaptive for nanoparticle
    micrographs by tuning the hyperparameters of its automatic mask generator (AMG) against
    label-free physics rewards (particle overlap, size, shape, ...). In this environment an agent
    proposes AMG hyperparameters, the masks are generated (through samstar's exact, cached
    :class:`~samstar_env.engine.MaskEngine`) and scored, and the agent observes image descriptors
    and how its proposals fared. Each step is one call of
    :meth:`samstar_env.problem.TuningProblem.evaluate`, exactly what the black-box tuners call.

    Two episode modes:

    * ``budget`` (default): an episode is a tuning session of ``budget`` evaluations on one task
      instance: all of the task's images (their rewards averaged), or ``images_per_episode`` images
      drawn from the task's images at each reset.
    * ``contextual``: one evaluation per episode, on a new image drawn at each reset. An agent
      learns an amortized policy from image descriptors to parameters, usable per frame at deploy
      time (``samstar train-policy`` trains one on a warm pool of images,
      :func:`samstar_env.policy.pool.policy_pool`).

    ## Action Space

    ``Box(-1, 1, (d,), float32)`` with ``d = task.space.dim``; decoded by the task's
    :class:`~samstar_env.params.ParamSpace` (the only decoder; ``info["params"]`` shows the
    result). The default space tunes, in order: points_per_side, pred_iou_thresh,
    stability_score_thresh, stability_score_offset, box_nms_thresh, crop_n_layers,
    crop_nms_thresh, crop_overlap_ratio, crop_n_points_downscale_factor, min_mask_region_area.
    An action of the wrong shape, or containing NaN or Inf, raises ``ValueError``; values outside
    ``[-1, 1]`` are clipped with an :class:`ActionClippedWarning`.

    ## Observation Space

    ``obs_mode="features"``: a flat ``Box(float32)`` of ``13 + d + 2k + 1`` features (``k`` rewards);
    :attr:`observation_names` names each one and :attr:`feature_slices` gives the blocks:

    =========  ===========================  ===============================================
    index      name                         meaning
    =========  ===========================  ===============================================
    0-4        q01 q25 q50 q75 q99          intensity quantiles of the [0, 1] image
    5          noise_sigma                  Gaussian noise level (Haar-MAD estimator)
    6          log2_scale_px                log2 characteristic particle diameter (LoG), px
    7          log2_scale_nm                same in nm (0 without a pixel size)
    8          has_pixel_size               1 when a calibration is known
    9          log2_scale_vs_prior          log2(LoG diameter / prior mean diameter)
    10         scale_frac                   LoG diameter / sqrt(H W)
    11         foreground_fraction          particle-side fraction of Otsu's threshold
    12         polarity                     +1 bright particles, -1 dark
    13..       prev_action/<param>          previous params, normalized (``space.encode``), 0 at reset
    ..         prev_reward/<reward>         previous reward vector, 0 at reset
    ..         best_reward/<reward>         best value so far of each reward, 0 at reset
    last       budget_left                  remaining fraction of the episode's evaluations
    =========  ===========================  ===============================================

    Image descriptors are computed once per image (cached by content) and averaged over the
    episode's images. ``obs_mode="thumbnail"`` gives a ``Dict`` with these ``"features"`` and a
    ``"thumbnail"``: ``Box(0, 255, (s, s, 1), uint8)`` of the episode's first image, for CNN
    policies.

    ## Rewards

    A ``float32`` vector of ``k`` label-free physics rewards, in ``[0, 1]``, higher is better, in
    :attr:`reward_names` order (the task's ``RewardSuite``; see :attr:`reward_space`, the MO-Gymnasium
    convention). ``reward_mode="value"`` (default) returns the evaluated parameters' rewards;
    ``"improvement"`` returns how much each reward's best-so-far value rose (its episode sum is
    the best value found: an anytime-tuning objective). Use
    :class:`~samstar_env.wrappers.ScalarizeReward` for single-objective agents (stable-baselines3).
    Ground-truth metrics (``gt_metrics=True``) appear in ``info["gt"]`` and are never part of the
    reward.

    ## Starting State

    ``reset`` chooses the episode's images (all task images, or a draw from ``self.np_random``)
    and returns their descriptors with zero previous action and rewards and a full budget. Pass
    ``options={"images": [Micrograph, ...]}`` (or ``{"image": Micrograph}``) to evaluate on
    given images, e.g. a new frame for a trained contextual policy.

    ## Episode End

    The episode terminates after ``budget`` evaluations (``budget`` mode; the remaining budget is
    part of the observation, so this is a true terminal state) or after one evaluation
    (``contextual`` mode). Registered ids also carry ``max_episode_steps`` (a truncation safety
    net equal to the default budget: pass ``max_episode_steps=`` to ``gym.make`` together with a
    larger ``budget``). Stepping a finished episode raises ``RuntimeError``.

    ## Arguments

    ```python
    import gymnasium as gym
    import samstar_env  # registers the samstar/ ids

    env = gym.make("samstar/Perovskite-v4")  # synthetic perovskite tune image, samstar-tiny
    env = gym.make("samstar/Custom-v4", images="my_folder", prior={...}, rewards=[...], model="sam.pth")
    ```

    task : Task
        Images, physics prior, rewards, search space and model (see :func:`samstar_env.task.make_task`).
    mode : {"budget", "contextual"}
        Episode mode (see Description).
    budget : int
        Evaluations per episode in ``budget`` mode (ignored in ``contextual`` mode).
    images_per_episode : int, optional
        Images drawn (without replacement) from ``task.images`` at each reset; default: all of
        them in ``budget`` mode, 1 in ``contextual`` mode.
    obs_mode : {"features", "thumbnail"}
        Flat features, or a Dict adding a uint8 thumbnail.
    thumbnail_size : int
        Thumbnail side in pixels.
    reward_mode : {"value", "improvement"}
        What the reward vector reports (see Rewards).
    gt_metrics : bool
        Add ground-truth metrics to ``info["gt"]`` where the images carry labels.
    engine : MaskEngine, optional
        Engine to evaluate with (default: the process-wide engine of ``task.model``, loaded
        lazily on the first step, so constructing the env loads no model). Not pickled: a copy
        uses the process-wide engine. Direct construction only (not a ``gym.make`` kwarg: the
        spec would hold it).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for an engine built from a model name or path.
    max_masks : int or None
        Mask budget per image of up to 512² pixels, and per 512² of larger images (default
        :data:`~samstar_env.defaults.ENV_MAX_MASKS`, 1000; a 4096² frame: 64,000): an action
        that keeps more masks on an image (after AMG's filters and NMS) is not scored there; its
        reward on that image is the reward space's low end (0), ``info["over_mask_budget"]`` holds
        the counts, and a warning says so once per env. This bounds a step's cost: scoring takes
        0.2-1.5 ms per mask, and loose thresholds keep up to 13,000 on a 512² image. ``None``
        scores every action.
    tile_shape, halo : int, optional
        Cut the images into tiles of ``tile_shape`` pixels with ``halo`` pixels of context
        (default: a quarter tile), each segmented at native resolution through the cache and
        stitched (:mod:`samstar_env.engine.tiles`); the rewards score the stitched masks. 0 never
        tiles. None keeps the task's own setting (a task file's ``[task] tile_shape``). The env
        does not tile on its own, since building it loads no model: ``samstar tune`` and
        ``samstar segment`` choose tiles automatically for large images. Tuning the tiles: a space
        with the ``tile_shape`` and ``halo`` dimensions (:data:`~samstar_env.params.TILING_DIMENSIONS`).

    ``info`` after ``step``: ``params`` (the decoded :class:`~samstar_env.params.AmgParams`),
    ``action`` (the clipped action evaluated), ``rewards`` (name -> value of the evaluation),
    ``n_masks`` (total), ``n_masks_per_image``, ``reward_details`` (one suite details dict per
    image), ``image_names``, ``evaluation_index`` (0-based), ``best_rewards``, and ``gt`` (only
    with ``gt_metrics=True`` and labelled images): only what the seed and the action determine.
    What the step cost (seconds, cache hits and misses) is :attr:`last_cost`. After ``reset``:
    ``image_names`` and ``descriptors`` (name -> value).

    ## Version History

    * v4: rewards version 3: AuCo's ``small_particle_detection`` is an F2 score against small LoG
      blobs (recall alone saturated at 1.0) and ``aggregate_coverage`` charges fragments and
      nested duplicates on an aggregate; the other tasks' presets score as in v3, but the rewards
      version keys journals, bench records and reference fronts, so every id moves together.
    * v3 (later, same id): ``tile_shape`` and ``halo`` options (default: the task's setting, so
      nothing changes unless they are given); the mask budget of images larger than 512² grows
      with their area (the registered ids' 512² images keep 1000).
    * v3: a mask budget (``max_masks``, default 1000 per image): an action that keeps more masks
      is not scored on that image (reward 0, ``info["over_mask_budget"]``), so no step costs more
      than a second after ``samstar cache warm`` (v2: loose thresholds at points_per_side 64 with
      crops kept up to 13,000 masks, 2-26 s to score). Everything else as v2.
    * v2 (later, same id): what an evaluation cost (wall time, cache hits and misses) left ``info``
      for :attr:`last_cost`, so ``info`` holds only what the seed and the action decide and
      Gymnasium's determinism check compares it whole; observations, rewards and dynamics unchanged.
    * v2: the registered ids' default space is ``ParamSpace.env_default()`` (crop layers 0-1,
      downscale factor 1-2, SAM's crop overlap), every action of which ``samstar cache warm``
      decodes ahead, so a step after warming is a replay (v1: the full default space, where a
      random step could decode for 100 s).
    * v1: rewards version 2: per-mask mean rewards (overlap, shape, size window, duplicates,
      boundary) are taken over at least half the label-free expected particle count, so a few
      clean masks no longer score as high as every particle segmented (``count_floor``).
    * v0: initial version (samstar 0.1).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: Task,
        *,
        mode: EpisodeMode = "budget",
        budget: int = DEFAULT_BUDGET,
        images_per_episode: int | None = None,
        obs_mode: ObsMode = "features",
        thumbnail_size: int = 64,
        reward_mode: RewardMode = "value",
        gt_metrics: bool = False,
        engine: Segmenter[MaskSet] | None = None,
        device: str = "auto",
        max_masks: int | None = ENV_MAX_MASKS,
        tile_shape: int | None = None,
        halo: int | None = None,
    ) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"SamStarEnv: task must be a samstar_env.task.Task, got {type(task).__name__}")
        if tile_shape is not None or halo is not None:
            if tile_shape is None and not task.space.base.tile_shape:
                raise ValueError("SamStarEnv: halo= needs tile_shape= (the task's images are not tiled)")
            task, _ = tile_task(task, input_size=None, tile_shape=tile_shape, halo=halo, source="SamStarEnv: tile_shape")
        if mode not in ("budget", "contextual"):
            raise ValueError(f"SamStarEnv: mode must be 'budget' or 'contextual', got {mode!r}")
        if obs_mode not in ("features", "thumbnail"):
            raise ValueError(f"SamStarEnv: obs_mode must be 'features' or 'thumbnail', got {obs_mode!r}")
        if reward_mode not in ("value", "improvement"):
            raise ValueError(f"SamStarEnv: reward_mode must be 'value' or 'improvement', got {reward_mode!r}")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"SamStarEnv: budget must be a positive integer, got {budget!r}")
        if images_per_episode is None:
            images_per_episode = 1 if mode == "contextual" else None
        if images_per_episode is not None and not 1 <= int(images_per_episode) <= len(task.images):
            raise ValueError(
                f"SamStarEnv: images_per_episode={images_per_episode} out of range; task {task.name!r} has {len(task.images)} image(s)"
            )
        if int(thumbnail_size) < 8:
            raise ValueError(f"SamStarEnv: thumbnail_size must be >= 8, got {thumbnail_size!r}")

        self.task = task
        self.mode: EpisodeMode = mode
        self.budget = 1 if mode == "contextual" else int(budget)
        self.images_per_episode = None if images_per_episode is None else int(images_per_episode)
        self.obs_mode: ObsMode = obs_mode
        self.thumbnail_size = int(thumbnail_size)
        self.reward_mode: RewardMode = reward_mode
        self.problem = TuningProblem(task, gt_metrics=gt_metrics, engine=engine, device=device, max_masks=max_masks)
        self.max_masks = self.problem.max_masks
        self._warned_budget = False
        self.space = task.space

        self.reward_names: tuple[str, ...] = tuple(task.rewards.names)
        self.reward_dim = len(self.reward_names)
        rs = task.rewards.reward_space
        self.reward_space = spaces.Box(
            low=np.asarray(rs.low, np.float32), high=np.asarray(rs.high, np.float32), dtype=np.float32
        )
        d, k = self.space.dim, self.reward_dim
        self.action_space = spaces.Box(-1.0, 1.0, shape=(d,), dtype=np.float32)

        self.observation_names: tuple[str, ...] = (
            *IMAGE_FEATURE_NAMES,
            *(f"prev_action/{n}" for n in self.space.names),
            *(f"prev_reward/{n}" for n in self.reward_names),
            *(f"best_reward/{n}" for n in self.reward_names),
            "budget_left",
        )
        n_img = len(IMAGE_FEATURE_NAMES)
        self.feature_slices: dict[str, slice] = {
            "image": slice(0, n_img),
            "prev_action": slice(n_img, n_img + d),
            "prev_reward": slice(n_img + d, n_img + d + k),
            "best_reward": slice(n_img + d + k, n_img + d + 2 * k),
            "budget_left": slice(n_img + d + 2 * k, n_img + d + 2 * k + 1),
        }
        low = np.concatenate([IMAGE_FEATURE_LOW, -np.ones(d), self.reward_space.low, self.reward_space.low, [0.0]])
        high = np.concatenate([IMAGE_FEATURE_HIGH, np.ones(d), self.reward_space.high, self.reward_space.high, [1.0]])
        features = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        if obs_mode == "features":
            self.observation_space: spaces.Space = features
        else:
            s = self.thumbnail_size
            self.observation_space = spaces.Dict(
                {"features": features, "thumbnail": spaces.Box(0, 255, shape=(s, s, 1), dtype=np.uint8)}
            )

        self._descriptors: dict[str, ImageDescriptors] = {}
        self._images: tuple[Micrograph, ...] | None = None
        self._image_features = np.zeros(n_img, np.float32)
        self._thumb: np.ndarray | None = None
        self._prev_action = np.zeros(d, np.float32)
        self._prev_reward = np.zeros(k, np.float32)
        self._best = np.zeros(k, np.float32)
        self._t = 0
        self._last_cost: EvalCost | None = None

    # -- MO-Gymnasium / introspection -----------------------------------------------------------
    @property
    def reward_suite(self) -> RewardSuiteLike[MaskSet]:
        """The task's ``RewardSuite`` (its ``scalarize`` is the default scalarization)."""
        return self.task.rewards

    @property
    def last_cost(self) -> EvalCost | None:
        """What the latest step's evaluation cost (seconds, cache hits and misses, engine counters).

        ``None`` before the first step of an episode. Not in the step's ``info``: it depends on what
        ran before, not on the seed and the action (see :class:`EvalCost`). Through wrappers:
        ``env.unwrapped.last_cost``.
        """
        return self._last_cost

    @property
    def images(self) -> tuple[Micrograph, ...]:
        """The current episode's images (empty before the first reset)."""
        return () if self._images is None else self._images

    def descriptors(self, image: Micrograph) -> ImageDescriptors:
        """Observation descriptors of ``image`` (computed once per image content, then cached)."""
        key = image.fingerprint()
        if key not in self._descriptors:
            if len(self._descriptors) >= _DESCRIPTOR_CACHE_SIZE:
                # Streams of new frames (reset(options=...)) must not grow the cache without bound.
                self._descriptors.pop(next(iter(self._descriptors)))
            self._descriptors[key] = describe_image(image, self.task.prior)
        return self._descriptors[key]

    # -- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"images", "image"})
        if unknown:
            raise ValueError(f"SamStarEnv.reset: unknown option(s) {unknown}; expected 'images' or 'image'")
        if "image" in options or "images" in options:
            given = (options["image"],) if "image" in options else tuple(options["images"])
            if not given or not all(isinstance(im, Micrograph) for im in given):
                raise TypeError("SamStarEnv.reset: options['images'] must be a non-empty sequence of Micrograph")
            images = given
        elif self.images_per_episode is None:
            images = self.task.images
        else:
            pool = self.task.images
            idx = self.np_random.choice(len(pool), size=self.images_per_episode, replace=False)
            images = tuple(pool[int(i)] for i in idx)
        self._images = tuple(images)
        descs = [self.descriptors(im) for im in self._images]
        self._image_features = mean_descriptors(descs)
        self._thumb = thumbnail(self._images[0], self.thumbnail_size) if self.obs_mode == "thumbnail" else None
        self._prev_action = np.zeros(self.space.dim, np.float32)
        self._prev_reward = np.zeros(self.reward_dim, np.float32)
        self._best = np.zeros(self.reward_dim, np.float32)
        self._t = 0
        self._last_cost = None
        info = {
            "image_names": tuple(im.name for im in self._images),
            "descriptors": dict(zip(IMAGE_FEATURE_NAMES, (float(v) for v in self._image_features), strict=True)),
        }
        return self._observation(), info

    def step(self, action: Any) -> tuple[Any, np.ndarray, bool, bool, dict[str, Any]]:
        if self._images is None:
            raise RuntimeError("SamStarEnv.step: call reset() before step()")
        if self._t >= self.budget:
            raise RuntimeError(
                f"SamStarEnv.step: the episode is over ({self.budget} evaluation(s) done); call reset()"
            )
        act = self._check_action(action)
        params: AmgParams = self.space.decode(act)
        self._announce_cold(params)
        ev = self.problem.evaluate(params, images=self._images)
        vec = np.asarray(ev.rewards, dtype=np.float32)
        if vec.shape != (self.reward_dim,) or not np.isfinite(vec).all():
            raise RuntimeError(f"SamStarEnv.step: the reward suite returned {vec!r}; expected {self.reward_dim} finite values")
        vec = np.clip(vec, self.reward_space.low, self.reward_space.high)
        new_best = np.maximum(self._best, vec)
        reward = (new_best - self._best) if self.reward_mode == "improvement" else vec.copy()
        self._best = new_best
        # The evaluated parameters, normalized: grid values snap to their bin centre and repaired
        # combinations show as evaluated, so the policy sees what ran, not what it asked for.
        self._prev_action = self.space.encode(params)
        self._prev_reward = vec.copy()
        self._t += 1
        self._last_cost = EvalCost.of(ev)
        terminated = self._t >= self.budget

        info: dict[str, Any] = {
            "params": params,
            "action": act.copy(),
            "rewards": {n: float(v) for n, v in zip(self.reward_names, vec, strict=True)},
            "n_masks": int(sum(ev.n_masks)),
            "n_masks_per_image": tuple(int(n) for n in ev.n_masks),
            "reward_details": [_plain(d) for d in ev.details.get("rewards", [])],
            "image_names": tuple(im.name for im in self._images),
            "evaluation_index": self._t - 1,
            "best_rewards": self._best.copy(),
        }
        if ev.gt is not None:
            info["gt"] = _plain(dict(ev.gt))
        over = ev.details.get("over_mask_budget")
        if over:
            info["over_mask_budget"] = tuple(int(n) for n in over)
            if not self._warned_budget:
                self._warned_budget = True
                _log.warning(
                    "an action kept %s masks on an image, over its budget (max_masks=%d per 512² pixels): not "
                    "scored (reward 0 there). Pass max_masks=None (or higher) to score such actions; see "
                    "SamStarEnv's max_masks. Parameters: %s",
                    max(over), self.max_masks, params,
                )
        return self._observation(), reward.astype(np.float32), terminated, False, info

    # -- helpers ------------------------------------------------------------------------------
    def _announce_cold(self, params: AmgParams) -> None:
        # A step that must decode costs seconds to minutes instead of milliseconds: say so, and how
        # to avoid it. Engines without the cache interface (a user's Segmenter) are not asked.
        engine = self.problem.engine
        if not isinstance(engine, DecodeCache):
            return
        missing = [u for im in self.images for u in engine.missing_units(im, params)]
        if not missing:
            return
        secs = engine.expected_decode_seconds(missing)
        _log.warning(
            "samstar env: this step decodes %d new crop/grid unit(s), %d prompts (points_per_side=%s, crop_n_layers=%d, "
            "crop_n_points_downscale_factor=%d)%s; `samstar cache warm %s` decodes the whole space ahead",
            len(missing), sum(u.n_points for u in missing), params.points_per_side, params.crop_n_layers,
            params.crop_n_points_downscale_factor, "" if secs is None else f", about {secs:.0f} s", self.task.name,
        )

    def _check_action(self, action: Any) -> np.ndarray:
        d = self.space.dim
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"SamStarEnv.step: action {action!r} is not numeric ({exc})") from None
        if arr.shape != (d,):
            raise ValueError(
                f"SamStarEnv.step: action has shape {arr.shape}; expected ({d},): one value in [-1, 1] per tuned "
                f"parameter ({', '.join(self.space.names)})"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"SamStarEnv.step: action contains NaN or Inf: {arr.tolist()}")
        if (np.abs(arr) > 1.0 + _ACTION_TOLERANCE).any():
            bad = [n for n, v in zip(self.space.names, arr, strict=True) if abs(v) > 1.0 + _ACTION_TOLERANCE]
            warnings.warn(
                f"SamStarEnv.step: action outside [-1, 1] for {bad}; clipped to the action space",
                ActionClippedWarning,
                stacklevel=3,
            )
        return np.clip(arr, -1.0, 1.0).astype(np.float32)

    def _observation(self) -> Any:
        if self.obs_mode == "thumbnail":
            assert self._thumb is not None
        return assemble_observation(
            self._image_features, prev_action=self._prev_action, prev_reward=self._prev_reward,
            best_reward=self._best, budget_left=(self.budget - self._t) / self.budget,
            thumb=self._thumb if self.obs_mode == "thumbnail" else None,
        )

    def __repr__(self) -> str:
        return (
            f"SamStarEnv(task={self.task.name!r}, mode={self.mode!r}, budget={self.budget}, "
            f"action_dim={self.space.dim}, reward_names={self.reward_names})"
        )
