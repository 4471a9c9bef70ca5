"""A fused chain of 5 elementwise ops on 10M float32 values: spago compiled vs NumPy, same run.
Target: >= 3x NumPy.  Run: python bench/elementwise.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

N = 10_000_000


def chain_spago(x):
    import spago as sp

    return sp.tanh(sp.exp(x * 0.5) + sp.sigmoid(x)) * x - 1.0


def chain_numpy(x):
    import numpy as np

    return np.tanh(np.exp(x * 0.5) + 1.0 / (1.0 + np.exp(-x))) * x - 1.0


def main() -> str:
    import numpy as np

    import spago as sp
    from _common import measure, table

    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    compiled = sp.compile(chain_spago, x)
    np.testing.assert_allclose(compiled(x), chain_numpy(x), rtol=1e-4, atol=1e-5)
    t = measure({"NumPy": lambda: chain_numpy(x), "spago compiled": lambda: compiled(x)}, repeats=10)
    rows = [(name, f"{sec * 1e3:.1f}", f"{t['NumPy'] / sec:.2f}x") for name, sec in t.items()]
    out = table(f"fused elementwise chain (mul, exp, sigmoid, add, tanh, mul, sub) on {N:,} float32, "
                f"{compiled.report()['kernels']} kernel(s)", rows, ("contender", "median ms", "speed-up vs NumPy"))
    print(out)
    return out


if __name__ == "__main__":
    main()
