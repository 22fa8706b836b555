"""Benchmark suites, ground-truth and multi-objective metrics, reports (installed as ``samstar_env.benchmarks``)."""
