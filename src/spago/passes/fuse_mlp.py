"""Fusion (f), feed-forward: two chained products — ``act(x W₁ + b₁) W₂ + b₂ (+ residual)`` — as one kernel.

The transformer's position-wise feed-forward network (Vaswani et al., 2017) widens every row four times
before narrowing it again. Materialised, the wide intermediate (rows x 4·width floats) is the largest
buffer of the whole model and makes a round trip through memory. Fused, each work item — a block of
rows — computes its slice of the intermediate (with the first product's epilogue) into a buffer on the
stack that stays in cache, and multiplies it by W₂ straight into the output. The body keeps the two
products as nested fused nodes, so the reference interpreter runs it unchanged.

Not in the default pipeline: BLAS packs both weights again for every block of rows, and on all-MiniLM
at batch 1 and 8 that cost more (5-15% of the forward pass) than the intermediate's round trip through
memory saved. Add it where the intermediate's memory matters more::

    passes = spago.passes.default_passes()
    passes.insert(passes.index(fuse_rowwise) + 1, fuse_mlp)
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..layout import FLOAT32_BYTES
from ..lower.matmul import matmul_plan
from ..lower.mlp import BLOCK_ROWS
from .fusion import fuse_group

MAX_SCRATCH_BYTES = 1 << 19  # the per-thread slice of the intermediate lives on the stack


def _is_product(node: Node) -> bool:
    return node.kind == "op" and node.op.name == "fused" and node.attrs.get("pattern") == "matmul"


def fusable(first: Node, second: Node) -> bool:
    """Whether this chain is a feed-forward block the backend can run as one kernel: two float32
    BLAS-sized products over the same rows (batch axes folded into them), the first widening the rows,
    the second reading the first's rows as they are."""
    p1, p2 = matmul_plan(first), matmul_plan(second)
    if p1 is None or p2 is None or p1.groups or p2.groups or p1.rows != p2.rows or p2.k != p1.n:
        return False
    if p1.n <= p1.k:
        return False  # not a widening block: its intermediate is no bigger than the rows it came from
    if first.dtype.name != "float32" or second.dtype.name != "float32":
        return False
    if p1.operands[2][3] != p1.n or p2.operands[0][3] != p1.n or p2.a_cols != 1:
        return False  # the first writes plain rows, which the second reads as its left matrix
    if p2.operands[0][0] != second.inputs.index(first) or second.inputs.count(first) != 1:
        return False
    return BLOCK_ROWS * p1.n * FLOAT32_BYTES <= MAX_SCRATCH_BYTES


def fuse_mlp(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    for second in [n for n in graph.nodes if _is_product(n)]:
        for first in second.inputs:
            if _is_product(first) and first not in outputs and first.uses() == 1 \
                    and fusable(first, second):
                fuse_group(graph, {first, second}, "mlp")
                break
    return graph
