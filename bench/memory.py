"""Memory planning on the test models: arena vs lower bound vs the naive sum of intermediates.
Targets: arena <= 1.10 x lower bound; naive / arena >= 3 on a 12-layer MLP and a 4-layer encoder.
Run: python bench/memory.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))


def main() -> str:
    import numpy as np

    import spago as sp
    from _common import table
    from spago.lower.memory import plan_memory
    from tests.passes.models import attention_args, encoder, mlp

    rng = np.random.default_rng(0)
    cases = {
        "12-layer MLP (32x256)": (mlp(12, 256, rng), (rng.standard_normal((32, 256)).astype(np.float32),)),
        "4-layer encoder (2x16x64)": (encoder(4, 64, rng), (attention_args(rng, 2, 16, 64)[0],
                                                             np.zeros((2, 1, 1, 16), np.float32))),
        "12-layer encoder (1x128x384)": (encoder(12, 384, rng, heads=12),
                                         (rng.standard_normal((1, 128, 384)).astype(np.float32),
                                          np.zeros((1, 1, 1, 128), np.float32))),
    }
    rows = []
    for name, (fn, args) in cases.items():
        for label, graph in (("unfused", sp.trace(fn, *args)), ("optimized", sp.passes.optimize(sp.trace(fn, *args))[0])):
            plan = plan_memory(graph).check()
            rows.append((name, label, len([n for n in graph.nodes if n.op.name != "reshape"]),
                         f"{plan.naive_bytes / 1024:.0f}", f"{plan.arena_bytes / 1024:.0f}",
                         f"{plan.lower_bound_bytes / 1024:.0f}", f"{plan.arena_bytes / plan.lower_bound_bytes:.3f}",
                         f"{plan.naive_bytes / plan.arena_bytes:.1f}"))
    out = table("memory plans (KiB)", rows, ("model", "graph", "kernels", "naive", "arena", "lower bound",
                                              "arena / bound", "naive / arena"))
    print(out)
    return out


if __name__ == "__main__":
    main()
