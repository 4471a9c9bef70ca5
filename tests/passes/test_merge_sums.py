"""merge_sums: sums of slice gradients become one concat, sums of products one product, and the graph
computes the same values (interpreter before and after)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import spago as sp
from spago.passes import default_passes, optimize
from spago.passes.cse import cse
from spago.passes.dce import dce
from spago.passes.merge_sums import merge_sums
from spago.passes.simplify import simplify

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def merged(fn, *args, tol=1e-5):
    """The traced graph of ``fn`` after simplify, cse, merge_sums, dce — checked against the original."""
    graph = sp.trace(fn, *args)
    out = graph.copy()
    for p in (simplify, cse, merge_sums, dce):
        out = p(out)
        out.verify()
    before, after = sp.ir.interpret(graph, *args), sp.ir.interpret(out, *args)
    for a, b in zip(before if isinstance(before, (list, tuple)) else [before],
                    after if isinstance(after, (list, tuple)) else [after]):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    return out.op_counts()


def test_time_and_gate_slices_of_one_projection_become_concats():
    def f(p, h):  # an LSTM-like loop over a time-major projection: p[t] and four gate slices
        total = 0.0
        for t in range(p.shape[0]):
            i, g, o, c = sp.split(p[t] + h, 4, axis=-1)
            h = sp.concat([sp.sigmoid(i) * sp.tanh(g), sp.sigmoid(o) * c, sp.tanh(i), g * o], axis=-1)
            total = total + sp.sum(h * h)
        return total

    counts = merged(sp.grad(f), rand(5, 3, 8), rand(3, 8))
    assert "unindex" not in counts
    assert counts["concat"] >= 6  # four gates per step joined, then the steps


def test_gaps_repeats_and_negative_indices():
    def f(x):  # rows 0 (twice), 2 and -1 of 6; rows 1, 3 and 4 get zeros
        return sp.sum(x[0] * 2.0) + sp.sum(sp.tanh(x[2])) + sp.sum(x[0] * x[0]) + sp.sum(x[-1] * 3.0)

    counts = merged(sp.grad(f), rand(6, 4))
    assert "unindex" not in counts and counts["concat"] == 1 and counts["broadcast_to"] == 3


def test_inner_axis_slices_and_ellipsis():
    def f(x):
        return sp.sum(sp.exp(x[..., 0:2])) + sp.sum(x[:, :, 2:5] ** 2.0) + sp.sum(sp.sin(x[..., 6:]))

    counts = merged(sp.grad(f), rand(2, 3, 8))
    assert "unindex" not in counts and counts["concat"] == 1


def test_overlapping_and_strided_slices_are_left_alone():
    def overlapping(x):
        return sp.sum(sp.exp(x[0:3])) + sp.sum(sp.tanh(x[2:5]))

    def strided(x):
        return sp.sum(sp.exp(x[0::2])) + sp.sum(sp.tanh(x[1::2]))

    assert merged(sp.grad(overlapping), rand(5, 2))["unindex"] == 2
    assert merged(sp.grad(strided), rand(6, 2))["unindex"] == 2


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_sums_of_slices_preserve_values(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    axis = data.draw(st.integers(0, len(shape) - 1))
    keys = []
    for _ in range(data.draw(st.integers(1, 5))):
        if data.draw(st.booleans()):
            keys.append(data.draw(st.integers(-shape[axis], shape[axis] - 1)))
        else:
            a = data.draw(st.integers(0, shape[axis] - 1))
            keys.append(slice(a, data.draw(st.integers(a + 1, shape[axis]))))
    lead = (slice(None),) * axis

    def f(x):
        return sum(sp.sum(sp.tanh(x[lead + (k,)] * float(j + 1))) for j, k in enumerate(keys))

    merged(sp.grad(f), rand(*shape))


def test_weight_gradient_of_an_unrolled_loop_is_one_product():
    def f(w, xs):  # the same weight at every step: its gradient sums one small product per step
        h = xs[0]
        for t in range(1, xs.shape[0]):
            h = sp.tanh(h @ w.T + xs[t])
        return sp.sum(h)

    counts = merged(sp.grad(f), rand(16, 16), rand(6, 4, 16))
    assert counts["matmul"] == 5 + 4 + 1  # forward steps, backward steps, one weight gradient


def test_products_merge_only_when_copying_operands_is_cheaper():
    def cheap(a, b, c, d):  # (4 x 2)(2 x 4) twice: copying 2x8 operands beats adding 4x4 outputs
        return a @ b + c @ d

    def dear(a, b, c, d):  # (2 x 64)(64 x 2) twice: the operands are far larger than the output
        return a @ b + c @ d

    assert merged(cheap, rand(4, 2), rand(2, 4), rand(4, 2), rand(2, 4))["matmul"] == 1
    assert merged(dear, rand(2, 64), rand(64, 2), rand(2, 64), rand(64, 2))["matmul"] == 2


def test_transposed_products_merge():
    def f(a, b, c, d):  # (aᵀb)ᵀ + (cᵀd)ᵀ + bᵀa, as the gradient of a weight used transposed produces
        return (a.T @ b).T + (c.T @ d).T + b.T @ a

    assert merged(f, rand(3, 6), rand(3, 5), rand(2, 6), rand(2, 5))["matmul"] == 1


def test_batched_weight_gradient_is_one_product():
    def f(w, x):  # a Linear on (batch, time, features): its weight gradient sums over the batch
        return sp.sum(sp.tanh(x @ w.T))

    args = (rand(5, 7), rand(4, 3, 7))
    merged(sp.grad(f), *args)
    out = merge_sums(cse(simplify(sp.trace(sp.grad(f), *args))))
    assert not any(n.op.name == "sum" and n.inputs[0].op is not None and n.inputs[0].op.name == "matmul"
                   for n in out.nodes)
    assert any(n.op.name == "matmul" and n.spec.ndim == 2 for n in out.nodes)


def test_lstm_training_graph_has_no_unindex_and_matches():
    lstm = sp.nn.LSTM(3, 4, bidirectional=True, generator=sp.Generator(0))
    x = rand(2, 5, 3)

    def step(x):
        out, _ = lstm(x)
        total = sp.sum(out * out)
        total.backward()
        grads = [p.grad for _, p in lstm.named_parameters()]
        for _, p in lstm.named_parameters():
            p.grad = None
        return [total] + grads

    graph = sp.trace(step, x)
    out, _ = optimize(graph, default_passes(inference=False), inference=False)
    assert "unindex" not in out.op_counts()
    for a, b in zip(sp.ir.interpret(graph, x), sp.ir.interpret(out, x)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_transposed_product_writes_the_transposed_layout():
    def f(x, b):  # (xᵀ b)ᵀ, the gradient of a weight used as ``x @ W.T``: becomes bᵀ x, no copy after it
        return sp.tanh((x.T @ b).T)

    args = (rand(6, 3), rand(6, 5))
    merged(f, *args)
    out = dce(merge_sums(sp.trace(f, *args)))
    product = out.outputs[0].inputs[0]
    assert product.op.name == "matmul" and product.inputs[1].kind == "input"
    assert out.op_counts() == {"transpose": 1, "matmul": 1, "tanh": 1}
