"""argmax/argmin kernels, compiled, against NumPy: over the contiguous last axis (one register chain per
row) and over a strided axis (rows advanced together, vectorised), with ties (first index wins), NaN (the
first NaN wins, as in NumPy), integers and a single-entry axis."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import spago as sp
from spago.compiler import compile


def _inputs(dtype, shape, rng):
    if np.dtype(dtype).kind == "i":
        return rng.integers(-3, 4, shape).astype(dtype)      # many ties
    x = rng.integers(-3, 4, shape).astype(dtype)            # ties as well
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, max(1, flat.size // 7), replace=False)] = np.nan
    return x


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape,axis", [((3, 41, 41), 1), ((3, 41, 41), 2), ((6, 9), 0), ((4, 1, 5), 1),
                                        ((2, 7, 3), 0), ((5, 8), -1)])
def test_compiled_arg_extreme_matches_numpy(name, dtype, shape, axis):
    rng = np.random.default_rng(zlib.crc32(repr((name, str(np.dtype(dtype)), shape, axis)).encode()))
    fn, ref = getattr(sp, name), getattr(np, name)
    for x in (_inputs(dtype, shape, rng), rng.standard_normal(shape).astype(dtype) if dtype != np.int64
              else rng.integers(-100, 100, shape)):
        compiled = compile(lambda a: fn(a, axis=axis), x, name=f"{name}_{len(shape)}d_{axis % len(shape)}")
        np.testing.assert_array_equal(compiled(x), ref(x, axis=axis))
