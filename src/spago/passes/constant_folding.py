"""Constant folding: an op whose inputs are all constants runs once, at compile time.

With frozen parameters this does weight-only work ahead of time: a transposed weight, a reshaped bias, a
scaled embedding table. Random ops are left alone, and a broadcast that would blow a small constant up
into a large one is left for fusion to read with stride 0.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node

MAX_GROWTH = 16  # a folded result may be at most this many times larger than its largest input


KEEP_VIEW_BYTES = 1 << 16  # a transpose of a larger constant that only products read stays a view


def _read_in_place(node: Node) -> bool:
    """A transpose of a large constant read only by matrix products: the product reads it through
    strides (see ``fuse_matmul``), so folding it would only keep a second copy of the weight."""
    return (node.op.name == "transpose" and node.inputs[0].spec.nbytes >= KEEP_VIEW_BYTES
            and bool(node.users) and all(u.op.name == "matmul" for u in node.users))


def _foldable(node: Node) -> bool:
    if node.op.effectful or node.op.name == "fused" or not all(i.kind == "const" for i in node.inputs) \
            or _read_in_place(node):
        return False
    biggest = max((i.spec.size for i in node.inputs), default=1)
    return node.spec.size <= MAX_GROWTH * max(biggest, 1) or node.spec.size <= 64


def constant_folding(graph: Graph) -> Graph:
    for node in list(graph.nodes):
        if not _foldable(node):
            continue
        with np.errstate(all="ignore"):
            value = np.asarray(node.op.kernel(*[i.data for i in node.inputs], **node.attrs), dtype=node.dtype)
        const = graph.add_const(np.array(value, order="C"), f"{node.op.name}_{node.name}")
        const.scope = node.scope
        graph.replace_uses(node, const)  # the folded node is now unused: remove_unused drops it
    graph.remove_unused()
    return graph
