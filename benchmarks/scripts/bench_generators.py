"""Performance benchmark: milliseconds per synthetic micrograph, per task, on one core.

The target (issue 2) is < 500 ms for a 512 x 512 image on one core. Run::

    python benchmarks/scripts/bench_generators.py            # all tasks, 512 x 512, 10 seeds each
    python benchmarks/scripts/bench_generators.py --size 1024 --n 3

It pins numpy/scipy to one thread so the number means "one core" even on a bigger machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from script_args import parse_dataclass_args


@dataclass(frozen=True)
class Args:
    tasks: tuple[str, ...] = ("perovskite", "ito", "auco")
    """tasks to time"""
    size: int = 512
    """image side in pixels"""
    n: int = 10
    """images per task (seeds 0..n-1 of the train range, after one warm-up image)"""


def parse_args(argv: list[str] | None = None) -> Args:
    return Args(**parse_dataclass_args(Args, __doc__.splitlines()[0], argv))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Set before numpy/scipy load their thread pools (so imported only below), so that the number
    # means "one core" even on a bigger machine.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy as np

    from samstar_env.data.synthetic import generate, split_seeds

    # CPU time is the fair "one core" number on a shared machine; wall time is what a user waits.
    print(f"{'task':<11} {'size':>9} {'wall ms (median)':>17} {'cpu ms (median)':>16} {'cpu ms (max)':>13} {'particles':>10}")
    for task in args.tasks:
        seeds = split_seeds(task, "train")[: args.n]
        generate(task, seeds[0], (args.size, args.size))  # warm-up: imports, FFT plans
        wall, cpu, counts = [], [], []
        for s in seeds:
            t0, c0 = time.perf_counter(), time.process_time()
            m = generate(task, s, (args.size, args.size))
            wall.append(1e3 * (time.perf_counter() - t0))
            cpu.append(1e3 * (time.process_time() - c0))
            counts.append(len(m.particles))
        print(
            f"{task:<11} {args.size:>4}x{args.size:<4} {np.median(wall):>17.0f} {np.median(cpu):>16.0f} "
            f"{np.max(cpu):>13.0f} {np.mean(counts):>10.0f}"
        )


if __name__ == "__main__":
    main()
