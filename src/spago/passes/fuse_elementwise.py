"""Fusion (a): connected elementwise ops over one output shape become one loop (broadcast operands are
read with stride 0), so a chain of k ops reads and writes memory once instead of k times. Basic slices,
transposes and reshapes that feed the loop are read in place through their strides, not copied."""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group, is_convex, shrink_to_single_output
from .views import is_view, view_of


def _elementwise(n: Node) -> bool:
    return n.kind == "op" and n.op.kind == "elementwise"


def _view_producers(group: set, users: dict, outputs: set) -> set:
    """Chains of views that feed the group, are read nowhere else, and start from a materialised value."""
    found: set = set()
    for m in group:
        for i in m.inputs:
            chain, v = set(), i
            while is_view(v) and v not in outputs and all(u in group or u in chain for u in users.get(v, ())):
                chain.add(v)
                v = v.inputs[0]
            if chain and view_of(i, stop=chain) is not None:
                found |= chain
    return found


def fuse_elementwise(graph: Graph) -> Graph:
    users = graph.users()
    outputs = set(graph.outputs)
    taken: set = set()
    for seed in reversed([n for n in graph.nodes if _elementwise(n)]):  # from the last, so groups end at outputs
        if seed in taken or not _elementwise(seed) or seed not in set(graph.nodes):
            continue
        shape = seed.shape
        group, stack = {seed}, [seed]
        while stack:
            n = stack.pop()
            for m in list(n.inputs) + list(users.get(n, ())):
                if m not in group and m not in taken and _elementwise(m) and m.shape == shape:
                    group.add(m)
                    stack.append(m)
        position = {n: k for k, n in enumerate(graph.nodes)}
        group = shrink_to_single_output(graph, group, users, position)
        group |= _view_producers(group, users, outputs)
        if len(group) < 2 or not is_convex(graph, group, position):
            taken.update(group)
            continue
        fused = fuse_group(graph, group, "elementwise", users)
        if fused is not None:
            taken.add(fused)
        else:
            taken.update(group)
    return graph
