"""Fusion (b), row-wise: reductions over the last axis with their elementwise producers and consumers.

Softmax, log-softmax, layer norm, RMS norm and mean/variance all read a row, reduce it, and combine the
row with the reduced values. Every node of such a computation has shape ``rows + (n,)`` or
``rows + (1,)``; one kernel can walk the rows and do all of it, so they fuse into one ``rowwise`` node.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group, is_convex, shrink_to_single_output


def _row_reduction(n: Node) -> tuple | None:
    """The (rows, n) domain of a keepdims reduction over the last axis, else None."""
    if n.kind != "op" or not n.op.reduction or not n.attrs.get("keepdims"):
        return None
    x = n.inputs[0]
    if x.spec.ndim == 0 or n.attrs["axes"] != (x.spec.ndim - 1,):
        return None
    return x.shape[:-1], x.shape[-1]


def _in_domain(n: Node, rows: tuple, width: int) -> bool:
    if n.kind != "op":
        return False
    if _row_reduction(n) == (rows, width):
        return True
    return n.op.elementwise and n.shape in (rows + (width,), rows + (1,))


def fuse_rowwise(graph: Graph) -> Graph:
    taken: set = set()
    fused_away: set = set()  # members of groups already fused (no longer in the graph)
    for seed in [n for n in graph.nodes if _row_reduction(n) is not None]:
        if seed in taken or seed in fused_away:
            continue
        rows, width = _row_reduction(seed)
        group = {seed}
        stack = [seed]
        while stack:  # grow through producers and consumers that live in the same row domain
            n = stack.pop()
            for m in list(n.inputs) + list(n.users):
                if m not in group and m not in taken and _in_domain(m, rows, width):
                    group.add(m)
                    stack.append(m)
        position = {n: k for k, n in enumerate(graph.nodes)}
        group = shrink_to_single_output(graph, group, position)
        if not any(_row_reduction(m) for m in group) or not is_convex(graph, group, position):
            continue
        fused = fuse_group(graph, group, "rowwise")
        if fused is not None:
            taken.add(fused)
            fused_away |= group
    return graph
