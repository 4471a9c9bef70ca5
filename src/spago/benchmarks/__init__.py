"""The all-MiniLM-L6-v2 checkpoint as the benchmarks, examples and tests use it (`minilm_dir`, `build_encoder`).
The benchmark harnesses themselves live in the repository's ``bench/`` folder (``spago bench NAME``)."""

__all__ = ["minilm"]
