"""Products too small for BLAS (the generated loop): column blocks of four vectors, then of one, then dot
products for the last few columns — every split of the columns against NumPy, float and integer, with
the epilogue a recurrent step fuses (bias adds) and with a transposed weight read through strides."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.compiler import compile
from spago.lower.matmul import SMALL_PRODUCT

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("n", [1, 4, 15, 16, 17, 36, 63, 64, 65, 100, 130])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_small_products_match_numpy_for_every_column_split(n, dtype):
    m, k = 28, 25
    assert m * n * k <= SMALL_PRODUCT
    if np.dtype(dtype).kind == "i":
        a, w = RNG.integers(-5, 5, (m, k)).astype(dtype), RNG.integers(-5, 5, (k, n)).astype(dtype)
        compiled = compile(lambda x: sp.matmul(x, sp.tensor(w)), a, name=f"small_int_{n}")
        np.testing.assert_array_equal(compiled(a), a @ w)
        return
    a, w, bias = (RNG.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (n,)))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    step = compile(lambda x: sp.matmul(x, sp.tensor(w)) + sp.tensor(bias) + 1.0, a, name=f"small_step_{n}")
    np.testing.assert_allclose(step(a), a @ w + bias + 1.0, **tol)
    wt = np.ascontiguousarray(w.T)
    strided = compile(lambda x: sp.matmul(x, sp.tensor(wt).T), a, name=f"small_strided_{n}")
    np.testing.assert_allclose(strided(a), a @ w, **tol)
