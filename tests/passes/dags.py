"""Random op DAGs for pass tests: a hypothesis strategy that traces a random program.

Programs mix unary and binary elementwise ops (with broadcasting), reductions, softmax, transposes,
reshapes, matmuls, closed-over constants and Python scalars, with fan-out (values reused) and one or two
outputs. Inputs are float32 in a range where every op stays finite.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import spago as sp

UNARY = [sp.exp, sp.tanh, sp.sigmoid, sp.relu, sp.neg, sp.square, sp.sin, sp.gelu]
BINARY = [sp.add, sp.sub, sp.mul, sp.maximum]


def _fits(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


@st.composite
def random_graphs(draw, max_ops: int = 15):
    """(graph, inputs): a traced random program and float32 inputs for it."""
    n_inputs = draw(st.integers(1, 3))
    shapes = [tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))) for _ in range(n_inputs)]
    n_ops = draw(st.integers(3, max_ops))
    plan = []  # (kind, parameters) recorded so the program can be replayed while tracing
    avail = list(shapes)
    for _ in range(n_ops):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "softmax", "transpose", "reshape",
                                     "matmul", "const"]))
        i = draw(st.integers(0, len(avail) - 1))
        s = avail[i]
        if kind == "unary":
            plan.append(("unary", i, draw(st.integers(0, len(UNARY) - 1))))
            avail.append(s)
        elif kind == "binary":
            partners = [j for j, t in enumerate(avail) if _fits(s, t)]
            j = draw(st.sampled_from(partners))
            plan.append(("binary", i, j, draw(st.integers(0, len(BINARY) - 1))))
            avail.append(tuple(np.broadcast_shapes(s, avail[j])))
        elif kind == "reduce" and s:
            axis = draw(st.integers(0, len(s) - 1))
            keep = draw(st.booleans())
            plan.append(("reduce", i, axis, keep, draw(st.sampled_from(["sum", "max", "mean"]))))
            avail.append(tuple(1 if k == axis else d for k, d in enumerate(s)) if keep else s[:axis] + s[axis + 1:])
        elif kind == "softmax" and s:
            plan.append(("softmax", i))
            avail.append(s)
        elif kind == "transpose" and len(s) >= 2:
            plan.append(("transpose", i))
            avail.append(tuple(reversed(s)))
        elif kind == "reshape" and s:
            plan.append(("reshape", i))
            avail.append((int(np.prod(s)),))
        elif kind == "matmul" and len(s) >= 1:
            k = s[-1]
            m = draw(st.integers(1, 3))
            plan.append(("matmul", i, m, draw(st.integers(0, 2**31 - 1))))
            avail.append(s[:-1] + (m,))
        elif kind == "const":
            plan.append(("const", i, draw(st.floats(-2, 2, width=32)), draw(st.booleans())))
            avail.append(s)
    n_out = min(draw(st.integers(1, 2)), max(len(avail) - n_inputs, 1))
    outs = draw(st.lists(st.integers(n_inputs, len(avail) - 1), min_size=n_out, max_size=n_out, unique=True)) \
        if len(avail) > n_inputs else [0]

    def program(*xs):
        vals = list(xs)
        for step in plan:
            kind, i = step[0], step[1]
            v = vals[i]
            if kind == "unary":
                vals.append(UNARY[step[2]](sp.clip(v, -3.0, 3.0)))
            elif kind == "binary":
                vals.append(BINARY[step[3]](v, vals[step[2]]))
            elif kind == "reduce":
                vals.append(getattr(sp, step[4])(v, axis=step[2], keepdims=step[3]))
            elif kind == "softmax":
                vals.append(sp.softmax(v, axis=-1))
            elif kind == "transpose":
                vals.append(v.T)
            elif kind == "reshape":
                vals.append(v.reshape(-1))
            elif kind == "matmul":
                w = np.random.default_rng(step[3]).standard_normal((v.shape[-1], step[2])).astype(np.float32)
                vals.append(sp.clip(v, -3.0, 3.0) @ w)
            elif kind == "const":
                c = np.full(v.shape, step[2], np.float32) if step[3] else step[2]
                vals.append(v * c + 0.5)
        return tuple(vals[k] for k in outs)

    graph = sp.trace(program, *[sp.spec(s) for s in shapes])
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    inputs = [np.asarray(rng.uniform(-1.5, 1.5, size=s).astype(np.float32)) for s in shapes]
    return graph, inputs
