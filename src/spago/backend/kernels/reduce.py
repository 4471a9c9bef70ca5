"""The reduce family: sum / max / min over any axes, with the reduction's elementwise producers
evaluated on the fly (a fused ``reduce`` node), so the reduced expression is never materialised.

When the innermost axis is reduced, the loop keeps the accumulator in a register (a horizontal
reduction the vectoriser handles with reassociation); otherwise it updates a row of outputs at a time.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ...ir.graph import Node
from ...ops.registry import ops_with
from ...lower.views import broadcast_strides, collapse
from ..loops import accumulate, for_range, strided_nest
from ..types import F32, I64, compute_type, element_ptr, load, store
from . import family
from .elementwise import eval_graph

def identity(kind: str, dtype) -> ir.Constant:
    dtype = np.dtype(dtype)
    t = compute_type(dtype)
    if kind == "sum":
        return ir.Constant(t, 0.0 if dtype.kind == "f" else 0)
    if dtype.kind == "f":
        return ir.Constant(t, float("-inf") if kind == "max" else float("inf"))
    info = np.iinfo(dtype)
    return ir.Constant(t, int(info.min if kind == "max" else info.max))


def combine(b: ir.IRBuilder, kind: str, acc: ir.Value, value: ir.Value, dtype) -> ir.Value:
    """acc ⊕ value; float max/min propagate NaN as NumPy does."""
    if np.dtype(dtype).kind != "f":
        if kind == "sum":
            return b.add(acc, value)
        return b.select(b.icmp_signed(">" if kind == "max" else "<", value, acc), value, acc)
    if kind == "sum":
        out = b.fadd(acc, value)
        out.flags.extend(["reassoc", "contract"])
        return out
    # llvm.maximum/minimum propagate NaN (as NumPy does) and vectorise as reductions
    name = f"llvm.{'maximum' if kind == 'max' else 'minimum'}.{'f32' if acc.type == F32 else 'f64'}"
    fn = b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(acc.type, [acc.type] * 2), name)
    return b.call(fn, [acc, value])


def reduction_parts(node: Node) -> tuple:
    """(reduction kind, axes, input spec, producer body or None) of a reduce node or fused reduce node."""
    if node.op.name == "fused":
        body = node.attrs["body"]
        red = body.outputs[0]
        return red.op.name, red.attrs["axes"], red.inputs[0].spec, body
    return node.op.name, node.attrs["axes"], node.inputs[0].spec, None


@family(*ops_with("reduction"), "reduce")
def emit_reduce(b: ir.IRBuilder, args: list, node: Node) -> None:
    kind, axes, in_spec, body = reduction_parts(node)
    out_ptr, in_ptrs = args[0], list(args[1:])
    shape = in_spec.shape
    dtype = node.dtype
    keep_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    out_strides = broadcast_strides(keep_shape, shape)
    if body is None:
        specs = [in_spec]

        def value(bb, vals):
            return vals[0]
    else:
        red = body.outputs[0]
        specs = [i.spec for i in body.inputs]

        producers = [n for n in body.nodes if n is not red]

        def value(bb, vals):
            return eval_graph(bb, body, vals, nodes=producers)[red.inputs[0]]
    in_strides = [broadcast_strides(s.shape, shape) for s in specs]

    def load_inputs(bb, offsets):
        return [load(bb, element_ptr(bb, p, off, s.dtype), s.dtype) for p, off, s in zip(in_ptrs, offsets, specs)]

    # Fill the outputs with the identity.
    out_size = int(np.prod(node.shape, dtype=np.int64))
    with for_range(b, out_size, "init") as i:
        store(b, identity(kind, dtype), element_ptr(b, out_ptr, i, dtype), dtype)

    cshape, cstrides = collapse(shape, [out_strides] + in_strides)
    if not cshape:  # a single element
        vals = load_inputs(b, [ir.Constant(I64, 0)] * len(specs))
        p = element_ptr(b, out_ptr, ir.Constant(I64, 0), dtype)
        store(b, combine(b, kind, load(b, p, dtype), value(b, vals), dtype), p, dtype)
        return
    inner = cshape[-1]
    inner_strides = [s[-1] for s in cstrides]
    with strided_nest(b, cshape[:-1], [s[:-1] for s in cstrides], "r") as offsets:
        out_base = offsets[0]
        if inner_strides[0] == 0:  # innermost axis reduced: accumulate in a register
            p = element_ptr(b, out_ptr, out_base, dtype)
            with accumulate(b, inner, load(b, p, dtype), "j") as loop:
                j = loop.index
                offs = [b.add(o, b.mul(j, ir.Constant(I64, s))) if s else o for o, s in zip(offsets[1:], inner_strides[1:])]
                loop.carry(combine(b, kind, loop.acc, value(b, load_inputs(b, offs)), dtype))
            store(b, loop.acc, p, dtype)
        else:
            with for_range(b, inner, "j") as j:
                offs = [b.add(o, b.mul(j, ir.Constant(I64, s))) if s else o for o, s in zip(offsets, inner_strides)]
                p = element_ptr(b, out_ptr, offs[0], dtype)
                store(b, combine(b, kind, load(b, p, dtype), value(b, load_inputs(b, offs[1:])), dtype), p, dtype)
