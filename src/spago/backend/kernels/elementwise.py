"""The elementwise family: one strided loop nest evaluating a scalar expression per element.

Broadcast operands are read with stride 0, so ``x * scale + bias`` reads each input once and writes
once. Fused elementwise nodes evaluate their whole body per element.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ...passes.views import is_view, view_of
from .. import scalar
from ..loops import broadcast_strides, contiguous_strides, outer_extent, strided_nest
from ..types import I64, element_ptr, load, store
from . import family


def leaves_of(node: Node) -> list:
    """What the loop loads: (IR node, input index, shape, strides, offset) for every operand of the
    elementwise work — a kernel input read contiguously, or a view of one read through its strides."""
    if node.op.name != "fused":
        return [(i, k, i.shape, contiguous_strides(i.shape), 0) for k, i in enumerate(node.inputs)]
    body = node.attrs["body"]
    views = {n for n in body.nodes if is_view(n)}
    leaves: dict = {}
    for n in body.nodes:
        if n in views:
            continue
        for i in n.inputs:
            if i in leaves or (i.kind == "op" and i not in views):  # computed in the loop, not loaded
                continue
            if i in views:
                root, shape, strides, offset = view_of(i, stop=views)
                leaves[i] = (i, body.inputs.index(root), shape, strides, offset)
            else:
                leaves[i] = (i, body.inputs.index(i), i.shape, contiguous_strides(i.shape), 0)
    return list(leaves.values())


def compute_nodes(node: Node) -> list:
    """The body nodes computed per element (views are addressing, not computation)."""
    if node.op.name != "fused":
        return [node]
    return [n for n in node.attrs["body"].nodes if not is_view(n)]


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
    return [contiguous_strides(node.shape)] + [broadcast_strides(shape, node.shape, strides)
                                              for _, _, shape, strides, _ in leaves_of(node)]


def elementwise_extent(node: Node) -> int:
    return outer_extent(node.shape, _strides(node))


@family("elementwise", parallel=elementwise_extent)
def emit_elementwise(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    out_ptr, in_ptrs = args[0], args[1:]
    leaves = leaves_of(node)
    with strided_nest(b, node.shape, _strides(node), outer=outer) as offsets:
        env = {}
        for (leaf, k, _, _, start), off in zip(leaves, offsets[1:]):
            off = b.add(off, ir.Constant(I64, start)) if start else off
            env[leaf] = load(b, element_ptr(b, in_ptrs[k], off, leaf.dtype), leaf.dtype)
        nodes = compute_nodes(node)
        if node.op.name == "fused":
            value = eval_graph(b, node.attrs["body"], [], env=env, nodes=nodes)[node.attrs["body"].outputs[0]]
        else:
            value = scalar.emit(b, node.op.name, [env[i] for i in node.inputs], node.attrs,
                                [i.dtype for i in node.inputs], node.dtype)
        store(b, value, element_ptr(b, out_ptr, offsets[0], node.dtype), node.dtype)
