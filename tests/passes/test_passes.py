"""Every pass preserves semantics (interpreter before vs after) on random DAGs and hand-written graphs;
specific rewrites are checked on structure; the pass manager times, verifies and dumps."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings

import spago as sp
from spago.passes import default_passes, optimize
from spago.passes.constant_folding import constant_folding
from spago.passes.cse import cse
from spago.passes.dce import dce
from spago.passes.freeze import freeze_params
from spago.lower.memory import plan_memory
from spago.passes.simplify import simplify

from .dags import random_graphs

ALL = default_passes()


def same(before, after, tol=1e-5):
    before = before if isinstance(before, (list, tuple)) else [before]
    after = after if isinstance(after, (list, tuple)) else [after]
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("one_pass", ALL[:-1], ids=[p.__name__ for p in ALL[:-1]])
@settings(max_examples=40, deadline=None)
@given(sample=random_graphs())
def test_each_pass_preserves_semantics_on_random_graphs(one_pass, sample):
    graph, inputs = sample
    out = one_pass(graph.copy())
    out.verify()
    same(sp.ir.interpret(graph, *inputs), sp.ir.interpret(out, *inputs))


@settings(max_examples=60, deadline=None)
@given(sample=random_graphs())
def test_whole_pipeline_preserves_semantics_on_random_graphs(sample):
    graph, inputs = sample
    out, manager = optimize(graph)
    same(sp.ir.interpret(graph, *inputs), sp.ir.interpret(out, *inputs))
    plan = plan_memory(out).check()
    assert plan.arena_bytes <= plan.naive_bytes


X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
W = sp.tensor(np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32))
W.name = "weight"


def ops_after(fn, *passes, args=(X,)):
    g = sp.trace(fn, *args)
    out = g.copy()
    for p in passes:
        out = p(out)
        out.verify()
    same(sp.ir.interpret(g, *args), sp.ir.interpret(out, *args))
    return out.op_counts()


def test_simplify_removes_identities():
    counts = ops_after(lambda x: (x * 1.0 + 0.0).T.T - 0.0, simplify)
    assert counts == {}
    assert ops_after(lambda x: -(-x) / 1.0, simplify) == {}
    assert ops_after(lambda x: x.reshape(4, 3).reshape(12).reshape(2, 6), simplify) == {"reshape": 1}
    assert ops_after(lambda x: x ** 2.0, simplify) == {"mul": 1}
    assert ops_after(lambda x: x ** 1.0, simplify) == {}
    assert ops_after(lambda x: x.transpose((1, 0)).transpose((1, 0)) * 2.0, simplify) == {"mul": 1}
    assert ops_after(lambda x: sp.tanh(x) - sp.tanh(x), cse, simplify, dce) == {}


def test_simplify_reads_broadcast_scalars_directly():
    c = np.float32(2.0)
    counts = ops_after(lambda x: x * sp.broadcast_to(sp.tensor(c), (3, 4)), simplify, dce)
    assert counts == {"mul": 1}


def test_cse_merges_repeated_work():
    assert ops_after(lambda x: sp.exp(x) + sp.exp(x), cse) == {"exp": 1, "add": 1}


def test_constant_folding_does_weight_only_work_once():
    counts = ops_after(lambda x: x @ (W.T * 0.5), freeze_params, constant_folding)
    assert counts == {"matmul": 1}


def test_parameters_stay_parameters_for_training_graphs():
    g = sp.trace(lambda x: x @ W.T, X)
    out, _ = optimize(g, inference=False)
    assert [p.name for p in out.params] == ["weight"]


def test_dce_drops_unused_branches_but_keeps_inputs():
    def f(x, unused):
        sp.exp(x)  # computed and thrown away
        return x * 2.0

    g = dce(sp.trace(f, X, X))
    assert g.op_counts() == {"mul": 1} and len(g.inputs) == 2


def test_passes_are_idempotent():
    for p in ALL:
        g = sp.trace(lambda x: sp.softmax(x @ W.T * 1.0) + sp.exp(x).sum(), X)
        once = p(g.copy())
        twice = p(once.copy())
        assert once.op_counts() == twice.op_counts(), p.__name__


def test_pass_manager_records_timing_and_dumps_every_pass(tmp_path, monkeypatch):
    g = sp.trace(lambda x: sp.softmax(x @ W.T + 1.0), X)
    out, manager = optimize(g, dump_dir=str(tmp_path))
    names = [r.name for r in manager.records]
    assert names == [p.__name__ for p in ALL]
    assert all(r.seconds >= 0 for r in manager.records)
    files = sorted(os.listdir(tmp_path))
    assert "00-input.txt" in files and "summary.txt" in files
    assert any(f.endswith("fuse_rowwise.dot") for f in files) and any(f.endswith("fuse_rowwise.txt") for f in files)
    summary = (tmp_path / "summary.txt").read_text()
    assert "fuse_rowwise:" in summary and "fused kernels +1" in summary
    (matmul_dump,) = [f for f in files if f.endswith("-fuse_matmul.txt")]
    assert (tmp_path / matmul_dump).read_text().startswith("# fuse_matmul:")
    dumps = tmp_path / "env"
    monkeypatch.setenv("SPAGO_DUMP_DIR", str(dumps))
    optimize(g)
    assert (dumps / "summary.txt").exists()


def test_custom_pass_lists_run_through_compile():
    calls = []

    def spy(graph):
        calls.append(len(graph.nodes))
        return graph

    f = sp.compile(lambda x: sp.exp(x) * 2.0, X, passes=[spy, *default_passes()])
    np.testing.assert_allclose(f(X), np.exp(X) * 2, rtol=1e-6)
    assert calls == [2]
    assert "spy" in f.report()["pass_seconds"]


def test_a_broken_pass_is_caught_by_verification():
    def breaks(graph):
        graph.nodes[0].spec = sp.Spec((9,), np.float32)
        return graph

    with pytest.raises(sp.ir.IRError):
        optimize(sp.trace(lambda x: sp.exp(x), X), passes=[breaks])


def test_independent_products_sharing_a_weight_become_one():
    from spago.passes.batch_matmul import batch_matmul

    xs = np.random.default_rng(2).standard_normal((6, 1, 4)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)

    def rnn_inputs(x, h):
        for t in range(6):
            h = sp.tanh(x[t] @ w + h)
        return h

    counts = ops_after(rnn_inputs, freeze_params, batch_matmul, dce, args=(xs, np.zeros((1, 3), np.float32)))
    assert counts["matmul"] == 1  # one (6x4)@(4x3) product instead of six (1x4)@(4x3)

    def scattered(a, b):  # rows of two different inputs: concatenated, then one product
        return sp.tanh(a @ w) + sp.exp(b @ w)

    counts = ops_after(scattered, freeze_params, batch_matmul, dce, args=(X[:2, :4].copy(), X[1:, :4][:2].copy()))
    assert counts["matmul"] == 1 and counts["concat"] == 1
