"""Normalising maps over an axis: softmax and log_softmax (composites), sparsemax (a primitive)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._types import TensorLike
from ._util import float_spec, normalize_axis
from .elementwise import _t, cast, exp
from .reductions import logsumexp, max, sum
from .registry import Op, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


def softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) over ``axis``, shifted by the maximum for stability."""
    x = _t(x)
    axis = normalize_axis(axis, x.ndim, "softmax")
    e = exp(x - max(x, axis, keepdims=True).detach())
    return e / sum(e, axis, keepdims=True)


def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """x − logsumexp(x) over ``axis``."""
    x = _t(x)
    axis = normalize_axis(axis, x.ndim, "log_softmax")
    return x - logsumexp(x, axis, keepdims=True)


def _sparsemax_kernel(x, axis):
    """Euclidean projection onto the simplex (Martins & Astudillo, 2016)."""
    z = np.moveaxis(x, axis, -1)
    zs = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1, dtype=x.dtype)
    cum = np.cumsum(zs, axis=-1)
    support = 1 + k * zs > cum
    k_z = support.sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(cum, k_z - 1, axis=-1) - 1) / k_z.astype(x.dtype)
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)


def _sparsemax_grad(g, y, x, axis):
    support = cast(y > 0, g.dtype)
    gs = g * support
    return (gs - support * sum(gs, axis, keepdims=True) / sum(support, axis, keepdims=True),)


sparsemax_op = register(Op("sparsemax", lambda x, axis: float_spec(x), _sparsemax_kernel, _sparsemax_grad, "reduction",
                           doc="Sparse alternative to softmax: a projection onto the probability simplex."))


def sparsemax(x: TensorLike, axis: int = -1) -> Tensor:
    """Projection of ``x`` onto the probability simplex along ``axis`` (Martins & Astudillo, 2016).

    A primitive rather than a composite because it needs a sort; its gradient is written with ops.
    """
    x = _t(x)
    return bind(sparsemax_op, [x], {"axis": normalize_axis(axis, x.ndim, "sparsemax")})


def layer_norm(x: TensorLike, weight: TensorLike | None=None, bias: TensorLike | None=None, eps: float = 1e-5) -> Tensor:
    """(x − mean) / √(var + eps) · weight + bias over the last axis (Ba, Kiros & Hinton, 2016).

    Written as the exact pattern the row-wise fusion pass recognises, so compiled it is one kernel."""
    x = _t(x)
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    from .elementwise import rsqrt

    y = centered * rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(x: TensorLike, weight: TensorLike | None=None, eps: float = 1e-6) -> Tensor:
    """x / √(mean(x²) + eps) · weight over the last axis (Zhang & Sennrich, 2019)."""
    x = _t(x)
    from .elementwise import rsqrt

    y = x * rsqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return y * weight if weight is not None else y
