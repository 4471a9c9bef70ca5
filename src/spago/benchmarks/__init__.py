"""Benchmarks shipped with the package, so `spago bench NAME` can run them (`bench/NAME.py` wraps each)."""

__all__ = ["bert", "minilm"]
