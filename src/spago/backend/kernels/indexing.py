"""Indexing kernels: getitem and its gradient unindex, take (embedding lookup) and its gradient
scatter_add, and one_hot.

Basic indexing (ints, slices with any step, None, ellipsis) is a strided copy whose strides and start
offset NumPy computes for us on a zero-size probe. Integer-array indexing gathers through a table of
source offsets computed at compile time from per-axis coordinate views, so its cost is the output's size.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...ops.indexing import numpy_index
from ...lower.views import contiguous as contiguous_strides
from ..loops import for_range
from ..types import I64, const, element_ptr, load, store
from . import family
from .shape import fill, strided_copy


def basic_view(shape: tuple, index: tuple) -> tuple[tuple, tuple, int]:
    """(shape, element strides, start offset) of ``x[index]`` for basic indices, without any data."""
    strides = contiguous_strides(shape)
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=shape, strides=strides)
    view = probe[numpy_index(index)]
    offset = view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return view.shape, view.strides, offset


def gather_offsets(shape: tuple, index: tuple) -> np.ndarray:
    """Flat source offset of every element of ``x[index]`` (any index), computed per axis."""
    idx = numpy_index(index)
    strides = contiguous_strides(shape)
    total = None
    for axis, n in enumerate(shape):
        coords = np.lib.stride_tricks.as_strided(np.arange(n, dtype=np.int64), shape=shape,
                                                 strides=tuple(8 if a == axis else 0 for a in range(len(shape))))
        part = np.asarray(coords[idx], dtype=np.int64) * strides[axis]
        total = part if total is None else total + part
    if total is None:  # a 0-d input
        return np.zeros(np.empty(())[idx].shape, dtype=np.int64).reshape(-1)
    return np.ascontiguousarray(total).reshape(-1)


def _is_basic(index: tuple) -> bool:
    return not any(e[0] == "array" for e in index)


def _offset_table(b: ir.IRBuilder, offsets: np.ndarray, name: str) -> ir.GlobalVariable:
    module = b.module
    typ = ir.ArrayType(I64, len(offsets))
    table = ir.GlobalVariable(module, typ, module.get_unique_name(name))
    table.global_constant = True
    table.linkage = "internal"
    table.initializer = ir.Constant(typ, [int(v) for v in offsets])
    return table


def _wrapped_offset(b: ir.IRBuilder, table, i) -> ir.Value:
    ptr = b.gep(table, [ir.Constant(I64, 0), i], inbounds=True, source_etype=table.value_type)
    return b.load(ptr, typ=I64)


@family("getitem")
def emit_getitem(b: ir.IRBuilder, args: list, node: Node) -> None:
    x, index = node.inputs[0], node.attrs["index"]
    if _is_basic(index):
        shape, strides, offset = basic_view(x.shape, index)
        strided_copy(b, shape, args[0], contiguous_strides(shape), 0, args[1], strides, offset, node.dtype)
        return
    offsets = gather_offsets(x.shape, index)
    if not len(offsets):
        return
    table = _offset_table(b, offsets, "gather")
    with for_range(b, len(offsets), "g") as i:
        src = element_ptr(b, args[1], _wrapped_offset(b, table, i), node.dtype)
        store(b, load(b, src, node.dtype), element_ptr(b, args[0], i, node.dtype), node.dtype)


@family("unindex")
def emit_unindex(b: ir.IRBuilder, args: list, node: Node) -> None:
    """Zeros of the indexed tensor's shape with ``g`` added at the indexed places (repeats accumulate)."""
    shape, index = node.attrs["shape"], node.attrs["index"]
    g = node.inputs[0]
    fill(b, args[0], node.spec.size, 0, node.dtype)
    if _is_basic(index):
        view_shape, strides, offset = basic_view(shape, index)
        strided_copy(b, view_shape, args[0], strides, offset, args[1], contiguous_strides(g.shape), 0, node.dtype)
        return
    offsets = gather_offsets(shape, index)
    if not len(offsets):
        return
    table = _offset_table(b, offsets, "scatter")
    with for_range(b, len(offsets), "s") as i:
        dst = element_ptr(b, args[0], _wrapped_offset(b, table, i), node.dtype)
        value = load(b, element_ptr(b, args[1], i, node.dtype), node.dtype)
        store(b, b.fadd(load(b, dst, node.dtype), value), dst, node.dtype)


def _row_index(b: ir.IRBuilder, ptr, j, dtype, n: int, status=None, negative: bool = True) -> ir.Value:
    """Index ``j`` of an index tensor as an i64 row in [0, n): negatives wrap like NumPy (when ``negative``,
    else they are out of range). One still out of
    range is reported in ``status`` (flag 1, then the value) for the runtime to raise, and clamped meanwhile,
    so bad data can never address memory outside the tensor."""
    k = load(b, element_ptr(b, ptr, j, dtype), dtype)
    if k.type != I64:
        k = b.sext(k, I64)
    raw = k
    if negative:
        k = b.select(b.icmp_signed("<", k, ir.Constant(I64, 0)), b.add(k, ir.Constant(I64, n)), k)
    if status is not None:
        bad = b.or_(b.icmp_signed("<", k, ir.Constant(I64, 0)), b.icmp_signed(">=", k, ir.Constant(I64, n)))
        with b.if_then(bad, likely=False):
            store(b, ir.Constant(I64, 1), element_ptr(b, status, ir.Constant(I64, 0), np.dtype(np.int64)),
                  np.dtype(np.int64))
            store(b, raw, element_ptr(b, status, ir.Constant(I64, 1), np.dtype(np.int64)), np.dtype(np.int64))
    k = b.select(b.icmp_signed("<", k, ir.Constant(I64, 0)), ir.Constant(I64, 0), k)
    return b.select(b.icmp_signed(">=", k, ir.Constant(I64, n)), ir.Constant(I64, max(n - 1, 0)), k)


def axis_split(shape: tuple, axis: int) -> tuple[int, int, int]:
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def _row_copies(b: ir.IRBuilder, node: Node, shape: tuple, axis: int, idx: Node, rows: int, scatter: bool,
                dst_ptr, src_ptr, idx_ptr, status=None) -> None:
    """For every outer position and every index j: move one row (the axes after ``axis``) between the
    j-th slot and the row the index names — a gather (take) or, with ``scatter``, an accumulation."""
    outer, _, inner = axis_split(shape, axis)
    count = idx.spec.size
    if not rows or not count:
        return
    with for_range(b, outer, "p") as p:
        with for_range(b, count, "j") as j:
            k = _row_index(b, idx_ptr, j, idx.dtype, rows, status, node.attrs.get("negative", True))
            named = b.mul(b.add(b.mul(p, ir.Constant(I64, rows)), k), ir.Constant(I64, inner))
            slot = b.mul(b.add(b.mul(p, ir.Constant(I64, count)), j), ir.Constant(I64, inner))
            dst, src = (named, slot) if scatter else (slot, named)
            with for_range(b, inner, "t") as t:
                d = element_ptr(b, dst_ptr, b.add(dst, t), node.dtype)
                v = load(b, element_ptr(b, src_ptr, b.add(src, t), node.dtype), node.dtype)
                store(b, b.fadd(load(b, d, node.dtype), v) if scatter else v, d, node.dtype)


@family("take")
def emit_take(b: ir.IRBuilder, args: list, node: Node) -> None:
    x, idx = node.inputs
    axis = node.attrs["axis"]
    _row_copies(b, node, x.shape, axis, idx, x.shape[axis], False, args[0], args[1], args[2],
                args[3] if len(args) > 3 else None)


@family("scatter_add")
def emit_scatter_add(b: ir.IRBuilder, args: list, node: Node) -> None:
    idx = node.inputs[1]
    fill(b, args[0], node.spec.size, 0, node.dtype)
    _row_copies(b, node, node.shape, node.attrs["axis"], idx, node.attrs["size"], True, args[0], args[1], args[2],
                args[3] if len(args) > 3 else None)


@family("one_hot")
def emit_one_hot(b: ir.IRBuilder, args: list, node: Node) -> None:
    idx = node.inputs[0]
    depth = node.attrs["depth"]
    fill(b, args[0], node.spec.size, 0, node.dtype)
    with for_range(b, idx.spec.size, "i") as i:
        k = load(b, element_ptr(b, args[1], i, idx.dtype), idx.dtype)
        if k.type != I64:
            k = b.sext(k, I64)
        inside = b.and_(b.icmp_signed(">=", k, ir.Constant(I64, 0)), b.icmp_signed("<", k, ir.Constant(I64, depth)))
        with b.if_then(inside):
            pos = b.add(b.mul(i, ir.Constant(I64, depth)), k)
            store(b, const(node.dtype, 1), element_ptr(b, args[0], pos, node.dtype), node.dtype)

