"""Fusion (e), attention: scores, mask, softmax and context as one kernel.

Scaled dot-product attention (Vaswani et al., 2017, "Attention Is All You Need")

    context = softmax(Q Kᵀ · scale + mask) V

after the matmul and row-wise fusions is three kernels: the scores product (with its scale and mask
epilogue), the softmax rows, and the context product. Materialised, the scores of every head go to
memory and back twice (batch·heads·seq² floats). Fused, each work item — one head's block of query
rows — computes its scores into a small buffer that stays in cache, normalises them in place, and
multiplies them by V straight into the output. The body keeps the three kernels as nested fused
nodes, so the reference interpreter runs it unchanged.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..layout import FLOAT32_BYTES
from ..lower.attention import attention_plans
from .fusion import fuse_group

MAX_TILE_BYTES = 1 << 18  # the per-thread score buffer (rows x keys floats) lives on the stack


def is_softmax(node: Node) -> bool:
    """A row-wise kernel that is exactly softmax over the last axis of its single input."""
    if node.kind != "op" or node.op.name != "fused" or node.attrs.get("pattern") != "rowwise":
        return False
    body = node.attrs["body"]
    if len(body.inputs) != 1 or [n.op.name for n in body.nodes] != ["max", "sub", "exp", "sum", "div"]:
        return False
    x = body.inputs[0]
    mx, sub, ex, sm, div = body.nodes
    return (mx.inputs == (x,) and sub.inputs == (x, mx) and ex.inputs == (sub,) and sm.inputs == (ex,)
            and div.inputs == (ex, sm) and body.outputs == [div] and x.dtype.kind == "f"
            and mx.attrs["axes"] == (x.spec.ndim - 1,) and sm.attrs["axes"] == (x.spec.ndim - 1,))


def _is_product(node: Node) -> bool:
    return node.kind == "op" and (node.op.name == "matmul" or (node.op.name == "fused"
                                                              and node.attrs.get("pattern") == "matmul"))


def _reads_directly(product: Node, operand: Node) -> bool:
    """Whether ``product``'s left matrix is ``operand`` itself (not a view of it) and its only use."""
    if product.op.name == "matmul":
        return product.inputs[0] is operand and product.inputs[1] is not operand
    body = product.attrs["body"]
    if product.inputs.count(operand) != 1:
        return False
    mm = next(n for n in body.nodes if n.op.name == "matmul")
    return mm.inputs[0] is body.inputs[product.inputs.index(operand)]


def fusable(scores: Node, softmax: Node, context: Node) -> bool:
    """Whether the backend can run this chain as one attention kernel."""
    first, second = attention_plans(scores, context)
    if first is None or (first.epilogue and any(e.dtype != scores.dtype for e in first.epilogue)) \
            or second.epilogue:
        return False
    return (first.groups, first.rows) == (second.groups, second.rows) and first.n == second.k \
        and first.block_rows * first.n * FLOAT32_BYTES <= MAX_TILE_BYTES \
        and scores.dtype == softmax.dtype == context.dtype and scores.dtype.name == "float32"


def fuse_attention(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    for softmax in [n for n in graph.nodes if is_softmax(n)]:
        scores = softmax.inputs[0]
        readers = list(softmax.users)
        if not _is_product(scores) or scores in outputs or softmax in outputs or scores.uses() != 1 \
                or softmax.uses() != 1 or not _is_product(readers[0]):
            continue
        context = readers[0]
        if not _reads_directly(context, softmax) or not fusable(scores, softmax, context):
            continue
        fuse_group(graph, {scores, softmax, context}, "attention")
    return graph
