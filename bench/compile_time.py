"""Compile time, cold (no disk cache) and warm (object code from the cache), for a few graphs; then how
compile time grows with the number of steps of a recurrent model, as `spago.scan` loops and unrolled.

Targets (issue: loops in the IR): an LSTM of hidden 128 compiles 1,000 steps in at most 1.3x the time of
10 steps (cold, cache off) with the same kernels; the BiLSTM-CRF training step of
examples/ner_tagger.py (batch 16 x 30 tokens, hidden 64) compiles cold in at most 5 s.

Run: python bench/compile_time.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))


def _cold(compile_fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``compile_fn()`` (on a shared machine CPU seconds are the steadier
    figure: compiling runs on one thread), and the last result."""
    wall, cpu, compiled = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        compiled = compile_fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), compiled


def cache_table(repeats: int) -> str:
    import numpy as np

    import spago as sp
    from _common import table
    from lstm import HIDDEN, STEPS, lstm_scan, lstm_unrolled

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
    lstm_args = (xs, h0, h0, w, w, np.zeros(4 * HIDDEN, np.float32))
    cases = {"12-layer MLP": (mlp, (x,)), f"LSTM {STEPS} steps, scan": (lstm_scan, lstm_args),
             f"LSTM {STEPS} steps, unrolled": (lstm_unrolled, lstm_args)}
    rows = []
    for name, (fn, args) in cases.items():
        cold, warm = [], []
        for _ in range(repeats):
            os.environ["SPAGO_CACHE_DIR"] = tempfile.mkdtemp()
            t = time.perf_counter()
            sp.compile(fn, *args)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            c = sp.compile(fn, *args)
            warm.append(time.perf_counter() - t)
            assert c.cache_hit
        rows.append((name, f"{statistics.median(cold):.3f}", f"{statistics.median(warm):.3f}",
                     c.report()["kernels"]))
    return table(f"compile seconds (median of {repeats})", rows, ("graph", "cold", "warm (disk cache)", "kernels"))


def steps_table(repeats: int) -> str:
    """LSTM hidden 128, batch 16 (one projection per step inside the loop, hoisted by the passes)."""
    import numpy as np

    import spago as sp
    from _common import table
    from lstm import lstm_scan

    hidden, batch = 128, 16
    rng = np.random.default_rng(0)
    w, u = (rng.standard_normal((2, hidden, 4 * hidden)) * 0.05).astype(np.float32)
    b = np.zeros(4 * hidden, np.float32)
    h0 = np.zeros((batch, hidden), np.float32)
    rows, base = [], None
    for steps in (10, 100, 1000):
        xs = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
        seconds, cpu, c = _cold(lambda: sp.compile(lstm_scan, xs, h0, h0, w, u, b, cache=False), repeats)
        base = base or (seconds, cpu)
        report = c.report()
        rows.append((f"{steps} steps", f"{seconds:.3f}", f"{seconds / base[0]:.2f}x", f"{cpu:.3f}",
                     f"{cpu / base[1]:.2f}x", report["kernels"], len(c._lowered.body_kernels), len(c.llvm_ir())))
    return table(f"LSTM hidden {hidden}, batch {batch} as spago.scan: cold compile, cache off "
                 f"(median of {repeats})", rows,
                 ("steps", "wall s", "vs 10 steps", "CPU s", "vs 10 steps", "kernels", "body kernels",
                  "LLVM IR chars"))


def tagger_table(repeats: int) -> str:
    """The BiLSTM-CRF training step of examples/ner_tagger.py: batch 16 x 30 tokens, hidden 64."""
    import numpy as np

    import spago as sp
    from _common import table
    from spago import nn, optim

    batch, length, vocab, tags = 16, 30, 500, 9
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab, size=(batch, length))
    tag_ids = rng.integers(0, tags, size=(batch, length))
    mask = (np.arange(length) < rng.integers(5, length + 1, size=batch)[:, None]).astype(np.float32)
    rows = []
    for unroll in (False, True):
        def compile_step():
            model = nn.BiLSTMCRF(vocab, tags, 64, 64, dropout=0.25, generator=sp.Generator(0))
            for _, m in model.named_modules():
                if hasattr(m, "unroll"):
                    m.unroll = unroll
            return optim.compile_step(lambda m, i, t, k: m.loss(i, t, k), model,
                                      optim.Adam(model.parameters(), lr=0.02), ids, tag_ids, mask,
                                      clip_norm=5.0, cache=False)

        seconds, cpu, step = _cold(compile_step, repeats)
        report = step.compiled.report()
        stages = {k: v for k, v in report["compile_seconds"].items() if isinstance(v, float)}
        rows.append(("unrolled" if unroll else "spago.scan", f"{seconds:.2f}", f"{cpu:.2f}",
                     f"{stages.get('optimize', 0):.2f}", f"{stages.get('llvm', 0):.2f}", report["kernels"]))
    return table(f"BiLSTM-CRF training step (batch {batch} x {length} tokens, hidden 64): cold compile seconds, "
                 f"cache off (median of {repeats})", rows,
                 ("time loops", "wall", "CPU", "optimize (wall)", "LLVM (wall)", "kernels"))


def main(repeats: int = 3) -> str:
    out = "\n\n".join([cache_table(repeats), steps_table(repeats), tagger_table(repeats)])
    print(out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
