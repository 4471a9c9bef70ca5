"""The rowwise family: softmax, log-softmax, layer norm, RMS norm — reductions over the last axis
together with their elementwise producers and consumers — in one pass over the rows.

For each row the body's nodes run in order: a reduction is an inner loop with a register accumulator;
a per-row value (shape ``rows + (1,)``) is one scalar; a full-row value is computed inline where it is
used, or — when several loops need it — once into a row-sized scratch buffer that stays in L1.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from .. import scalar
from ...lower.views import broadcast_strides
from ..loops import accumulate, for_range, strided_nest
from ..types import I64, compute_type, element_ptr, load, store
from . import family
from .reduce import combine, identity

@family("rowwise")
def emit_rowwise(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    body = node.attrs["body"]
    out = body.outputs[0]
    reductions = [n for n in body.nodes if n.op.reduction]
    full_shape = reductions[0].inputs[0].shape
    rows, width = full_shape[:-1], full_shape[-1]
    out_ptr, in_ptrs = args[0], list(args[1:])
    index_of = {inp: k for k, inp in enumerate(body.inputs)}

    in_strides = [broadcast_strides(i.shape, full_shape) for i in body.inputs]
    out_strides = broadcast_strides(out.shape, full_shape)
    uses: dict = {}
    for n in body.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    uses[out] = uses.get(out, 0) + 1

    def is_full(n: Node) -> bool:
        return n.kind == "op" and not n.op.reduction and n.shape == full_shape and width != 1

    scratch = {}
    with b.goto_entry_block():
        for n in body.nodes:
            if is_full(n) and uses.get(n, 0) > 1 and n is not out:
                scratch[n] = b.alloca(compute_type(n.dtype), size=ir.Constant(I64, width), name=f"row_{n.name}")

    with strided_nest(b, rows, [out_strides[:-1]] + [s[:-1] for s in in_strides], "row", outer=outer) as offsets:
        out_row, in_rows = offsets[0], offsets[1:]
        scalars: dict = {}

        def at(n: Node, j: ir.Value) -> ir.Value:
            if n in scalars:
                return scalars[n]
            if n in index_of:
                k = index_of[n]
                step = in_strides[k][-1]
                off = in_rows[k] if step == 0 else b.add(in_rows[k], b.mul(j, ir.Constant(I64, step)))
                return load(b, element_ptr(b, in_ptrs[k], off, n.dtype), n.dtype)
            if n in scratch and scratch[n] is not None and n in computed:
                return b.load(b.gep(scratch[n], [j], inbounds=True, source_etype=compute_type(n.dtype)),
                              typ=compute_type(n.dtype))
            return scalar.emit(b, n.op.name, [at(i, j) for i in n.inputs], n.attrs,
                               [i.dtype for i in n.inputs], n.dtype)

        computed: set = set()
        zero = ir.Constant(I64, 0)
        for n in body.nodes:
            if n.op.reduction:
                kind = n.op.name
                with accumulate(b, width, identity(kind, n.dtype), "j") as loop:
                    loop.carry(combine(b, kind, loop.acc, at(n.inputs[0], loop.index), n.dtype))
                scalars[n] = loop.acc
            elif n in scratch:
                with for_range(b, width, "j") as j:
                    value = at(n, j)
                    b.store(value, b.gep(scratch[n], [j], inbounds=True, source_etype=compute_type(n.dtype)))
                computed.add(n)
            elif not is_full(n):
                scalars[n] = at(n, zero)  # a per-row value: its inputs are per-row too
        if is_full(out):
            with for_range(b, width, "j") as j:
                store(b, at(out, j), element_ptr(b, out_ptr, b.add(out_row, j), out.dtype), out.dtype)
        else:
            store(b, at(out, zero), element_ptr(b, out_ptr, out_row, out.dtype), out.dtype)
