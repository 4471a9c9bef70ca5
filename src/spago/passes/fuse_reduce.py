"""Fusion (b), general reductions: a reduction over any axes absorbs the elementwise producers of its
input, so e.g. ``sum((x - y) ** 2)`` reads x and y once and never materialises the difference."""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group


def _producers(node: Node, outputs: set) -> set:
    shape = node.inputs[0].shape
    found: set = set()
    stack = [node.inputs[0]]
    while stack:
        v = stack.pop()
        if v in found or v.kind != "op" or v in outputs or not v.op.elementwise or v.shape != shape:
            continue
        if any(u not in found and u is not node for u in v.users):
            # read elsewhere too: only absorbable if every other reader is already in the group
            if not all(u in found or u is node for u in v.users):
                continue
        found.add(v)
        stack.extend(v.inputs)
    return found


def fuse_reduce(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    for node in [n for n in graph.nodes if n.kind == "op" and n.op.reduction]:
        members = {node} | _producers(node, outputs)
        if len(members) > 1:
            fuse_group(graph, members, "reduce")
    return graph
