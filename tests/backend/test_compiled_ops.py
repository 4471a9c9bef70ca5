"""Compiled equals eager for every op case (float32 within 1e-5 relative, float64 within 1e-12),
both unfused (one kernel per primitive) and through the default optimisation pipeline."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spago as sp
from tests.ops.cases import all_cases

CASES = all_cases()
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def draw_inputs(data, case, dtype):
    shapes = case.shapes(data.draw) if callable(case.shapes) else case.shapes
    seed = data.draw(st.integers(0, 2**31 - 1))
    return case.inputs(np.random.default_rng(seed), shapes, dtype)


def _flat(x):
    return [np.asarray(v.numpy() if isinstance(v, sp.Tensor) else v) for v in (x if isinstance(x, (list, tuple)) else [x])]


@pytest.mark.parametrize("passes", ["unfused", "optimized"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_compiled_matches_eager(case, dtype, passes, data):
    inputs = draw_inputs(data, case, dtype)
    expected = _flat(case.fn(*[sp.tensor(x) for x in inputs]))
    compiled = sp.compile(case.fn, *inputs, passes=[] if passes == "unfused" else None)
    got = _flat(compiled(*inputs))
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        tol = TOL[np.float64] if e.dtype == np.float64 else dict(rtol=max(TOL[np.float32]["rtol"], case.rtol32),
                                                                   atol=max(TOL[np.float32]["atol"], case.atol32))
        np.testing.assert_allclose(g, e, **tol)
