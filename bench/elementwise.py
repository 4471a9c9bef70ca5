"""Elementwise code: a fused chain of 5 ops on 10M float32 values, spago compiled vs NumPy (target: >= 3x
NumPy), and every activation eager and compiled, so a primitive and its composite of primitives can be
compared (run the table once on each version, same machine, alternating).

Run: python bench/elementwise.py [--activations-only] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

N = 10_000_000
ACTIVATION_N = 1_000_000   # large: memory and arithmetic bound
SMALL_N = 256              # small: per-op overhead bound (an RNN step, eager)


def chain_spago(x):
    import spago as sp

    return sp.tanh(sp.exp(x * 0.5) + sp.sigmoid(x)) * x - 1.0


def chain_numpy(x):
    import numpy as np

    return np.tanh(np.exp(x * 0.5) + 1.0 / (1.0 + np.exp(-x))) * x - 1.0


def activations() -> dict:
    """Name -> function of one tensor, through the public op API only (so any spago version runs it)."""
    import spago as sp

    return {
        "relu": sp.relu, "leaky_relu": lambda x: sp.leaky_relu(x, 0.1),
        "elu": sp.elu, "celu": lambda x: sp.celu(x, 0.7), "selu": sp.selu,
        "gelu": sp.gelu, "gelu_tanh": lambda x: sp.gelu(x, approximate="tanh"), "silu": sp.silu,
        "mish": sp.mish, "softplus": sp.softplus, "softplus_beta2": lambda x: sp.softplus(x, beta=2.0),
        "softsign": sp.softsign, "softshrink": sp.softshrink, "hard_sigmoid": sp.hard_sigmoid,
        "hard_tanh": sp.hard_tanh, "relu6": sp.relu6, "threshold": lambda x: sp.threshold(x, 0.1, -1.0),
        "log_sigmoid": sp.log_sigmoid,
    }


CONTENDERS = ("eager", "eager_grad", "eager_small", "compiled", "compiled_grad")


def contenders(name: str) -> tuple:
    """The five ways one activation is run (see `CONTENDERS`), and its compiled kernel counts."""
    import numpy as np

    import spago as sp

    fn = activations()[name]
    x = (np.random.default_rng(0).standard_normal(ACTIVATION_N) * 3).astype(np.float32)
    small = x[:SMALL_N].copy()

    def eager_grad():
        t = sp.tensor(x, requires_grad=True)
        fn(t).sum().backward()

    fwd = sp.compile(fn, x, cache=False)
    bwd = sp.compile(sp.grad(lambda v: fn(v).sum()), x, cache=False)
    runs = {"eager": lambda: fn(sp.tensor(x)), "eager_grad": eager_grad, "eager_small": lambda: fn(sp.tensor(small)),
            "compiled": lambda: fwd(x), "compiled_grad": lambda: bwd(x)}
    return runs, {"kernels": fwd.report()["kernels"], "grad_kernels": bwd.report()["kernels"]}


def activation_rows(repeats: int = 15) -> list:
    """Per activation: median ms of each contender, and the compiled kernel counts."""
    from _common import measure

    rows = []
    for name in activations():
        runs, counts = contenders(name)
        t = measure(runs, repeats=repeats)
        rows.append({"activation": name, **counts, **{k: v * 1e3 for k, v in t.items()}})
    return rows


def worker() -> None:
    """Child of `compare`: ``setup NAME`` builds an activation's contenders, ``run CONTENDER`` times one call."""
    import time

    runs = {}
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "setup":
            runs, counts = contenders(arg)
            for fn in runs.values():
                fn()
            print(json.dumps(counts), flush=True)
        else:
            t = time.perf_counter()
            runs[arg]()
            print(time.perf_counter() - t, flush=True)


def compare(other_src: str, repeats: int = 15) -> tuple:
    """The activation rows of this tree's spago and of the one under ``other_src``, measured call by call in
    alternation (two child processes), so a busy machine slows both alike."""
    import statistics
    import subprocess

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    children = []
    for src in (other_src, here):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        children.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], env=env,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))

    def ask(child, line: str) -> str:
        child.stdin.write(line + "\n")
        child.stdin.flush()
        return child.stdout.readline()

    tables: tuple = ([], [])
    try:
        for name in activations():
            counts = [json.loads(ask(c, f"setup {name}")) for c in children]
            samples = [{k: [] for k in CONTENDERS} for _ in children]
            for _ in range(repeats):
                for k in CONTENDERS:
                    for c, s in zip(children, samples):
                        s[k].append(float(ask(c, f"run {k}")))
            for rows, n, s in zip(tables, counts, samples):
                rows.append({"activation": name, **n, **{k: statistics.median(v) * 1e3 for k, v in s.items()}})
    finally:
        for c in children:
            c.stdin.close()
            c.wait()
    return tables


def activation_table(rows: list, who: str) -> str:
    from _common import table

    body = [(r["activation"], *(f"{r[c]:.3f}" if c == "eager_small" else f"{r[c]:.2f}" for c in CONTENDERS),
             r["kernels"], r["grad_kernels"]) for r in rows]
    return table(f"activations ({who}), median ms: eager and compiled on {ACTIVATION_N:,} float32 (forward; "
                 f"forward + backward), eager forward on {SMALL_N}", body,
                 ("activation", "eager", "eager f+b", f"eager {SMALL_N}", "compiled", "compiled f+b",
                  "kernels", "f+b kernels"))


def ratio_table(before: list, after: list) -> str:
    from _common import table

    body = [(a["activation"], *(f"{a[c] / b[c]:.2f}" for c in CONTENDERS)) for b, a in zip(before, after)]
    return table("activations: this spago's time / the other's (below 1: faster)", body,
                 ("activation", "eager", "eager f+b", f"eager {SMALL_N}", "compiled", "compiled f+b"))


def chain_table() -> str:
    import numpy as np

    import spago as sp
    from _common import measure, table

    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    compiled = sp.compile(chain_spago, x)
    np.testing.assert_allclose(compiled(x), chain_numpy(x), rtol=1e-4, atol=1e-5)
    t = measure({"NumPy": lambda: chain_numpy(x), "spago compiled": lambda: compiled(x)}, repeats=10)
    rows = [(name, f"{sec * 1e3:.1f}", f"{t['NumPy'] / sec:.2f}x") for name, sec in t.items()]
    return table(f"fused elementwise chain (mul, exp, sigmoid, add, tanh, mul, sub) on {N:,} float32, "
                 f"{compiled.report()['kernels']} kernel(s)", rows, ("contender", "median ms", "speed-up vs NumPy"))


def main(argv: list | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activations-only", action="store_true", help="skip the 10M-value chain")
    parser.add_argument("--against", metavar="SRC",
                        help="also time the spago under SRC (e.g. another checkout's src/), alternating call by call")
    parser.add_argument("--repeats", type=int, default=15, help="calls per contender (default 15)")
    parser.add_argument("--json", help="also write the activation rows here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return ""
    parts = [] if args.activations_only else [chain_table()]
    if args.against:
        other, rows = compare(args.against, args.repeats)
        parts += [activation_table(other, f"spago under {args.against}"), activation_table(rows, "this spago"),
                  ratio_table(other, rows)]
    else:
        rows, other = activation_rows(args.repeats), None
        parts.append(activation_table(rows, "spago"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "against": other}, f, indent=1)
    out = "\n\n".join(parts)
    print(out)
    return out


if __name__ == "__main__":
    main()
