"""split_concat_products: ``concat([x_t, h]) @ W`` by a constant becomes ``x_t @ W[:i] + h @ W[i:]``, so the
input's share of every step becomes one product (`batch_matmul`) — with the same values (interpreter
before and after, compiled against eager) — and is left alone where nothing would be gained."""
from __future__ import annotations

import numpy as np

import spago as sp
from spago.benchmarks.lstm import four_gate_lstm
from spago.passes.batch_matmul import batch_matmul
from spago.passes.constant_folding import constant_folding
from spago.passes.cse import cse
from spago.passes.dce import dce
from spago.passes.freeze import freeze_params
from spago.passes.merge_shared_input import merge_shared_input
from spago.passes.simplify import simplify
from spago.passes.split_concat_products import split_concat_products

rng = np.random.default_rng(3)
H, STEPS = 48, 6  # gate weights of 2H x H > 4,096 elements: `cse` keeps each step's W[k] (as for real sizes)
WEIGHTS = (rng.standard_normal((4, 2 * H, H)) * 0.3).astype(np.float32)
BIAS = (rng.standard_normal((4, H)) * 0.3).astype(np.float32)
XS = rng.standard_normal((STEPS, 1, H)).astype(np.float32)
H0 = np.zeros((1, H), np.float32)
four_gates = four_gate_lstm(WEIGHTS, BIAS)


def optimised(fn, *args, split: bool = True) -> sp.ir.Graph:
    """``fn``'s graph through the pipeline's passes up to the products' (verified), its values checked
    against the traced graph's."""
    graph = sp.trace(fn, *args)
    passes = [freeze_params, simplify, constant_folding, cse, dce, batch_matmul, merge_shared_input]
    passes += [split_concat_products, batch_matmul, dce] if split else [dce]
    out = graph.copy()
    for p in passes:
        out = p(out)
        out.verify()
    np.testing.assert_allclose(sp.ir.interpret(out, *args), sp.ir.interpret(graph, *args), rtol=1e-5, atol=1e-6)
    return out


def products(graph) -> list:
    return [n for n in graph.nodes if n.kind == "op" and n.op.name == "matmul"]


def test_the_inputs_share_becomes_one_product_for_every_step():
    graph = optimised(four_gates, XS, H0, H0)
    found = products(graph)
    assert not [p for p in found if p.inputs[0].op is not None and p.inputs[0].op.name == "concat"]
    assert sorted(p.shape for p in found).count((STEPS, 4 * H)) == 1  # x_t @ W[:H] of every step, gates merged
    assert sum(p.shape == (1, 4 * H) and p.inputs[1].shape == (H, 4 * H) for p in found) == STEPS  # h @ W[H:]
    before = products(optimised(four_gates, XS, H0, H0, split=False))
    assert all(p.inputs[0].op.name == "concat" for p in before) and len(before) == STEPS


def test_compiled_equals_eager_and_runs_each_step_on_the_state_only():
    compiled = sp.compile(four_gates, XS, H0, H0, cache=False)
    eager = four_gates(sp.tensor(XS), sp.tensor(H0), sp.tensor(H0)).numpy()
    np.testing.assert_allclose(compiled(XS, H0, H0), eager, rtol=1e-5, atol=1e-6)
    rows = sorted(p["shape"][0] for p in compiled.report()["products"])
    assert rows.count(STEPS) == 1 and rows.count(1) == STEPS


def test_left_alone_without_an_early_part_a_constant_weight_or_the_contracted_axis():
    w = WEIGHTS[0]

    def both_computed(x):
        a, b = sp.tanh(x), sp.sigmoid(x)
        return sp.concat([a, b], axis=-1) @ w

    def weight_is_an_input(x, h, v):
        return sp.concat([x, sp.tanh(h)], axis=-1) @ v

    def rows_joined(x, h):
        return sp.concat([x, sp.tanh(h)], axis=0) @ w[:H]

    x = XS[0]
    assert len(products(optimised(both_computed, x))) == 1
    assert len(products(optimised(weight_is_an_input, x, x, w))) == 1
    assert len(products(optimised(rows_joined, x, x))) == 1


def test_a_transposed_constant_weight_is_split_by_its_rows():
    w = sp.tensor((rng.standard_normal((H, 2 * H)) * 0.3).astype(np.float32))  # a Linear's (out, in)

    def cell(x, h):
        return sp.concat([x, sp.tanh(h)], axis=-1) @ w.T

    graph = optimised(cell, XS[0], XS[1])
    assert [p.inputs[0].shape for p in products(graph)] == [(1, H), (1, H)]
