"""Matrix product throughput: spago compiled vs NumPy's matmul, single-threaded, same run.

Target (issue: LLVM backend): spago >= 0.85x NumPy's GFLOP/s on square 256/512/1024 and the BERT shapes.
Run: python bench/matmul.py [--threads N]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

SHAPES = [
    ("256x256 @ 256x256", (256, 256), (256, 256)),
    ("512x512 @ 512x512", (512, 512), (512, 512)),
    ("1024x1024 @ 1024x1024", (1024, 1024), (1024, 1024)),
    ("128x384 @ 384x384", (128, 384), (384, 384)),
    ("128x384 @ 384x1536", (128, 384), (384, 1536)),
    ("128x1536 @ 1536x384", (128, 1536), (1536, 384)),
    ("12x128x32 @ 12x32x128", (12, 128, 32), (12, 32, 128)),
]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    import spago as sp
    from _common import measure, table

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    rows = []
    for label, sa, sb in SHAPES:
        a = rng.standard_normal(sa).astype(np.float32)
        b = rng.standard_normal(sb).astype(np.float32)
        compiled = sp.compile(lambda x, y: x @ y, a, b)
        np.testing.assert_allclose(compiled(a, b), a @ b, rtol=1e-3, atol=1e-3)
        t = measure({"numpy": lambda: np.matmul(a, b), "spago": lambda: compiled(a, b)}, repeats=args.repeats)
        flops = 2.0 * np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]) or (1,)) * sa[-2] * sa[-1] * sb[-1]
        g_np, g_sp = flops / t["numpy"] / 1e9, flops / t["spago"] / 1e9
        rows.append((label, f"{g_np:.1f}", f"{g_sp:.1f}", f"{g_sp / g_np:.2f}x"))
    out = table(f"matmul GFLOP/s, {args.threads} thread(s), median of {args.repeats}", rows,
                ("shape", "NumPy", "spago", "spago/NumPy"))
    print(out)
    return out


if __name__ == "__main__":
    main()
