"""merge_shared_input: products of one input by different constant weights become one product whose
output is sliced; the attention kernel still forms and reads Q, K and V as views of the merged output."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.passes.constant_folding import constant_folding
from spago.passes.cse import cse
from spago.passes.dce import dce
from spago.passes.freeze import freeze_params
from spago.passes.fuse_attention import fuse_attention
from spago.passes.fuse_matmul import fuse_matmul
from spago.passes.fuse_rowwise import fuse_rowwise
from spago.passes.merge_shared_input import merge_shared_input
from spago.passes.simplify import simplify

from .models import layer_norm

rng = np.random.default_rng(7)
FRONT = (freeze_params, simplify, constant_folding, cse, dce)


def weight(*shape) -> sp.Tensor:
    return sp.tensor((rng.standard_normal(shape) * 0.2).astype(np.float32))


def run(fn, args, passes):
    graph = sp.trace(fn, *args)
    out = graph.copy()
    for p in passes:
        out = p(out)
        out.verify()
    got, want = sp.ir.interpret(out, *args), sp.ir.interpret(graph, *args)
    for g, w in zip(got, want) if isinstance(want, (tuple, list)) else [(got, want)]:
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return out


def const_bytes(graph) -> int:
    return sum(c.data.nbytes for c in graph.consts)


DIM, HEADS = 128, 2  # 64 KiB weights: their transposes stay views (see constant_folding)
WQ, WK, WV, WO = (weight(DIM, DIM) for _ in range(4))  # Linear layout (out, in)
BQ, BK, BV, BO = (weight(DIM) for _ in range(4))
G, B = weight(DIM) + 1.0, weight(DIM)


def self_attention(x, mask):
    """A BERT self-attention block with constant Linear weights (what freezing a model gives)."""
    batch, seq, dim = x.shape

    def split(t):
        return t.reshape(batch, seq, HEADS, dim // HEADS).transpose((0, 2, 1, 3))

    q, k, v = split(x @ WQ.T + BQ), split(x @ WK.T + BK), split(x @ WV.T + BV)
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / np.sqrt(dim // HEADS)) + mask
    context = (sp.softmax(scores) @ v).transpose((0, 2, 1, 3)).reshape(batch, seq, dim)
    return layer_norm(context @ WO.T + BO + x, G, B)


def attention_inputs(batch: int, seq: int) -> list:
    mask = np.zeros((batch, 1, 1, seq), np.float32)
    mask[..., seq // 3:] = -10000.0
    return [(rng.standard_normal((batch, seq, DIM)) * 0.5).astype(np.float32), mask]


def test_q_k_v_projections_become_one_product_and_the_originals_go():
    args = attention_inputs(1, 16)
    before = run(self_attention, args, FRONT)
    after = run(self_attention, args, FRONT + (merge_shared_input, dce))
    assert before.op_counts()["matmul"] - after.op_counts()["matmul"] == 2
    merged = [n for n in after.nodes if n.op.name == "matmul" and n.shape[-1] == 3 * DIM]
    assert len(merged) == 1 and after.op_counts()["getitem"] == 3
    assert const_bytes(after) == const_bytes(before)  # the concatenation replaced the three weights


def test_attention_kernel_reads_the_merged_projection():
    args = attention_inputs(1, 128)
    out = run(self_attention, args, FRONT + (merge_shared_input, fuse_matmul, fuse_rowwise, fuse_attention, dce))
    attention = [n for n in out.nodes if n.op.name == "fused" and n.attrs["pattern"] == "attention"]
    assert len(attention) == 1
    projection = [i for i in attention[0].inputs if i.kind == "op"]
    assert [i.shape[-1] for i in projection] == [3 * DIM]  # Q, K and V are views of one buffer


@pytest.mark.parametrize("threads", ["1", "2"])
def test_compiled_merged_attention_matches_eager(threads, monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", threads)
    args = attention_inputs(2, 128)
    compiled = sp.compile(self_attention, *args, cache=False)
    assert any(n.op.name == "fused" and n.shape[-1] == 3 * DIM for n in compiled.graph.nodes)
    want = self_attention(*[sp.tensor(a) for a in args]).numpy()
    np.testing.assert_allclose(compiled(*args), want, rtol=1e-4, atol=1e-5)


def test_only_products_whose_weights_nothing_else_reads_are_merged():
    w1, w2, w3 = weight(8, 5), weight(8, 3), weight(8, 4)
    b1, b2, b3 = weight(5), weight(3), weight(4)

    def fn(x):
        # w1 and w2 (plain (in, out) layout) merge; w3 is also read elsewhere, so it stays
        return sp.tanh(x @ w1 + b1).sum() + sp.exp(x @ w2 + b2).sum() + (x @ w3 + b3).sum() \
            + (w3 * x[0][:, None]).sum()

    x = rng.standard_normal((6, 8)).astype(np.float32)
    out = run(fn, [x], FRONT + (merge_shared_input, dce))
    widths = sorted(n.shape[-1] for n in out.nodes if n.op.name == "matmul")
    assert widths == [4, 8]


def test_products_with_and_without_bias_merge_only_among_their_kind():
    w1, w2, w3 = weight(5, 8), weight(3, 8), weight(4, 8)
    b1, b2 = weight(5), weight(3)

    def fn(x):
        return (x @ w1.T + b1).sum() * (x @ w2.T + b2).mean() + sp.relu(x @ w3.T).sum()

    x = rng.standard_normal((2, 6, 8)).astype(np.float32)
    out = run(fn, [x], FRONT + (merge_shared_input, dce))
    assert sorted(n.shape[-1] for n in out.nodes if n.op.name == "matmul") == [4, 8]


def test_specialisations_of_one_model_share_the_concatenated_weight():
    """Two shapes of one model: one concatenation, not one per compilation; a parameter changed in place
    in between gets a fresh one."""
    def merged_weight(graph):
        return next(c.data for c in graph.consts if c.name.startswith("merged_weight"))

    small, large = attention_inputs(1, 8), attention_inputs(2, 8)
    passes = FRONT + (merge_shared_input, dce)
    first = merged_weight(run(self_attention, small, passes))
    assert merged_weight(run(self_attention, large, passes)) is first
    saved = WK.numpy().copy()
    try:
        WK.numpy()[0, 0] += 1.0
        changed = merged_weight(run(self_attention, small, passes))
        assert changed is not first and changed[DIM, 0] == WK.numpy()[0, 0]
    finally:
        WK.numpy()[...] = saved


def test_products_the_graph_returns_stay_apart():
    """A returned slice of the merged buffer would be copied out: no gain, so nothing merges."""
    w1, w2 = weight(8, 5), weight(8, 3)

    def fn(x):
        return x @ w1, x @ w2

    x = rng.standard_normal((6, 8)).astype(np.float32)
    out = run(fn, [x], FRONT + (merge_shared_input, dce))
    assert out.op_counts()["matmul"] == 2
