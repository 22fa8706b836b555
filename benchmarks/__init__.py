"""Benchmark suites, executors, reports (installed as ``samstar_env.benchmarks``).

The metrics they report live one layer down, in :mod:`samstar_env.metrics`.
"""
