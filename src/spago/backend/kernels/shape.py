"""Shape kernels: transpose, concat and pad, as strided copies (output written contiguously)."""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ..loops import contiguous_strides, for_range, strided_nest
from ..types import I64, const, element_ptr, load, store
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
    axis = node.attrs["axis"]
    out_strides = contiguous_strides(node.shape)
    start = 0
    for ptr, inp in zip(args[1:], node.inputs):
        strided_copy(b, inp.shape, args[0], out_strides, start * out_strides[axis], ptr,
                     contiguous_strides(inp.shape), 0, node.dtype)
        start += inp.shape[axis]


@family("pad")
def emit_pad(b: ir.IRBuilder, args: list, node: Node) -> None:
    out_strides = contiguous_strides(node.shape)
    fill(b, args[0], node.spec.size, node.attrs["value"], node.dtype)
    offset = sum(before * s for (before, _), s in zip(node.attrs["pad_width"], out_strides))
    x = node.inputs[0]
    strided_copy(b, x.shape, args[0], out_strides, offset, args[1], contiguous_strides(x.shape), 0, node.dtype)
