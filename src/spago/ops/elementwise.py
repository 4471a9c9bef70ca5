"""Elementwise primitives: unary math, binary arithmetic with NumPy broadcasting, comparisons, where, cast, clip."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ._types import DTypeLike, TensorLike
from ._util import broadcast_shapes, float_spec, sum_to
from .registry import Op, Spec, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


def _t(x, like=None):
    """Tensor from ``x``; a Python number takes the dtype of ``like`` (weak typing, as in PyTorch and JAX)."""
    from ..tensor import Tensor, as_tensor

    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool, np.number)) and not isinstance(x, np.ndarray):
        if dtypes.is_float(like.dtype) or not isinstance(x, float):
            return Tensor._wrap(np.asarray(x, dtype=like.dtype))
    return as_tensor(x)


# ----------------------------------------------------------------------------- unary

def unary(name: str, kernel, grad, *, kind: str = "elementwise", shape=float_spec, doc: str = "") -> Op:
    """Declare a unary elementwise primitive and return its op; attrs pass through as keyword arguments."""
    return register(Op(name, shape, kernel, grad, kind, doc=doc))


def apply_unary(op: Op, x: Any, **attrs):
    return bind(op, [_t(x)], attrs)


def _public(op: Op):
    def fn(x: TensorLike) -> Tensor:
        return bind(op, [_t(x)], {})

    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = op.doc or f"Elementwise {op.name}."
    return fn


def _signed_spec(x: Spec) -> Spec:
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric tensor, got {x.dtype.name}")
    return x


neg_op = unary("neg", np.negative, lambda g, y, x: (-g,), shape=_signed_spec)
abs_op = unary("abs", np.abs, lambda g, y, x: (g * sign(x),), shape=_signed_spec)
sign_op = unary("sign", np.sign, lambda g, y, x: (g * 0.0,), shape=_signed_spec)
exp_op = unary("exp", np.exp, lambda g, y, x: (g * y,))
log_op = unary("log", np.log, lambda g, y, x: (g / x,))
log1p_op = unary("log1p", np.log1p, lambda g, y, x: (g / (x + 1.0),))
expm1_op = unary("expm1", np.expm1, lambda g, y, x: (g * (y + 1.0),))
sqrt_op = unary("sqrt", np.sqrt, lambda g, y, x: (g * 0.5 / y,))
rsqrt_op = unary("rsqrt", lambda x: 1.0 / np.sqrt(x), lambda g, y, x: (g * -0.5 * y * y * y,))
square_op = unary("square", np.square, lambda g, y, x: (g * 2.0 * x,), shape=_signed_spec)
reciprocal_op = unary("reciprocal", np.reciprocal, lambda g, y, x: (-g * y * y,))
sin_op = unary("sin", np.sin, lambda g, y, x: (g * cos(x),))
cos_op = unary("cos", np.cos, lambda g, y, x: (-g * sin(x),))
tan_op = unary("tan", np.tan, lambda g, y, x: (g * (1.0 + y * y),))
tanh_op = unary("tanh", np.tanh, lambda g, y, x: (g * (1.0 - y * y),))


def _sigmoid_kernel(x):
    # Split by sign so neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid_op = unary("sigmoid", _sigmoid_kernel, lambda g, y, x: (g * y * (1.0 - y),))


def _erf_kernel(x):
    try:
        from scipy.special import erf as scipy_erf
    except ImportError:  # pragma: no cover - scipy is a dependency; this keeps the core importable without it
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return scipy_erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
erf_op = unary("erf", _erf_kernel, lambda g, y, x: (g * _TWO_OVER_SQRT_PI * exp(-(x * x)),))

neg, abs, sign, exp, expm1, log, log1p, sqrt, rsqrt, square, reciprocal = map(
    _public,
    (neg_op, abs_op, sign_op, exp_op, expm1_op, log_op, log1p_op, sqrt_op, rsqrt_op, square_op, reciprocal_op),
)
sin, cos, tan, tanh, sigmoid, erf = map(_public, (sin_op, cos_op, tan_op, tanh_op, sigmoid_op, erf_op))


# ----------------------------------------------------------------------------- binary

def _promote(a, b, name: str):
    """Bring two tensors to one dtype: ints and bools widen to the other's float; float32 vs float64 is an error."""
    from .. import ops

    if a.dtype == b.dtype:
        return a, b
    fa, fb = dtypes.is_float(a.dtype), dtypes.is_float(b.dtype)
    if fa and fb:
        raise DTypeError(
            f"{name}: operands have dtypes {a.dtype.name} and {b.dtype.name}; "
            f"cast one with .astype() (shapes {a.shape} and {b.shape})"
        )
    if fa:
        return a, ops.cast(b, a.dtype)
    if fb:
        return ops.cast(a, b.dtype), b
    wide = np.promote_types(a.dtype, b.dtype)
    return ops.cast(a, wide), ops.cast(b, wide)


def _binary_spec(a: Spec, b: Spec) -> Spec:
    return Spec(broadcast_shapes(a.shape, b.shape), a.dtype)


def _compare_spec(a: Spec, b: Spec) -> Spec:
    return Spec(broadcast_shapes(a.shape, b.shape), dtypes.bool_)


def _arith_spec(a: Spec, b: Spec) -> Spec:
    if a.dtype == dtypes.bool_:
        raise DTypeError("arithmetic on bool tensors; cast them first")
    return _binary_spec(a, b)


def _float_binary_spec(a: Spec, b: Spec) -> Spec:
    float_spec(a)
    return _binary_spec(a, b)


# Gradient rules skip the operands that need none (a constant, a mask): eagerly that work would be
# thrown away; composites (gelu = 0.5·x·(1 + erf(x/√2)) …) have constants everywhere.

def _add_grad(g, y, a, b):
    return (sum_to(g, a.shape) if a.requires_grad else None), (sum_to(g, b.shape) if b.requires_grad else None)


def _sub_grad(g, y, a, b):
    return (sum_to(g, a.shape) if a.requires_grad else None), (sum_to(-g, b.shape) if b.requires_grad else None)


def _mul_grad(g, y, a, b):
    return (sum_to(g * b, a.shape) if a.requires_grad else None), (sum_to(g * a, b.shape) if b.requires_grad else None)


def _div_grad(g, y, a, b):
    ga = g / b
    return (sum_to(ga, a.shape) if a.requires_grad else None), (sum_to(-ga * y, b.shape) if b.requires_grad else None)


def _pow_grad(g, y, a, b):
    ga = sum_to(g * b * a ** (b - 1.0), a.shape) if a.requires_grad else None
    gb = sum_to(g * y * log(where(a > 0, a, 1.0)), b.shape) if b.requires_grad else None
    return ga, gb


def _select_grad(mask_fn):
    """Gradient of maximum/minimum: to the larger (smaller) operand; ties split evenly."""

    def grad(g, y, a, b):
        from .. import ops

        pick_a = ops.cast(mask_fn(a, b), g.dtype)
        tie = ops.cast(a == b, g.dtype) * 0.5
        wa = pick_a + tie
        return (sum_to(g * wa, a.shape) if a.requires_grad else None), \
            (sum_to(g * (1.0 - wa), b.shape) if b.requires_grad else None)

    return grad


add_op = register(Op("add", _arith_spec, np.add, _add_grad, "elementwise"))
sub_op = register(Op("sub", _arith_spec, np.subtract, _sub_grad, "elementwise"))
mul_op = register(Op("mul", _arith_spec, np.multiply, _mul_grad, "elementwise"))
div_op = register(Op("div", _float_binary_spec, np.divide, _div_grad, "elementwise"))
pow_op = register(Op("pow", _float_binary_spec, np.power, _pow_grad, "elementwise"))
maximum_op = register(Op("maximum", _arith_spec, np.maximum, _select_grad(lambda a, b: a > b), "elementwise"))
minimum_op = register(Op("minimum", _arith_spec, np.minimum, _select_grad(lambda a, b: a < b), "elementwise"))
_COMPARE = {name: register(Op(name, _compare_spec, fn, None, "elementwise"))
            for name, fn in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                             ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)]}


def _binary(op: Op):
    def fn(a: TensorLike, b: TensorLike) -> Tensor:
        from ..tensor import Tensor

        if not isinstance(a, Tensor):
            b = _t(b)
            a = _t(a, like=b)
        else:
            b = _t(b, like=a)
        a, b = _promote(a, b, op.name)
        return bind(op, [a, b], {})

    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"Elementwise {op.name} with NumPy broadcasting."
    return fn


add, sub, mul, div, pow, maximum, minimum = map(_binary, (add_op, sub_op, mul_op, div_op, pow_op, maximum_op, minimum_op))
eq, ne, lt, le, gt, ge = (_binary(_COMPARE[n]) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
subtract, multiply, divide, power = sub, mul, div, pow


# ----------------------------------------------------------------------------- where, cast, clip

def _where_spec(c: Spec, a: Spec, b: Spec) -> Spec:
    if c.dtype != dtypes.bool_:
        raise DTypeError(f"condition must be bool, got {c.dtype.name}")
    return Spec(broadcast_shapes(c.shape, a.shape, b.shape), a.dtype)


def _where_grad(g, y, c, a, b):
    return (None, sum_to(where(c, g, 0.0), a.shape) if a.requires_grad else None,
            sum_to(where(c, 0.0, g), b.shape) if b.requires_grad else None)


where_op = register(Op("where", _where_spec, np.where, _where_grad, "elementwise"))


def where(condition: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; no gradient flows through the condition."""
    from ..tensor import Tensor

    c = _t(condition)
    if c.dtype != dtypes.bool_:
        c = c != 0
    if not isinstance(a, Tensor) and isinstance(b, Tensor):
        a = _t(a, like=b)
    else:
        a = _t(a)
        b = _t(b, like=a)
    a, b = _promote(a, b, "where")
    return bind(where_op, [c, a, b], {})


def _cast_spec(x: Spec, dtype) -> Spec:
    return Spec(x.shape, dtype)


def _cast_grad(g, y, x, dtype):
    return (cast(g, x.dtype),) if dtypes.is_float(x.dtype) else (None,)


cast_op = register(Op("cast", _cast_spec, lambda x, dtype: x.astype(dtype), _cast_grad, "elementwise"))


def cast(x: TensorLike, dtype: DTypeLike) -> Tensor:
    """Convert to ``dtype``; a cast to the same dtype returns ``x`` itself."""
    x = _t(x)
    dtype = dtypes.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    return bind(cast_op, [x], {"dtype": dtype})


def clone(x: TensorLike) -> Tensor:
    """A copy of ``x`` in new memory that stays on the tape (gradients flow through it), as PyTorch's."""
    x = _t(x)
    return bind(cast_op, [x], {"dtype": x.dtype})


def _clip_spec(x: Spec, lo, hi) -> Spec:
    if lo is not None and hi is not None and lo > hi:
        raise DTypeError(f"clip bounds out of order: min {lo} > max {hi}")
    return _signed_spec(x)


def _clip_grad(g, y, x, lo, hi):
    return (g * cast(_inside(x, lo, hi), g.dtype),)


def _inside(x, lo, hi):
    keep = None
    if lo is not None:
        keep = x >= lo
    if hi is not None:
        upper = x <= hi
        keep = upper if keep is None else where(keep, upper, keep)
    return keep


clip_op = register(Op("clip", _clip_spec, lambda x, lo, hi: np.clip(x, lo, hi), _clip_grad, "elementwise"))


def clip(x: TensorLike, min: float | None=None, max: float | None=None) -> Tensor:
    """Limit values to [min, max] (either may be None); the gradient is zero outside."""
    if min is None and max is None:
        return _t(x)
    return bind(clip_op, [_t(x)], {"lo": None if min is None else float(min), "hi": None if max is None else float(max)})
