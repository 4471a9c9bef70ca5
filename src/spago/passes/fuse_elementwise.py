"""Fusion (a): connected elementwise ops over one output shape become one loop (broadcast operands are
read with stride 0), so a chain of k ops reads and writes memory once instead of k times. Basic slices,
transposes and reshapes that feed the loop are read in place through their strides, not copied."""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group, is_convex, shrink_to_single_output
from ..lower.views import view_chains_feeding


def _elementwise(n: Node) -> bool:
    return n.kind == "op" and n.op.elementwise


def fuse_elementwise(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    taken: set = set()
    fused_away: set = set()  # members of groups already fused (no longer in the graph)
    for seed in reversed([n for n in graph.nodes if _elementwise(n)]):  # from the last, so groups end at outputs
        if seed in taken or not _elementwise(seed) or seed in fused_away:
            continue
        shape = seed.shape
        group, stack = {seed}, [seed]
        while stack:
            n = stack.pop()
            for m in list(n.inputs) + list(n.users):
                if m not in group and m not in taken and _elementwise(m) and m.shape == shape:
                    group.add(m)
                    stack.append(m)
        position = {n: k for k, n in enumerate(graph.nodes)}
        group = shrink_to_single_output(graph, group, position)
        group |= view_chains_feeding(group, outputs)
        if len(group) < 2 or not is_convex(graph, group, position):
            taken.update(group)
            continue
        fused = fuse_group(graph, group, "elementwise")
        if fused is not None:
            taken.add(fused)
            fused_away |= group
        else:
            taken.update(group)
    return graph
