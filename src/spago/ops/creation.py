"""Tensors made from nothing: zeros, ones, full, arange, eye, and seeded random draws."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from .random import Generator, default_generator


def _shape(shape) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return tuple(int(d) for d in shape)


def _make(array, requires_grad=False):
    from ..tensor import Tensor

    t = Tensor._wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype="float32", requires_grad: bool = False):
    return _make(np.zeros(_shape(shape), dtypes.as_dtype(dtype)), requires_grad)


def ones(*shape, dtype="float32", requires_grad: bool = False):
    return _make(np.ones(_shape(shape), dtypes.as_dtype(dtype)), requires_grad)


def full(shape, value, dtype="float32", requires_grad: bool = False):
    return _make(np.full(_shape((shape,)), value, dtypes.as_dtype(dtype)), requires_grad)


def zeros_like(x, dtype=None):
    return zeros(x.shape, dtype=dtype or x.dtype)


def ones_like(x, dtype=None):
    return ones(x.shape, dtype=dtype or x.dtype)


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = "int64" if all(isinstance(v, int) for v in (start, stop, step)) else "float32"
    return _make(np.arange(start, stop, step, dtype=dtypes.as_dtype(dtype)))


def eye(n: int, m: int | None = None, dtype="float32"):
    return _make(np.eye(n, m, dtype=dtypes.as_dtype(dtype)))


def randn(*shape, dtype="float32", generator: Generator | None = None, requires_grad: bool = False):
    """Standard normal draws from ``generator`` (default: the global one, see ``spago.manual_seed``)."""
    rng = (generator or default_generator).numpy()
    return _make(rng.standard_normal(_shape(shape)).astype(dtypes.as_dtype(dtype)), requires_grad)


def rand(*shape, dtype="float32", generator: Generator | None = None, requires_grad: bool = False):
    """Uniform draws in [0, 1)."""
    rng = (generator or default_generator).numpy()
    return _make(rng.random(_shape(shape)).astype(dtypes.as_dtype(dtype)), requires_grad)
