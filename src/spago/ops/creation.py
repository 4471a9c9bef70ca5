"""Tensors made from nothing: zeros, ones, full, arange, eye, and seeded random draws."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import dtypes
from ._types import DTypeLike, ShapeLike, TensorLike
from .random import Generator, default_generator

if TYPE_CHECKING:
    from ..tensor import Tensor


def _shape(shape) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return tuple(int(d) for d in shape)


def _make(array, requires_grad=False):
    from ..tensor import Tensor

    t = Tensor._wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape: int | Sequence[int], dtype: DTypeLike="float32", requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_shape(shape), dtypes.as_dtype(dtype)), requires_grad)


def ones(*shape: int | Sequence[int], dtype: DTypeLike="float32", requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_shape(shape), dtypes.as_dtype(dtype)), requires_grad)


def full(shape: ShapeLike, value: float, dtype: DTypeLike="float32", requires_grad: bool = False) -> Tensor:
    return _make(np.full(_shape((shape,)), value, dtypes.as_dtype(dtype)), requires_grad)


def zeros_like(x: TensorLike, dtype: DTypeLike | None=None) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype)


def ones_like(x: TensorLike, dtype: DTypeLike | None=None) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype)


def arange(start: float, stop: float | None=None, step: float=1, dtype: DTypeLike | None=None) -> Tensor:
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = "int64" if all(isinstance(v, int) for v in (start, stop, step)) else "float32"
    return _make(np.arange(start, stop, step, dtype=dtypes.as_dtype(dtype)))


def eye(n: int, m: int | None = None, dtype: DTypeLike="float32") -> Tensor:
    return _make(np.eye(n, m, dtype=dtypes.as_dtype(dtype)))


def randn(*shape: int | Sequence[int], dtype: DTypeLike="float32", generator: Generator | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws from ``generator`` (default: the global one, see ``spago.manual_seed``)."""
    rng = (generator or default_generator).numpy()
    return _make(rng.standard_normal(_shape(shape)).astype(dtypes.as_dtype(dtype)), requires_grad)


def rand(*shape: int | Sequence[int], dtype: DTypeLike="float32", generator: Generator | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform draws in [0, 1)."""
    rng = (generator or default_generator).numpy()
    return _make(rng.random(_shape(shape)).astype(dtypes.as_dtype(dtype)), requires_grad)
