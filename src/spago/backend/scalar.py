"""Scalar lowerings of the elementwise primitives: how one element of each op is computed in LLVM IR.

The elementwise kernel family (and the bodies of fused kernels) call ``emit`` once per node per element;
the loop around it is what vectorises. Each lowering is also installed as its op's ``lowering`` slot.

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
        OPS[name].lowering = fn
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
