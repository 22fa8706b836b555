"""Make the reference Pareto front of each task of a suite: a large pooled run, documented beside it.

For every task of the suite, run each listed agent with a large budget on several seeds, pool every
evaluated reward vector, keep the non-dominated ones, and write
``benchmarks/reference_fronts/<suite>-v<version>/<task>.json`` plus a README.md that says how it was
made (agents, budget, seeds, evaluations pooled, wall time, versions).

    python benchmarks/scripts/make_reference_front.py --suite quick --agents nsga2,random --budget 300 --seeds 0,1
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from script_args import parse_dataclass_args

from samstar_env.agents import make_agent
from samstar_env.benchmarks.reference import problem_of, reference_front_path, write_reference_front
from samstar_env.benchmarks.runner import RunSpec, build_problem, versions
from samstar_env.benchmarks.suites import load_suite
from samstar_env.metrics.multiobjective import hypervolume, non_dominated


@dataclass(frozen=True)
class Args:
    suite: str = "quick"
    """Suite whose problems get a reference front (its tasks, model, images and space)."""
    agents: str = "nsga2,random"
    """Comma-separated agents whose evaluations are pooled."""
    budget: int = 300
    """Evaluations per agent and seed (several times the suite's budget)."""
    seeds: str = "0,1"
    """Comma-separated seeds per agent (use seeds the suite does not, or say so)."""
    tasks: str = ""
    """Restrict to these tasks (comma-separated); default all of the suite's."""


def run(args: Args) -> None:
    suite = load_suite(args.suite)
    tasks = [t for t in args.tasks.split(",") if t] or list(suite.tasks)
    agents = [a for a in args.agents.split(",") if a]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    lines = [f"# Reference fronts of suite `{suite.name}` (version {suite.version})", ""]
    for task in tasks:
        t0 = time.perf_counter()
        pooled = []
        names: tuple[str, ...] = ()
        for agent in agents:
            for seed in seeds:
                problem = build_problem(RunSpec(suite, task, agent, seed))
                result = make_agent(agent, **dict(suite.agent_options.get(agent, {}))).run(problem, budget=args.budget, seed=seed)
                names = result.reward_names
                pooled.append(result.rewards)
                print(f"{task} {agent} seed {seed}: {len(result.trials)} evaluations, HV {result.hypervolume():.4f}", flush=True)
        rewards = np.concatenate(pooled)
        front = rewards[non_dominated(rewards)]
        wall = time.perf_counter() - t0
        how = {
            "agents": agents, "budget_per_run": args.budget, "seeds": seeds, "evaluations_pooled": int(len(rewards)),
            "front_size": int(len(front)), "hypervolume": hypervolume(front), "wall_s": wall, "versions": versions(),
        }
        write_reference_front(reference_front_path(suite, task), suite=suite, reward_names=names, front=front, how=how)
        lines += [
            f"## {task}",
            f"- pooled {len(rewards)} evaluations: agents {', '.join(agents)} x seeds {seeds} x {args.budget} evaluations each;",
            f"- non-dominated: {len(front)} points, hypervolume {how['hypervolume']:.4f} (reference point: every reward 0);",
            f"- wall time {wall:.0f} s on this machine; problem: `{problem_of(suite)}`.",
            "",
        ]
        print(f"{task}: front of {len(front)} points, HV {how['hypervolume']:.4f}, {wall:.0f} s", flush=True)
        # Rewritten after every task: an interrupted run still documents the fronts it wrote.
        readme = reference_front_path(suite, tasks[0]).parent / "README.md"
        made = (f"Made with `python benchmarks/scripts/make_reference_front.py --suite {args.suite} --agents {args.agents} "
                f"--budget {args.budget} --seeds {args.seeds}`.")
        Path(readme).write_text("\n".join([*lines, made]) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    run(Args(**parse_dataclass_args(Args, __doc__.split("\n\n")[0], argv)))


if __name__ == "__main__":
    main()
