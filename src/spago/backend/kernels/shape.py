"""Shape kernels: transpose, concat and pad, as strided copies (output written contiguously)."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...lower.views import contiguous as contiguous_strides
from ..loops import for_range, strided_nest
from ..types import I64, PTR, const, element_ptr, load, load_pointer, pointer_table, store
from . import family


def strided_copy(b: ir.IRBuilder, shape, dst, dst_strides, dst_offset: int, src, src_strides, src_offset: int,
                 dtype) -> None:
    """dst[dst_offset + i·dst_strides] = src[src_offset + i·src_strides] for every index i of ``shape``."""
    with strided_nest(b, shape, [dst_strides, src_strides], "copy") as (d, s):
        d = b.add(d, ir.Constant(I64, dst_offset)) if dst_offset else d
        s = b.add(s, ir.Constant(I64, src_offset)) if src_offset else s
        store(b, load(b, element_ptr(b, src, s, dtype), dtype), element_ptr(b, dst, d, dtype), dtype)


def fill(b: ir.IRBuilder, ptr, count: int, value, dtype) -> None:
    with for_range(b, count, "fill") as i:
        store(b, const(dtype, value), element_ptr(b, ptr, i, dtype), dtype)


@family("transpose")
def emit_transpose(b: ir.IRBuilder, args: list, node: Node) -> None:
    axes = node.attrs["axes"]
    src = contiguous_strides(node.inputs[0].shape)
    strided_copy(b, node.shape, args[0], contiguous_strides(node.shape), 0, args[1],
                 tuple(src[a] for a in axes), 0, node.dtype)


@family("reshape")
def emit_reshape(b: ir.IRBuilder, args: list, node: Node) -> None:
    """Normally a view; as a kernel it is a flat copy."""
    n = node.spec.size
    strided_copy(b, (n,), args[0], (1,), 0, args[1], (1,), 0, node.dtype)


@family("concat")
def emit_concat(b: ir.IRBuilder, args: list, node: Node) -> None:
    """Each input is ``outer`` contiguous runs (the axes before ``axis`` index them), copied with memcpy.
    Inputs of one shape (an unrolled loop's steps) share one run-time loop over a table of their
    pointers, so the code stays small however many there are: 30 element loops, each vectorised and
    unrolled, once made one concat 200,000 instructions and most of a training step's compile time."""
    axis = node.attrs["axis"]
    outer = int(np.prod(node.shape[:axis], dtype=np.int64))
    out_row = int(np.prod(node.shape[axis:], dtype=np.int64))  # elements per outer index in the output
    itemsize = np.dtype(node.dtype).itemsize
    out = args[0]
    shapes = {inp.shape for inp in node.inputs}
    if len(shapes) == 1 and len(node.inputs) > 2:
        run = node.inputs[0].spec.size // max(outer, 1)
        table = pointer_table(b, args[1:])
        with for_range(b, len(node.inputs), "piece") as k:
            src = load_pointer(b, table, k)
            _copy_runs(b, out, b.mul(k, ir.Constant(I64, run)), out_row, src, run, outer, itemsize, node.dtype)
        return
    start = 0
    for ptr, inp in zip(args[1:], node.inputs):
        run = inp.spec.size // max(outer, 1)
        _copy_runs(b, out, ir.Constant(I64, start), out_row, ptr, run, outer, itemsize, node.dtype)
        start += run


def _copy_runs(b: ir.IRBuilder, dst, dst_start: ir.Value, dst_row: int, src, run: int, outer: int, itemsize: int,
               dtype) -> None:
    """dst[o·dst_row + dst_start + j] = src[o·run + j] for o < outer, j < run (one memcpy per o)."""
    if not run:
        return
    memcpy = b.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    size = ir.Constant(I64, run * itemsize)
    with for_range(b, outer, "run") as o:
        d = element_ptr(b, dst, b.add(b.mul(o, ir.Constant(I64, dst_row)), dst_start), dtype)
        s = element_ptr(b, src, b.mul(o, ir.Constant(I64, run)), dtype)
        b.call(memcpy, [d, s, size, ir.Constant(ir.IntType(1), 0)])


@family("pad")
def emit_pad(b: ir.IRBuilder, args: list, node: Node) -> None:
    out_strides = contiguous_strides(node.shape)
    fill(b, args[0], node.spec.size, node.attrs["value"], node.dtype)
    offset = sum(before * s for (before, _), s in zip(node.attrs["pad_width"], out_strides))
    x = node.inputs[0]
    strided_copy(b, x.shape, args[0], out_strides, offset, args[1], contiguous_strides(x.shape), 0, node.dtype)
