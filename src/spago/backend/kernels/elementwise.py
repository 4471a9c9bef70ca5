"""The elementwise family: one strided loop nest evaluating a scalar expression per element.

Broadcast operands are read with stride 0, so ``x * scale + bias`` reads each input once and writes
once. Fused elementwise nodes evaluate their whole body per element.
"""
from __future__ import annotations

from llvmlite import ir

from ...ir.graph import Node
from ...lower.families import element_strides, leaves_of
from ...lower.views import is_view
from .. import scalar
from ..loops import strided_nest
from ..types import I64, element_ptr, load, store
from . import family


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


@family("elementwise")
def emit_elementwise(b: ir.IRBuilder, args: list, node: Node, outer: tuple | None = None) -> None:
    out_ptr, in_ptrs = args[0], args[1:]
    leaves = leaves_of(node)
    with strided_nest(b, node.shape, element_strides(node), outer=outer) as offsets:
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
