"""The elementwise family: one strided loop nest evaluating a scalar expression per element.

Broadcast operands are read with stride 0, so ``x * scale + bias`` reads each input once and writes
once. Fused elementwise nodes evaluate their whole body per element.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from .. import scalar
from ..loops import broadcast_strides, contiguous_strides, outer_extent, strided_nest
from ..types import element_ptr, load, store
from . import family


def body_of(node: Node) -> tuple[list, object]:
    """(input specs, evaluate(b, values) -> value) for a plain elementwise node or a fused body."""
    if node.op.name == "fused":
        body = node.attrs["body"]

        def evaluate(b: ir.IRBuilder, values: list) -> ir.Value:
            return eval_graph(b, body, values)[body.outputs[0]]

        return [i.spec for i in body.inputs], evaluate

    def evaluate_one(b: ir.IRBuilder, values: list) -> ir.Value:
        return scalar.emit(b, node.op.name, values, node.attrs, [i.dtype for i in node.inputs], node.dtype)

    return [i.spec for i in node.inputs], evaluate_one


def eval_graph(b: ir.IRBuilder, body, values: list, env: dict | None = None, nodes: list | None = None) -> dict:
    """Emit ``nodes`` (default: every node of ``body``) as scalar code, with its inputs bound to ``values``."""
    env = dict(env or {})
    env.update(zip(body.inputs, values))
    for n in body.nodes if nodes is None else nodes:
        if n in env:
            continue
        env[n] = scalar.emit(b, n.op.name, [env[i] for i in n.inputs], n.attrs, [i.dtype for i in n.inputs], n.dtype)
    return env


def _strides(node: Node) -> list:
    specs, _ = body_of(node)
    return [contiguous_strides(node.shape)] + [broadcast_strides(s.shape, node.shape) for s in specs]


def elementwise_extent(node: Node) -> int:
    return outer_extent(node.shape, _strides(node))


@family("elementwise", parallel=elementwise_extent)
def emit_elementwise(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    out_ptr, in_ptrs = args[0], args[1:]
    specs, evaluate = body_of(node)
    with strided_nest(b, node.shape, _strides(node), outer=outer) as offsets:
        values = [load(b, element_ptr(b, p, off, s.dtype), s.dtype) for p, off, s in zip(in_ptrs, offsets[1:], specs)]
        store(b, evaluate(b, values), element_ptr(b, out_ptr, offsets[0], node.dtype), node.dtype)
