"""Benchmarks shipped with the package, so `spago bench` can run them (being written)."""
