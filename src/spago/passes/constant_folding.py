"""Constant folding: an op whose inputs are all constants runs once, at compile time.

With frozen parameters this does weight-only work ahead of time: a transposed weight, a reshaped bias, a
scaled embedding table. Random ops are left alone, and a broadcast that would blow a small constant up
into a large one is left for fusion to read with stride 0.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node

NEVER_FOLD = frozenset({"keep_mask", "fused"})
MAX_GROWTH = 16  # a folded result may be at most this many times larger than its largest input


def _foldable(node: Node) -> bool:
    if node.op.name in NEVER_FOLD or not all(i.kind == "const" for i in node.inputs):
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
