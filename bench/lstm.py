"""LSTM cell, hidden 128, batch 1, 50 steps: spago compiled as one `spago.scan` loop and unrolled, vs spago
eager (vs PyTorch eager when installed), same run. Targets: compiled >= 20x spago eager, >= 3x PyTorch
eager; the scan loop at least as fast as the unrolled steps (both forms measured on copies of the arrays
64-byte aligned and 16 bytes past a cache line, where NumPy's allocator often puts them).

A second table times the four-gate formulation a user writes from the paper (Go spaGO's way): four gate
weights ``W[k]`` (constants), ``z = concat([x_t, h])``, ``sigmoid(z @ W[0])`` ... Targets: compiled <=
0.5x a NumPy loop of the same, <= 0.3x PyTorch eager, within 1.3x of the merged-weight model above.

Run: python bench/lstm.py
"""
from __future__ import annotations

import functools
import os
import statistics
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(__file__))

HIDDEN, STEPS, BATCH = 128, 50, 1


def placed(a, offset: int):
    """A copy of ``a`` starting ``offset`` bytes past a 64-byte boundary."""
    import numpy as np

    raw = np.empty(a.nbytes + offset + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def lstm_unrolled(xs, h, c, w, u, b):
    """Hochreiter & Schmidhuber (1997) LSTM with gates i, f, g, o stacked in one projection."""
    import spago as sp

    for t in range(STEPS):
        z = xs[t] @ w + h @ u + b
        i, f, g, o = sp.split(z, 4, axis=-1)
        c = sp.sigmoid(f) * c + sp.sigmoid(i) * sp.tanh(g)
        h = sp.sigmoid(o) * sp.tanh(c)
    return h


def lstm_scan(xs, h, c, w, u, b, steps: int | None = None):
    """The same LSTM as one loop: the body is traced once, whatever the number of steps."""
    import spago as sp

    def step(state, x):
        h, c = state
        z = x @ w + h @ u + b
        i, f, g, o = sp.split(z, 4, axis=-1)
        c = sp.sigmoid(f) * c + sp.sigmoid(i) * sp.tanh(g)
        h = sp.sigmoid(o) * sp.tanh(c)
        return (h, c), None

    (h, _), _ = sp.scan(step, (h, c), xs)
    return h


def numpy_gates(weights, bias, xs, h, c):
    import numpy as np

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    for t in range(STEPS):
        z = np.concatenate([xs[t], h], axis=-1)
        i = sigmoid(z @ weights[0] + bias[0])
        f = sigmoid(z @ weights[1] + bias[1])
        g = np.tanh(z @ weights[2] + bias[2])
        o = sigmoid(z @ weights[3] + bias[3])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h


def gates_table(merged: Callable[[], object]) -> str:
    """The four-gate formulation: spago compiled, NumPy loop, PyTorch eager, and the merged-weight model
    (``merged``: its compiled unrolled form, weights aligned). The two compiled forms are measured back to
    back, each eager contender against the four-gate one: a call right after an eager contender finds its
    caches cold."""
    import numpy as np

    import spago as sp
    from _common import measure, table

    rng = np.random.default_rng(1)
    xs = rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)
    h0 = np.zeros((BATCH, HIDDEN), np.float32)
    weights = (rng.standard_normal((4, 2 * HIDDEN, HIDDEN)) * 0.05).astype(np.float32)
    bias = (rng.standard_normal((4, HIDDEN)) * 0.05).astype(np.float32)
    from spago.benchmarks.lstm import four_gate_lstm

    run = four_gate_lstm(weights, bias)
    compiled = sp.compile(run, xs, h0, h0)
    np.testing.assert_allclose(compiled(xs, h0, h0), numpy_gates(weights, bias, xs, h0, h0), rtol=1e-4, atol=1e-5)
    contenders = {"NumPy loop": lambda: numpy_gates(weights, bias, xs, h0, h0)}
    try:
        import torch

        torch.set_num_threads(1)
        tw, tb = torch.from_numpy(weights), torch.from_numpy(bias)
        tx, th = torch.from_numpy(xs), torch.from_numpy(h0)

        def torch_gates():
            with torch.inference_mode():
                h, c = th, th
                for t in range(STEPS):
                    z = torch.cat([tx[t], h], dim=-1)
                    i = torch.sigmoid(z @ tw[0] + tb[0])
                    f = torch.sigmoid(z @ tw[1] + tb[1])
                    g = torch.tanh(z @ tw[2] + tb[2])
                    o = torch.sigmoid(z @ tw[3] + tb[3])
                    c = f * c + i * g
                    h = o * torch.tanh(c)
                return h

        contenders["PyTorch eager"] = torch_gates
    except ImportError:
        pass
    merged_name = "merged-weight spago compiled, unrolled"
    fast = measure({"spago compiled": lambda: compiled(xs, h0, h0), merged_name: merged}, repeats=300)
    base = fast["spago compiled"]
    rows = [("spago compiled", f"{base * 1e3:.3f}", "1.00x")]
    for name, fn in contenders.items():
        t = measure({"spago compiled": lambda: compiled(xs, h0, h0), name: fn}, repeats=30)
        rows.append((name, f"{t[name] * 1e3:.3f}", f"{t['spago compiled'] / t[name]:.2f}x "
                     f"(compiled {t['spago compiled'] * 1e3:.3f} ms in that run)"))
    rows.append((merged_name, f"{fast[merged_name] * 1e3:.3f}", f"{base / fast[merged_name]:.2f}x"))
    paths = sorted({p["path"] for p in compiled.report()["products"]})
    return table(f"four-gate LSTM h={HIDDEN}, batch {BATCH}, {STEPS} steps, constant gate weights "
                 f"({len(compiled.report()['products'])} products: {', '.join(paths)}; median ms)", rows,
                 ("contender", "ms", "spago compiled time / this"))


def main() -> str:
    import numpy as np

    import spago as sp
    from _common import measure, table

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(np.float32)
    h0 = np.zeros((BATCH, HIDDEN), np.float32)
    w, u = (rng.standard_normal((2, HIDDEN, 4 * HIDDEN)) * 0.05).astype(np.float32)
    b = np.zeros(4 * HIDDEN, np.float32)
    compiled = sp.compile(lstm_scan, xs, h0, h0, w, u, b)
    unrolled = sp.compile(lstm_unrolled, xs, h0, h0, w, u, b)
    tensors = [sp.tensor(a) for a in (xs, h0, h0, w, u, b)]
    expected = lstm_unrolled(*tensors).numpy()
    np.testing.assert_allclose(compiled(xs, h0, h0, w, u, b), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(unrolled(xs, h0, h0, w, u, b), expected, rtol=1e-4, atol=1e-5)
    # each compiled contender reads its own copies, so none finds them in cache from the one before it;
    # both forms get copies placed alike: 64-byte aligned, and 16 bytes past a cache line (as NumPy's
    # allocator often places arrays; a weight read in place there costs two cache lines per vector load)
    copies = {(form, offset): [placed(a, offset) for a in (xs, h0, h0, w, u, b)]
              for form in ("scan", "unrolled") for offset in (0, 16)}
    forms = {"scan": compiled, "unrolled": unrolled}
    fast_contenders = {f"spago compiled{'' if form == 'scan' else ', unrolled'}{', weights +16 B' if off else ''}":
                       functools.partial(forms[form], *args) for (form, off), args in copies.items()}
    contenders = {"spago eager": lambda: lstm_unrolled(*tensors)}
    try:
        import torch

        torch.set_num_threads(1)
        tt = [torch.from_numpy(a) for a in (xs, h0, h0, w, u, b)]

        def torch_lstm():
            with torch.inference_mode():
                x, h, c, w_, u_, b_ = tt
                for t in range(STEPS):
                    z = x[t] @ w_ + h @ u_ + b_
                    i, f, g, o = z.chunk(4, dim=-1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                return h

        contenders["PyTorch eager"] = torch_lstm
    except ImportError:
        pass
    # the compiled forms back to back (a call right after an eager contender finds caches cold and
    # pays far more than the difference between them), then each eager contender against the scan form
    # three runs of 300 rounds, each contender's median of its three medians (the order of the round-robin
    # shifts the numbers by a few percent under load: each run starts from another contender)
    runs = []
    for shift in range(3):
        names = list(fast_contenders)[shift:] + list(fast_contenders)[:shift]
        runs.append(measure({n: fast_contenders[n] for n in names}, repeats=300))
    fast = {n: statistics.median(r[n] for r in runs) for n in fast_contenders}
    rows = [(name, f"{sec * 1e3:.3f}", f"{sec / fast['spago compiled']:.2f}x") for name, sec in fast.items()]
    rows.append(("scan / unrolled, aligned; weights +16 B",
                 f"{fast['spago compiled'] / fast['spago compiled, unrolled']:.2f}x; "
                 f"{fast['spago compiled, weights +16 B'] / fast['spago compiled, unrolled, weights +16 B']:.2f}x", ""))
    for name, fn in contenders.items():
        t = measure({"spago compiled": lambda: compiled(xs, h0, h0, w, u, b), name: fn}, repeats=30)
        rows.append((name, f"{t[name] * 1e3:.3f}", f"{t[name] / t['spago compiled']:.1f}x "
                     f"(compiled {t['spago compiled'] * 1e3:.3f} ms in that run)"))
    out = table(f"LSTM cell h={HIDDEN}, batch {BATCH}, {STEPS} steps (median ms per sequence)", rows,
                ("contender", "ms", "time / spago compiled"))
    out += "\n\n" + gates_table(fast_contenders["spago compiled, unrolled"])
    print(out)
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's idle threads must not spin into the next contender
    main()
