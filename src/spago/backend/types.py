"""LLVM types for spago dtypes: what a value is in memory and while computing."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ..errors import SpagoError

F32, F64 = ir.FloatType(), ir.DoubleType()
I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

_STORAGE = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I8}
_COMPUTE = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I1}


def storage_type(dtype) -> ir.Type:
    """How an element is laid out in memory (bool is a byte, as in NumPy)."""
    try:
        return _STORAGE[np.dtype(dtype).name]
    except KeyError:
        raise SpagoError(f"the native backend has no type for dtype {dtype}") from None


def compute_type(dtype) -> ir.Type:
    """How an element is held in registers (bool is an i1)."""
    return _COMPUTE[np.dtype(dtype).name]


def load(b: ir.IRBuilder, ptr: ir.Value, dtype) -> ir.Value:
    v = b.load(ptr, typ=storage_type(dtype))
    return b.trunc(v, I1) if np.dtype(dtype) == np.bool_ else v


def store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, dtype) -> None:
    if np.dtype(dtype) == np.bool_:
        value = b.zext(value, I8)
    b.store(value, ptr)


def element_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype) -> ir.Value:
    return b.gep(base, [index], inbounds=True, source_etype=storage_type(dtype))


def pointer_table(b: ir.IRBuilder, pointers: list) -> ir.Value:
    """A stack array holding ``pointers`` (for a worker function, or a run-time loop over buffers)."""
    table = b.alloca(PTR, size=ir.Constant(I64, len(pointers)))
    for k, p in enumerate(pointers):
        b.store(p, b.gep(table, [ir.Constant(I64, k)], inbounds=True, source_etype=PTR))
    return table


def load_pointer(b: ir.IRBuilder, table: ir.Value, k) -> ir.Value:
    """Entry ``k`` (an int or an i64 value) of an array of pointers."""
    index = k if isinstance(k, ir.Value) else ir.Constant(I64, k)
    return b.load(b.gep(table, [index], inbounds=True, source_etype=PTR), typ=PTR)


def const(dtype, value) -> ir.Constant:
    t = compute_type(dtype)
    if isinstance(t, (ir.FloatType, ir.DoubleType)):
        return ir.Constant(t, float(value))
    return ir.Constant(t, int(value))
