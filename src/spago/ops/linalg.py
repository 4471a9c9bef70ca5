"""Matrix products: ``matmul`` with NumPy's rules (vectors, matrices, broadcast batches) and ``dot``."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DTypeError, ShapeError
from ._types import TensorLike
from ._util import broadcast_shapes, sum_to
from .registry import Op, Spec, bind, register
from .. import dtypes

if TYPE_CHECKING:
    from ..tensor import Tensor


def _matmul_spec(a: Spec, b: Spec) -> Spec:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul needs operands of rank >= 1; use mul for scalars")
    if a.dtype == dtypes.bool_:
        raise DTypeError("matmul of bool tensors")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if ka != kb:
        raise ShapeError(f"inner dimensions differ: {ka} (last of {a.shape}) vs {kb} (of {b.shape})")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    rows = a.shape[-2:-1] if a.ndim >= 2 else ()
    cols = b.shape[-1:] if b.ndim >= 2 else ()
    return Spec(batch + rows + cols, a.dtype)


def _swap(x):
    from .shape import transpose

    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


def _matmul_grad(g, y, a, b):
    from .shape import expand_dims, reshape

    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = expand_dims(g2, -1)
    ga = sum_to(matmul(g2, _swap(b2)), a2.shape) if a.requires_grad else None
    gb = sum_to(matmul(_swap(a2), g2), b2.shape) if b.requires_grad else None
    return (None if ga is None else reshape(ga, a.shape)), (None if gb is None else reshape(gb, b.shape))


def _matmul_kernel(a, b):
    """np.matmul; a batch of rows times one matrix runs as one 2-D product, because NumPy's stacked matmul
    does not use BLAS when the matrix is a transposed view (``x @ W.T`` in every Linear): ~10x slower."""
    if a.ndim > 2 and b.ndim == 2:
        return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    return np.matmul(a, b)


matmul_op = register(Op("matmul", _matmul_spec, _matmul_kernel, _matmul_grad, "matmul"))


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with NumPy semantics: 1-D operands are vectors, leading axes are broadcast batches."""
    from .elementwise import _promote, _t

    a, b = _promote(_t(a), _t(b), "matmul")
    return bind(matmul_op, [a, b], {})


def dot(a: TensorLike, b: TensorLike) -> Tensor:
    """Inner product of two tensors of the same shape: sum(a * b)."""
    from .elementwise import _t
    from .reductions import sum

    a, b = _t(a), _t(b)
    if a.shape != b.shape:
        raise ShapeError(f"dot: operands must have the same shape, got {a.shape} and {b.shape}")
    return sum(a * b)
