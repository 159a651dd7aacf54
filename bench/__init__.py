"""Reproducible benchmarks, run by `make bench`; each figure is a ratio, so it holds on a noisy
machine."""
