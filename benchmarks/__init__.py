"""Benchmarks of tap-braze-series against the bundled sandbox (see run.py)."""
