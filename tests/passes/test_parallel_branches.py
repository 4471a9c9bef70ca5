"""parallel_branches: independent chains of small kernels become a region with one branch per thread;
the compiled code computes what the interpreter does, buffers of concurrent branches never share memory,
and a region a later rewrite broke is ignored."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import spago as sp
from spago.passes import default_passes, optimize
from spago.lower.memory import plan_memory
from spago.passes.parallel_branches import estimate_ns, multiply_adds, parallel_branches, regions

from .dags import random_graphs

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def two_chains(x, y, w, v):
    """Two recurrences that only meet at the end (a bidirectional RNN's shape)."""
    a, b = x, y
    for _ in range(12):
        a = sp.ops.tanh(a @ w) * 0.5 + a
        b = sp.ops.sigmoid(b @ v) - b * 0.25
    return a + b


def args():
    return rand(32, 128), rand(32, 128), rand(128, 128) * 0.1, rand(128, 128) * 0.1


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", "2")


def optimized(fn, *a):
    graph, _ = optimize(sp.trace(fn, *a))
    return graph


def test_two_chains_become_one_region_with_a_branch_each(two_threads):
    graph = optimized(two_chains, *args())
    found = regions(graph)
    assert len(found) == 1
    (region,) = found
    assert len(region.branches) == 2
    # each branch holds one chain: no kernel reads a node of the other branch
    for k, nodes in enumerate(region.branches):
        others = {n for j, b in enumerate(region.branches) if j != k for n in b}
        assert not any(i in others for n in nodes for i in n.inputs)
    # nearly all of both chains (the last step carries the join, a + b, which runs after the region)
    assert all(sum(n.op.name == "fused" and n.attrs["pattern"] == "matmul" for n in b) >= 10
               for b in region.branches)
    assert graph.nodes.index(graph.outputs[0]) >= region.end


def test_compiled_regions_compute_what_the_interpreter_does(two_threads):
    a = args()
    fn = sp.compile(two_chains, *a)
    assert regions(fn.graph)
    assert b"region0_worker" in fn.llvm_ir().encode()
    np.testing.assert_allclose(fn(*a), sp.ir.interpret(sp.trace(two_chains, *a), *a), rtol=1e-5, atol=1e-5)


def test_buffers_of_concurrent_branches_never_share_memory(two_threads):
    graph = optimized(two_chains, *args())
    (region,) = regions(graph)
    plan = plan_memory(graph).check()
    branch = {n: k for k, nodes in enumerate(region.branches) for n in nodes}
    placed = [e for e in plan.entries if e.node in branch]
    assert placed
    for e in placed:
        for f in placed:
            if branch[e.node] != branch[f.node]:
                assert not e.overlaps_in_space(f), (e.name, f.name)
    # and the checker itself catches such a clash
    e, f = next((e, f) for e in placed for f in placed if branch[e.node] != branch[f.node])
    f.offset = e.offset
    with pytest.raises(sp.SpagoError, match="alive together"):
        plan.check()


def test_inputs_read_by_one_branch_are_not_overwritten_by_the_other(two_threads):
    def f(x, w, v):  # both chains start from one buffer; each branch's first kernel must not reuse it
        h = sp.ops.tanh(x * 2.0)
        a, b = h, h
        for _ in range(10):
            a = sp.ops.tanh(a @ w)
            b = sp.ops.tanh(b @ v)
        return a * b

    x, w, v = rand(32, 128), rand(128, 128) * 0.1, rand(128, 128) * 0.1
    fn = sp.compile(f, x, w, v)
    assert regions(fn.graph)
    np.testing.assert_allclose(fn(x, w, v), sp.ir.interpret(sp.trace(f, x, w, v), x, w, v), rtol=1e-5, atol=1e-5)


def test_one_thread_leaves_the_schedule_alone(monkeypatch):
    monkeypatch.setenv("SPAGO_NUM_THREADS", "1")
    graph = sp.trace(two_chains, *args())
    before = [n.name for n in graph.nodes]
    out = parallel_branches(graph)
    assert [n.name for n in out.nodes] == before and not regions(out)


def test_a_single_chain_gets_no_region(two_threads):
    def chain(x, w):
        for _ in range(12):
            x = sp.ops.tanh(x @ w)
        return x

    assert not regions(optimized(chain, rand(32, 128), rand(128, 128)))


def test_a_region_broken_by_a_later_rewrite_is_ignored(two_threads):
    graph = optimized(two_chains, *args())
    (region,) = regions(graph)
    # move the first kernel of branch 1 in front of branch 0: the region is no longer branch-ordered
    node = region.branches[1][0]
    graph.nodes.remove(node)
    graph.nodes.insert(region.start, node)
    graph.verify()
    assert not regions(graph)
    from spago.backend.codegen import lower

    assert "region0_worker" not in lower(graph).ir_text  # its kernels run in order
    assert all(not e.branches for e in plan_memory(graph).check().entries)


def test_calls_from_several_threads_at_once(two_threads):
    """The pool is busy for all but one caller: the others run both branches in order themselves."""
    a = args()
    fn = sp.compile(two_chains, *a)
    want = fn(*a)
    errors = []

    def work():
        for _ in range(20):
            if not np.allclose(fn(*a), want, rtol=1e-6, atol=1e-6):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_bidirectional_lstm_directions_run_side_by_side(two_threads):
    from spago import nn

    lstm = nn.LSTM(16, 32, bidirectional=True, generator=sp.Generator(0))
    x = rand(4, 20, 16)
    fn = sp.compile(lambda x: lstm(x)[0], x)
    (region,) = regions(fn.graph)
    scopes = [{n.scope for n in b if n.scope} for b in region.branches]
    assert any("forward_rnn" in s for s in scopes[0] | scopes[1])
    assert all(len({"forward" in s for s in branch}) == 1 for branch in scopes)  # one direction per branch
    np.testing.assert_allclose(fn(x), lstm(sp.tensor(x))[0].numpy(), rtol=1e-4, atol=1e-5)


def test_estimates():
    graph = sp.trace(lambda a, b: sp.ops.tanh(a @ b), rand(64, 32), rand(32, 16))
    mm = next(n for n in graph.nodes if n.op.name == "matmul")
    assert multiply_adds(mm) == 64 * 16 * 32
    assert estimate_ns(mm) > estimate_ns(next(n for n in graph.nodes if n.op.name == "tanh"))


def test_default_pipeline_ends_with_it():
    assert default_passes()[-1] is parallel_branches


@pytest.mark.skipif(__import__("shutil").which("cc") is None, reason="no C compiler on PATH")
def test_exported_library_runs_the_branches_in_order(two_threads, tmp_path):
    import ctypes

    a = args()
    fn = sp.compile(two_chains, *a)
    assert regions(fn.graph)
    paths = fn.export(str(tmp_path / "chains"))
    lib = ctypes.CDLL(paths["library"])
    out = np.empty((32, 128), np.float32)
    inputs = (ctypes.c_void_p * 4)(*[x.ctypes.data for x in a])
    outputs = (ctypes.c_void_p * 1)(out.ctypes.data)
    assert lib.chains_run(inputs, outputs) == 0
    np.testing.assert_allclose(out, fn(*a), rtol=1e-5, atol=1e-5)  # its own portable product: other rounding


def test_scan_budget_bounds_the_search_and_keeps_finding_regions(two_threads, monkeypatch):
    import spago.passes.parallel_branches as pb

    monkeypatch.setattr(pb, "SCAN_BUDGET", 50)  # far fewer visits than starts x kernels: a thinned search
    (region,) = regions(optimized(two_chains, *args()))
    assert len(region.branches) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=random_graphs(max_ops=20))
def test_random_graphs_split_into_regions_stay_correct(sample, two_threads, monkeypatch):
    """With regions made free, random programs get split wherever they have independent work: the
    schedule stays a valid order with the same values, no two concurrent branches share memory, and the
    compiled code (branches really running on two threads) computes what the interpreter does."""
    import spago.passes.parallel_branches as pb

    monkeypatch.setattr(pb, "REGION_NS", 0.0)
    monkeypatch.setattr(pb, "LAUNCH_NS", 1.0)
    monkeypatch.setattr(pb, "JOIN_NS", 1e12)  # never defer: every fork may start a region
    graph, inputs = sample
    optimized_graph, _ = optimize(graph)
    optimized_graph.verify()
    plan_memory(optimized_graph).check()
    want = sp.ir.interpret(graph, *inputs)
    got = sp.ir.interpret(optimized_graph, *inputs)
    for w, g in zip(want if isinstance(want, (list, tuple)) else [want], got if isinstance(got, (list, tuple)) else [got]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    fn = sp.compile(graph, cache=False)
    out = fn(*inputs)
    for w, g in zip(want if isinstance(want, (list, tuple)) else [want], out if isinstance(out, (list, tuple)) else [out]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
