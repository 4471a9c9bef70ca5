"""Compile time, cold (empty disk cache) and warm (object code from the cache), for a few graphs.

Run: python bench/compile_time.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def main() -> str:
    import numpy as np

    import spago as sp
    from _common import table
    from lstm import lstm_unrolled, HIDDEN, STEPS

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 256)).astype(np.float32)
    ws = [rng.standard_normal((256, 256)).astype(np.float32) * 0.05 for _ in range(12)]

    def mlp(x):
        for w in ws:
            x = sp.relu(x @ w)
        return sp.softmax(x)

    xs = rng.standard_normal((STEPS, 1, HIDDEN)).astype(np.float32)
    h0 = np.zeros((1, HIDDEN), np.float32)
    w = rng.standard_normal((HIDDEN, 4 * HIDDEN)).astype(np.float32)
    cases = {"12-layer MLP": (mlp, (x,)),
             "LSTM 50 steps": (lstm_unrolled, (xs, h0, h0, w, w, np.zeros(4 * HIDDEN, np.float32)))}
    rows = []
    for name, (fn, args) in cases.items():
        cold, warm = [], []
        for _ in range(3):
            os.environ["SPAGO_CACHE_DIR"] = tempfile.mkdtemp()
            t = time.perf_counter()
            sp.compile(fn, *args)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            c = sp.compile(fn, *args)
            warm.append(time.perf_counter() - t)
            assert c.cache_hit
        rows.append((name, f"{statistics.median(cold):.3f}", f"{statistics.median(warm):.3f}"))
    out = table("compile seconds (median of 3)", rows, ("graph", "cold", "warm (disk cache)"))
    print(out)
    return out


if __name__ == "__main__":
    main()
