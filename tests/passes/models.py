"""Small models written with spago ops, shared by the pass and memory tests."""
from __future__ import annotations

import numpy as np

import spago as sp


def layer_norm(x, g, b, eps: float = 1e-5):
    m = x.mean(axis=-1, keepdims=True)
    xc = x - m
    v = (xc * xc).mean(axis=-1, keepdims=True)
    return xc * sp.rsqrt(v + eps) * g + b


def rms_norm(x, g, eps: float = 1e-6):
    return x * sp.rsqrt((x * x).mean(axis=-1, keepdims=True) + eps) * g


def attention_block(x, wq, bq, wk, bk, wv, bv, wo, bo, mask, g, b, heads: int = 4):
    """A BERT self-attention block: QKV projections, scores, mask, softmax, context, output, residual, LN."""
    batch, seq, dim = x.shape
    d = dim // heads

    def split(t):
        return t.reshape(batch, seq, heads, d).transpose((0, 2, 1, 3))

    q, k, v = split(x @ wq + bq), split(x @ wk + bk), split(x @ wv + bv)
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / np.sqrt(d)) + mask
    context = (sp.softmax(scores) @ v).transpose((0, 2, 1, 3)).reshape(batch, seq, dim)
    return layer_norm(context @ wo + bo + x, g, b)


def attention_args(rng: np.random.Generator, batch: int = 2, seq: int = 8, dim: int = 32) -> list:
    def w(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    mask = np.zeros((batch, 1, 1, seq), np.float32)
    mask[..., -2:] = -10000.0
    return [w(batch, seq, dim), w(dim, dim), w(dim), w(dim, dim), w(dim), w(dim, dim), w(dim), w(dim, dim), w(dim),
            mask, np.ones(dim, np.float32), np.zeros(dim, np.float32)]


def mlp(depth: int, width: int, rng: np.random.Generator):
    """A ``depth``-layer ReLU MLP whose weights are named parameters (as a module's would be)."""
    weights = []
    for k in range(depth):
        w = sp.tensor((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32))
        b = sp.tensor(np.zeros(width, np.float32))
        w.name, b.name = f"layers.{k}.weight", f"layers.{k}.bias"
        weights.append((w, b))

    def forward(x):
        for k, (w, b) in enumerate(weights):
            with sp.ir.scope(f"layers.{k}"):
                x = sp.relu(x @ w + b)
        return x

    return forward


def encoder(layers: int, dim: int, rng: np.random.Generator, heads: int = 4):
    """A ``layers``-deep transformer encoder (attention block + GELU MLP + layer norms), weights as params."""
    def p(name, *shape, scale=0.2):
        t = sp.tensor((rng.standard_normal(shape) * scale).astype(np.float32))
        t.name = name
        return t

    params = []
    for k in range(layers):
        pre = f"layer.{k}"
        params.append({n: p(f"{pre}.{n}", *s) for n, s in [
            ("wq", (dim, dim)), ("bq", (dim,)), ("wk", (dim, dim)), ("bk", (dim,)), ("wv", (dim, dim)),
            ("bv", (dim,)), ("wo", (dim, dim)), ("bo", (dim,)), ("g1", (dim,)), ("b1", (dim,)),
            ("w1", (dim, 4 * dim)), ("c1", (4 * dim,)), ("w2", (4 * dim, dim)), ("c2", (dim,)),
            ("g2", (dim,)), ("b2", (dim,))]})

    def forward(x, mask):
        for k, q in enumerate(params):
            with sp.ir.scope(f"layer.{k}"):
                h = attention_block(x, q["wq"], q["bq"], q["wk"], q["bk"], q["wv"], q["bv"], q["wo"], q["bo"],
                                    mask, q["g1"], q["b1"], heads)
                x = layer_norm(sp.gelu(h @ q["w1"] + q["c1"]) @ q["w2"] + q["c2"] + h, q["g2"], q["b2"])
        return x

    return forward


def frozen_counts(fn, args: tuple, passes: tuple) -> dict:
    """Op counts of ``fn``'s traced graph after freezing, the front passes and ``passes`` (each verified),
    whose values must equal the original graph's (interpreter before and after)."""
    from spago.passes.constant_folding import constant_folding
    from spago.passes.cse import cse
    from spago.passes.dce import dce
    from spago.passes.freeze import freeze_params
    from spago.passes.simplify import simplify

    graph = sp.trace(fn, *args)
    out = graph.copy()
    for p in (freeze_params, simplify, constant_folding, cse, dce) + tuple(passes) + (dce,):
        out = p(out)
        out.verify()
    got, want = sp.ir.interpret(out, *args), sp.ir.interpret(graph, *args)
    for g, w in zip(got, want) if isinstance(want, (tuple, list)) else [(got, want)]:
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return out.op_counts()
