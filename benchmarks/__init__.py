"""Benchmark harness: configs, datasets, runner, metrics and report (see benchmarks/runner.py)."""
