"""Scalar lowerings of the elementwise primitives: how one element of each op is computed in LLVM IR.

The elementwise kernel family (and the bodies of fused kernels) call ``emit`` once per node per element;
the loop around it is what vectorises. Kernels look lowerings up here by op name.

A lowering is ``fn(b, args, attrs, in_dtypes, out_dtype) -> ir.Value`` where ``args`` are compute-type
values (floats as float/double, ints as i32/i64, bool as i1).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from llvmlite import ir

from ..errors import SpagoError
from ..ops.registry import OPS
from .types import compute_type

LOWERINGS: dict[str, Callable] = {}


def lowering(name: str):
    def deco(fn):
        LOWERINGS[name] = fn
        return fn

    return deco


def emit(b: ir.IRBuilder, name: str, args: list, attrs: dict, in_dtypes: list, out_dtype) -> ir.Value:
    fn = LOWERINGS.get(name)
    if fn is None:
        raise SpagoError(f"the native backend has no scalar lowering for op {name!r}")
    return fn(b, args, attrs, in_dtypes, np.dtype(out_dtype))


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _fconst(dtype, v: float) -> ir.Constant:
    return ir.Constant(compute_type(dtype), float(v))


# ----------------------------------------------------------------------------- arithmetic

def _arith(float_op: str, int_op: str):
    def fn(b, args, attrs, in_dtypes, out):
        x, y = args
        if _is_float(out):
            return getattr(b, float_op)(x, y)
        return getattr(b, int_op)(x, y)

    return fn


lowering("add")(_arith("fadd", "add"))
lowering("sub")(_arith("fsub", "sub"))
lowering("mul")(_arith("fmul", "mul"))


@lowering("div")
def _div(b, args, attrs, in_dtypes, out):
    return b.fdiv(*args)


@lowering("neg")
def _neg(b, args, attrs, in_dtypes, out):
    return b.fneg(args[0]) if _is_float(out) else b.neg(args[0])


@lowering("broadcast_to")
def _broadcast_to(b, args, attrs, in_dtypes, out):
    return args[0]  # the broadcast itself is done by the loop's zero strides


def _math(name: str):
    """A math function of one float: the vectorisable float32 version from mathlib, libm for float64."""
    def fn(b, args, attrs, in_dtypes, out):
        from . import mathlib

        return b.call(mathlib.get(b.module, name, out), args)

    return fn


for _name in ("exp", "log", "log1p", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "expm1"):
    if _name in OPS:
        lowering(_name)(_math(_name))


def _intrinsic(b, name: str, args: list) -> ir.Value:
    from .mathlib import intrinsic

    return b.call(intrinsic(b.module, name, args[0].type, len(args)), args)


def _f(b, dtype, v):
    return _fconst(dtype, v)


def _select_pos(b, x, then, otherwise):
    """x > 0 ? then : otherwise, with NaN taking the ``otherwise`` branch's arithmetic (it propagates)."""
    return b.select(b.fcmp_ordered(">", x, ir.Constant(x.type, 0.0)), then, otherwise)


@lowering("abs")
def _abs(b, args, attrs, in_dtypes, out):
    if _is_float(out):
        return _intrinsic(b, "llvm.fabs", args)
    x = args[0]
    return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)


@lowering("sign")
def _sign(b, args, attrs, in_dtypes, out):
    x = args[0]
    if _is_float(out):
        zero, one = _f(b, out, 0.0), _f(b, out, 1.0)
        s = b.select(b.fcmp_ordered(">", x, zero), one, b.select(b.fcmp_ordered("<", x, zero), _f(b, out, -1.0), zero))
        return b.select(b.fcmp_unordered("uno", x, x), x, s)
    zero = ir.Constant(x.type, 0)
    pos = b.zext(b.icmp_signed(">", x, zero), x.type)
    neg = b.zext(b.icmp_signed("<", x, zero), x.type)
    return b.sub(pos, neg)


@lowering("sqrt")
def _sqrt(b, args, attrs, in_dtypes, out):
    return _intrinsic(b, "llvm.sqrt", args)


@lowering("rsqrt")
def _rsqrt(b, args, attrs, in_dtypes, out):
    return b.fdiv(_f(b, out, 1.0), _intrinsic(b, "llvm.sqrt", args))


@lowering("square")
def _square(b, args, attrs, in_dtypes, out):
    return b.fmul(args[0], args[0]) if _is_float(out) else b.mul(args[0], args[0])


@lowering("reciprocal")
def _reciprocal(b, args, attrs, in_dtypes, out):
    return b.fdiv(_f(b, out, 1.0), args[0])


@lowering("pow")
def _pow(b, args, attrs, in_dtypes, out):
    return _intrinsic(b, "llvm.pow", args)


def _extreme(kind: str):
    def fn(b, args, attrs, in_dtypes, out):
        x, y = args
        if _is_float(out):  # NumPy's maximum/minimum propagate NaN
            return _intrinsic2(b, "llvm.maximum" if kind == "max" else "llvm.minimum", x, y)
        return b.select(b.icmp_signed(">" if kind == "max" else "<", x, y), x, y)

    return fn


def _intrinsic2(b, name, x, y):
    return _intrinsic(b, name, [x, y])


lowering("maximum")(_extreme("max"))
lowering("minimum")(_extreme("min"))


def _compare(op: str):
    def fn(b, args, attrs, in_dtypes, out):
        x, y = args
        dtype = np.dtype(in_dtypes[0])
        if dtype.kind == "f":
            if op == "!=":
                return b.fcmp_unordered("!=", x, y)  # NaN != NaN is true, as in NumPy
            return b.fcmp_ordered(op, x, y)
        if dtype == np.bool_:
            return b.icmp_unsigned(op, x, y)
        return b.icmp_signed(op, x, y)

    return fn


for _name, _op in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
    lowering(_name)(_compare(_op))


@lowering("where")
def _where(b, args, attrs, in_dtypes, out):
    c, x, y = args
    return b.select(c, x, y)


@lowering("cast")
def _cast(b, args, attrs, in_dtypes, out):
    x = args[0]
    src, dst = np.dtype(in_dtypes[0]), np.dtype(out)
    t = compute_type(dst)
    if src == dst:
        return x
    if dst == np.bool_:
        if src.kind == "f":
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
        return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
    if src == np.bool_:
        return b.uitofp(x, t) if dst.kind == "f" else b.zext(x, t)
    if src.kind == "f" and dst.kind == "f":
        return b.fpext(x, t) if dst.itemsize > src.itemsize else b.fptrunc(x, t)
    if src.kind == "f":
        return b.fptosi(x, t)
    if dst.kind == "f":
        return b.sitofp(x, t)
    return b.sext(x, t) if dst.itemsize > src.itemsize else b.trunc(x, t)


@lowering("clip")
def _clip(b, args, attrs, in_dtypes, out):
    x = args[0]
    lo, hi = attrs["lo"], attrs["hi"]
    if _is_float(out):
        if lo is not None:
            x = _intrinsic2(b, "llvm.maximum", x, _f(b, out, lo))
        if hi is not None:
            x = _intrinsic2(b, "llvm.minimum", x, _f(b, out, hi))
        return x
    # integer clip: NumPy casts the float bounds to the integer type
    if lo is not None:
        c = ir.Constant(x.type, int(np.ceil(lo)))
        x = b.select(b.icmp_signed("<", x, c), c, x)
    if hi is not None:
        c = ir.Constant(x.type, int(np.floor(hi)))
        x = b.select(b.icmp_signed(">", x, c), c, x)
    return x


# ----------------------------------------------------------------------------- activations

@lowering("relu")
def _relu(b, args, attrs, in_dtypes, out):
    return _intrinsic2(b, "llvm.maximum", args[0], _f(b, out, 0.0))


@lowering("leaky_relu")
def _leaky_relu(b, args, attrs, in_dtypes, out):
    x = args[0]
    return _select_pos(b, x, x, b.fmul(x, _f(b, out, attrs["alpha"])))


@lowering("softshrink")
def _softshrink(b, args, attrs, in_dtypes, out):
    x, lam = args[0], _f(b, out, attrs["lambd"])
    above = b.fcmp_ordered(">", x, lam)
    below = b.fcmp_ordered("<", x, b.fneg(lam))
    inner = b.select(below, b.fadd(x, lam), _f(b, out, 0.0))
    return b.select(above, b.fsub(x, lam), b.select(b.fcmp_unordered("uno", x, x), x, inner))
