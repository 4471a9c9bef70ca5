"""Reductions over axes (sum, max, min, argmax) and the composites built on them (mean, var, logsumexp)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ._types import Axis, TensorLike
from ._util import normalize_axes, reduced_shape
from .registry import Op, Spec, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


def _reduce_spec(x: Spec, axes: tuple, keepdims: bool) -> Spec:
    if x.dtype == dtypes.bool_:
        raise DTypeError("reduction of a bool tensor; cast it first")
    return Spec(reduced_shape(x.shape, axes, keepdims), x.dtype)


def _keep(g, x_shape: tuple, axes: tuple, keepdims: bool):
    """``g`` reshaped so it broadcasts against the input again."""
    from . import reshape

    return g if keepdims else reshape(g, reduced_shape(x_shape, axes, True))


def _sum_grad(g, y, x, axes, keepdims):
    from . import broadcast_to

    return (broadcast_to(_keep(g, x.shape, axes, keepdims), x.shape),)


def _extreme_grad(g, y, x, axes, keepdims):
    """The gradient goes to the positions that attain the extreme value, split evenly among ties."""
    from . import cast

    hit = cast(x == _keep(y, x.shape, axes, keepdims), g.dtype)
    share = hit / sum(hit, axis=axes, keepdims=True)
    return (share * _keep(g, x.shape, axes, keepdims),)


sum_op = register(Op("sum", _reduce_spec, lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims),
                     _sum_grad, "reduction", traits={"reduction"}))
max_op = register(Op("max", _reduce_spec, lambda x, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims),
                     _extreme_grad, "reduction", traits={"reduction"}))
min_op = register(Op("min", _reduce_spec, lambda x, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims),
                     _extreme_grad, "reduction", traits={"reduction"}))


def _reduce(op: Op, x, axis, keepdims: bool):
    from .elementwise import _t

    x = _t(x)
    axes = normalize_axes(axis, x.ndim, op.name)
    if op is not sum_op and any(x.shape[a] == 0 for a in axes):
        from ..errors import ShapeError

        raise ShapeError(f"{op.name}: reduction over an empty axis of shape {x.shape}")
    return bind(op, [x], {"axes": axes, "keepdims": bool(keepdims)})


def sum(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (None: all axes)."""
    return _reduce(sum_op, x, axis, keepdims)


def max(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Largest value over ``axis``; the gradient is shared among tied maxima."""
    return _reduce(max_op, x, axis, keepdims)


def min(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Smallest value over ``axis``; the gradient is shared among tied minima."""
    return _reduce(min_op, x, axis, keepdims)


def mean(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    from .elementwise import _t

    x = _t(x)
    if not dtypes.is_float(x.dtype):
        raise DTypeError(f"mean: expected a floating tensor, got {x.dtype.name}")
    axes = normalize_axes(axis, x.ndim, "mean")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return sum(x, axes, keepdims) * (1.0 / count if count else float("nan"))


def var(x: TensorLike, axis: Axis | None=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis`` (``ddof=1`` for the unbiased estimate)."""
    from .elementwise import _t, square

    x = _t(x)
    axes = normalize_axes(axis, x.ndim, "var")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) - ddof
    centred = x - mean(x, axes, keepdims=True)
    return sum(square(centred), axes, keepdims) * (1.0 / count if count > 0 else float("nan"))


def std(x: TensorLike, axis: Axis | None=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    from .elementwise import sqrt

    return sqrt(var(x, axis, keepdims, ddof))


def _argmax_spec(x: Spec, axis, keepdims: bool) -> Spec:
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
    else:
        shape = reduced_shape(x.shape, (axis,), keepdims)
    return Spec(shape, dtypes.int64)


argmax_op = register(Op("argmax", _argmax_spec,
                        lambda x, axis, keepdims: np.argmax(x, axis=axis, keepdims=keepdims), None, "reduction"))
argmin_op = register(Op("argmin", _argmax_spec,
                        lambda x, axis, keepdims: np.argmin(x, axis=axis, keepdims=keepdims), None, "reduction"))


def _arg(op, x, axis, keepdims):
    from ._util import normalize_axis
    from .elementwise import _t
    from ..errors import ShapeError

    x = _t(x)
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, op.name)
    if x.size == 0:
        raise ShapeError(f"{op.name}: empty tensor of shape {x.shape}")
    return bind(op, [x], {"axis": axis, "keepdims": bool(keepdims)})


def argmax(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Index of the largest value (flattened when ``axis`` is None); int64, not differentiable."""
    return _arg(argmax_op, x, axis, keepdims)


def argmin(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """Index of the smallest value; int64, not differentiable."""
    return _arg(argmin_op, x, axis, keepdims)


def logsumexp(x: TensorLike, axis: Axis | None=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably by shifting by the (constant) maximum."""
    from .elementwise import _t, exp, log

    x = _t(x)
    axes = normalize_axes(axis, x.ndim, "logsumexp")
    m = max(x, axes, keepdims=True).detach()
    out = log(sum(exp(x - m), axes, keepdims=True)) + m
    if keepdims:
        return out
    from . import reshape

    return reshape(out, reduced_shape(x.shape, axes, False))
