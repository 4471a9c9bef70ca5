"""Every op case: forward against an independent NumPy reference (float32 and float64) and the
tape's gradient against central finite differences (float64), on random shapes (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spago as sp
from spago.testing import check_grad

from .cases import all_cases

CASES = all_cases()


def draw_inputs(data, case, dtype):
    shapes = case.shapes(data.draw) if callable(case.shapes) else case.shapes
    seed = data.draw(st.integers(0, 2**31 - 1))
    return case.inputs(np.random.default_rng(seed), shapes, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_forward_matches_numpy(case, dtype, data):
    inputs = draw_inputs(data, case, dtype)
    got = case.fn(*[sp.tensor(x) for x in inputs])
    want = np.asarray(case.reference(*inputs))
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        assert got.dtype == dtype or got.dtype == want.dtype
        tol = dict(rtol=case.rtol32, atol=case.atol32) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.numpy(), want, **tol)
    else:
        np.testing.assert_array_equal(got.numpy(), want)


DIFFERENTIABLE = [c for c in CASES if c.grad_argnums != ()]


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=[c.name for c in DIFFERENTIABLE])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_gradient_matches_finite_differences(case, data):
    inputs = draw_inputs(data, case, np.float64)
    argnums = case.grad_argnums if case.grad_argnums is not None else \
        tuple(k for k, x in enumerate(inputs) if x.dtype.kind == "f")
    fixed = list(inputs)

    def fn(*diff):
        args = list(fixed)
        for k, t in zip(argnums, diff):
            args[k] = t
        args = [a if isinstance(a, sp.Tensor) else sp.tensor(a) for a in args]
        return case.fn(*args)

    check_grad(fn, *[inputs[k] for k in argnums], rtol=case.grad_rtol, atol=case.grad_atol)


def test_every_registered_op_has_a_case():
    covered = {op for c in CASES for op in c.ops}
    internal = {"fused"}  # not user-facing: made by fusion passes
    missing = set(sp.ops.OPS) - covered - internal
    assert not missing, f"ops without a test case: {sorted(missing)}"
