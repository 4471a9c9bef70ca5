"""fuse_mlp: a feed-forward block's two chained products become one kernel that keeps the wide
intermediate in a per-item buffer; the graph computes the same values (interpreter and native)."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.passes.fuse_matmul import fuse_matmul
from spago.passes.fuse_mlp import fuse_mlp
from spago.passes.fuse_rowwise import fuse_rowwise


def with_mlp() -> list:
    passes = sp.passes.default_passes()
    passes.insert(passes.index(fuse_rowwise) + 1, fuse_mlp)
    return passes

rng = np.random.default_rng(2)


def param(name, *shape):
    t = sp.tensor((rng.standard_normal(shape) * 0.2).astype(np.float32))
    t.name = name
    return t


W1, B1, W2, B2 = param("w1", 48, 192), param("b1", 192), param("w2", 192, 48), param("b2", 48)


def feed_forward(x):
    return sp.gelu(x @ W1 + B1) @ W2 + B2 + x


def patterns(graph) -> list:
    return [n.attrs["pattern"] for n in graph.nodes if n.kind == "op" and n.op.name == "fused"]


def test_feed_forward_fuses_and_preserves_values():
    x = rng.standard_normal((3, 100, 48)).astype(np.float32)
    graph = sp.trace(feed_forward, x)
    before = sp.ir.interpret(graph, x)
    for p in (fuse_matmul, fuse_mlp):
        graph = p(graph)
        graph.verify()
    assert patterns(graph) == ["mlp"]
    np.testing.assert_allclose(sp.ir.interpret(graph, x), before, rtol=1e-5, atol=1e-5)


def test_intermediate_leaves_the_arena():
    x = rng.standard_normal((3, 100, 48)).astype(np.float32)
    compiled = sp.compile(feed_forward, x, cache=False, passes=with_mlp())
    assert any("mlp" in k for k in compiled.report()["kernel_names"])
    assert compiled.report()["arena_bytes"] < 300 * 192 * 4  # no buffer for the 300 x 192 intermediate


def test_products_read_elsewhere_stay_apart():
    """The first product's result is also returned: it must be materialised, so nothing fuses."""
    x = rng.standard_normal((2, 128, 48)).astype(np.float32)
    out, _ = sp.passes.optimize(sp.trace(lambda v: (sp.gelu(v @ W1 + B1) @ W2, v @ W1 + B1), x), with_mlp())
    assert "mlp" not in patterns(out)


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("rows", [1, 100, 257])
def test_mlp_kernel_matches_eager(threads, rows, monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    x = rng.standard_normal((1, rows, 48)).astype(np.float32)
    compiled = sp.compile(feed_forward, x, cache=False, passes=with_mlp())
    np.testing.assert_allclose(compiled(x), feed_forward(sp.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
