"""Where runs and evaluations execute: in this process, or on a Dask cluster.

Two levels can be distributed:

- runs of a suite: ``DaskExecutor.map_runs`` sends each :class:`~samstar_env.benchmarks.runner.RunSpec`
  to a worker and yields records as they complete;
- evaluations of a population: :func:`dask_evaluator` is an ``Agent.run`` evaluator hook that sends
  each parameter set of a population to the workers and returns evaluations in ask order.

Both give results identical to local execution: the engine is exact, agents are seeded, and a
:class:`~samstar_env.problem.TuningProblem` sent to a worker rebuilds its engine there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from samstar_env.benchmarks.runner import RunSpec, execute_run
from samstar_env.errors import MissingExtraError


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError('the Dask executor needs the "dist" extra: pip install "samstar[dist]"') from exc
    return distributed


class LocalExecutor:
    """Run the runs in this process, one after another.

    Parameters
    ----------
    evaluator : callable, optional
        Population evaluator for ``Agent.run`` (e.g. :func:`dask_evaluator` to evaluate each
        population on a cluster while the runs themselves stay here).
    """

    def __init__(self, *, evaluator: Any | None = None) -> None:
        self.evaluator = evaluator

    def map_runs(self, specs: Sequence[RunSpec], *, overlay_dir: Path | None = None) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Yield (spec, record) for each spec, in order."""
        for spec in specs:
            yield spec, execute_run(spec, overlay_dir=overlay_dir, evaluator=self.evaluator)


class DaskExecutor:
    """Run a suite's runs on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        An existing client. Otherwise one is made for ``scheduler`` (an address such as
        ``tcp://host:8786``, e.g. a dask-jobqueue SLURMCluster's), or for a new LocalCluster.
    scheduler : str, optional
        Scheduler address.
    n_workers : int
        Worker processes of the LocalCluster made when neither ``client`` nor ``scheduler`` is given.
    """

    def __init__(self, *, client: Any | None = None, scheduler: str | None = None, n_workers: int = 2) -> None:
        distributed = _require_distributed()
        self._own = client is None
        if client is None:
            if scheduler:
                client = distributed.Client(scheduler)
            else:
                # One thread per worker: torch already uses the cores of its process.
                cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
                client = distributed.Client(cluster)
        self.client = client

    def map_runs(self, specs: Sequence[RunSpec], *, overlay_dir: Path | None = None) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Submit every spec and yield (spec, record) in completion order.

        Overlays are written by the workers, so ``overlay_dir`` must be on a shared file system
        (as it is for a LocalCluster or a SLURM cluster with a shared home).
        """
        distributed = _require_distributed()
        if not specs:
            return
        futures = {self.client.submit(execute_run, spec, overlay_dir=overlay_dir, pure=False, key=f"run-{spec.run_id}-{id(self)}"): spec for spec in specs}
        for fut in distributed.as_completed(futures):
            yield futures[fut], fut.result()

    def close(self) -> None:
        """Close the client (and its LocalCluster) when this executor made it."""
        if self._own:
            cluster = getattr(self.client, "cluster", None)
            self.client.close()
            if cluster is not None:
                cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _evaluate(problem: Any, params: Any) -> Any:
    return problem.evaluate(params)


def dask_evaluator(client: Any) -> Any:
    """An ``Agent.run`` evaluator that evaluates a population's parameter sets on Dask workers.

    The problem is scattered once per population (broadcast) and evaluations come back in ask
    order, so the agent sees exactly what a serial run would.
    """

    def evaluate(problem: Any, params_list: Sequence[Any]) -> list[Any]:
        if not params_list:
            return []
        remote = client.scatter(problem, broadcast=True, hash=False)
        futures = [client.submit(_evaluate, remote, p, pure=False) for p in params_list]
        return client.gather(futures)

    return evaluate
