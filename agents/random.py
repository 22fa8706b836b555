"""Random search: uniform actions in ``[-1, 1]^d`` (the floor every tuner must beat)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samstar_env.agents.base import Agent
from samstar_env.agents.registry import register_agent
from samstar_env.type_aliases import ProblemLike


@register_agent("random")
class RandomAgent(Agent):
    """Uniform random search in action space (so grid dimensions get equal-width bins).

    Parameters
    ----------
    batch_size : int
        Actions asked at once (default 16: independent draws, so larger batches only help an
        executor evaluate in parallel; the sequence of actions does not depend on it).
    """

    def __init__(self, *, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(batch_size=batch_size)
        self._batch = int(batch_size)
        self._rng = np.random.default_rng(0)

    @property
    def batch_size(self) -> int:
        return self._batch

    def _setup(self, problem: ProblemLike) -> None:
        self._rng = np.random.default_rng(self.seed)

    def ask(self, n: int) -> np.ndarray:
        # Row by row so the stream of actions is the same whatever the batch size.
        return np.stack([self._rng.uniform(-1.0, 1.0, size=self.dim) for _ in range(n)]) if n else np.zeros((0, self.dim))

    def tell(self, actions: np.ndarray, reward_vectors: np.ndarray, *, evaluations: Sequence[Any] | None = None) -> None:
        """Random search learns nothing."""
