"""For every op case: interpret(trace(f)) equals eager f, the traced gradient graph equals the tape,
and the graph's DOT renders with Graphviz (system dot, or its WebAssembly build)."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.ir.dot import render_source
from tests.ops.cases import all_cases

CASES = all_cases()
RNG_SEED = 3


def inputs_for(case, dtype):
    shapes = _draw_fixed(case) if callable(case.shapes) else case.shapes
    return case.inputs(np.random.default_rng(RNG_SEED), shapes, dtype)


def _draw_fixed(case):
    """A deterministic example from a case's hypothesis shape strategy."""
    from hypothesis import given, settings, strategies as st

    found = []

    @settings(max_examples=1, database=None, derandomize=True)
    @given(st.data())
    def pick(data):
        found.append(case.shapes(data.draw))

    pick()
    return found[0]


def _flat(x):
    return [np.asarray(v.numpy() if isinstance(v, sp.Tensor) else v) for v in (x if isinstance(x, (list, tuple)) else [x])]


def argnums_of(case, inputs):
    if case.grad_argnums is not None:
        return case.grad_argnums
    return tuple(k for k, x in enumerate(inputs) if x.dtype.kind == "f")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_interpreter_matches_eager(case, dtype):
    inputs = inputs_for(case, dtype)
    graph = sp.trace(case.fn, *inputs)
    graph.verify()
    got = _flat(sp.ir.interpret(graph, *inputs))
    want = _flat(case.fn(*[sp.tensor(x) for x in inputs]))
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


GRAD_CASES = [c for c in CASES if c.grad_argnums != ()]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_traced_gradient_matches_tape(case):
    inputs = inputs_for(case, np.float64)
    argnums = argnums_of(case, inputs)
    out_shape = case.fn(*[sp.tensor(x) for x in inputs]).shape
    cot = np.random.default_rng(1).standard_normal(out_shape)

    def loss(*xs):
        return (case.fn(*xs) * cot).sum()

    tape = sp.grad(loss, argnums=argnums)(*inputs)
    graph = sp.trace(sp.grad(loss, argnums=argnums), *inputs)
    graph.verify()
    traced = sp.ir.interpret(graph, *inputs)
    for t, g in zip(tape, traced):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-12)


def test_every_case_graph_renders_with_dot():
    """With the system's dot where installed, else with Graphviz's WebAssembly build."""
    failures = []
    for case in CASES:
        inputs = inputs_for(case, np.float32)
        source = sp.trace(case.fn, *inputs).to_dot()
        try:
            if b"<svg" not in render_source(source, "svg"):
                failures.append((case.name, "no <svg> in the output"))
        except sp.SpagoError as exc:
            failures.append((case.name, str(exc)))
    assert not failures


def test_every_registered_op_appears_in_some_traced_graph():
    seen = set()
    for case in CASES:
        inputs = inputs_for(case, np.float64)
        seen |= set(sp.trace(case.fn, *inputs).op_counts())
        if case.grad_argnums != ():
            argnums = argnums_of(case, inputs)
            seen |= set(sp.trace(sp.grad(lambda *xs: case.fn(*xs).sum(), argnums=argnums), *inputs).op_counts())
    missing = set(sp.ops.OPS) - seen - {"fused"}
    assert not missing, sorted(missing)
