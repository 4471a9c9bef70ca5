"""Shared machinery of the fusion passes: turning a group of nodes into one ``fused`` kernel node.

A group can become one kernel when it has a single output (no other member is read from outside the
group, nor is a graph output) and it is *convex*: no path leaves the group and comes back, which is
what would make the fused node depend on itself (a cycle).
"""
from __future__ import annotations

from typing import Iterable

from ..ir.graph import Graph, Node
from ..ops.fused import fused_op


def group_outputs(graph: Graph, members: set) -> list:
    """Members read from outside the group or returned by the graph."""
    outs = set(graph.outputs)
    return [n for n in members if n in outs or any(u not in members for u in n.users)]


def is_convex(graph: Graph, members: set, position: dict) -> bool:
    """True when no external input of the group depends on a member."""
    first = min(position[m] for m in members)
    last = max(position[m] for m in members)
    tainted: set = set()
    for n in graph.nodes[first:last + 1]:
        if n in members:
            continue
        if any(i in members or i in tainted for i in n.inputs):
            tainted.add(n)
    return not any(i in tainted for m in members for i in m.inputs)


def shrink_to_single_output(graph: Graph, members: set, position: dict) -> set:
    """Drop members read from outside until one output is left (the latest one), keeping convexity."""
    members = set(members)
    while len(members) > 1:
        outs = group_outputs(graph, members)
        if len(outs) <= 1:
            break
        last = max(outs, key=position.__getitem__)
        for o in outs:
            if o is not last:
                members.discard(o)
        members = _connected_to(last, members)
    return members


def _connected_to(root: Node, members: set) -> set:
    """Members from which ``root`` can be reached inside the group (others cannot feed the output)."""
    keep, stack = {root}, [root]
    while stack:
        n = stack.pop()
        for i in n.inputs:
            if i in members and i not in keep:
                keep.add(i)
                stack.append(i)
    return keep


def fuse_group(graph: Graph, members: Iterable[Node], pattern: str) -> Node | None:
    """Replace ``members`` (op nodes) by one fused node if legal; returns it, or None if not legal."""
    members = set(members)
    if len(members) < 2:
        return None
    position = {n: k for k, n in enumerate(graph.nodes)}
    outs = group_outputs(graph, members)
    if len(outs) != 1 or not is_convex(graph, members, position):
        return None
    out = outs[0]
    ordered = sorted(members, key=position.__getitem__)
    if ordered[-1] is not out:
        return None  # a member after the output feeds nothing outside: it is dead here, leave it to DCE

    body = Graph(f"{pattern}_kernel")
    mapping: dict = {}
    inputs: list = []
    for m in ordered:
        for i in m.inputs:
            if i not in members and i not in mapping:
                mapping[i] = body.add_input(i.spec, f"in{len(inputs)}")
                inputs.append(i)
    for m in ordered:
        mapping[m] = body.add_op(m.op, [mapping[i] for i in m.inputs], m.attrs, m.spec, scope=m.scope,
                                 name=m.op.name)
    body.outputs = [mapping[out]]
    scope = _common_scope([m.scope for m in ordered])
    fused = graph.insert_after(out, graph.create_node(fused_op, inputs, {"body": body, "pattern": pattern},
                                                      scope, name=pattern))
    graph.replace_uses(out, fused)
    for m in reversed(ordered):  # readers first: each is unread when its turn comes
        graph.erase(m)
    return fused


def _common_scope(scopes: list) -> str:
    parts = [s.split(".") if s else [] for s in scopes]
    common = []
    for level in zip(*parts):
        if all(p == level[0] for p in level):
            common.append(level[0])
        else:
            break
    return ".".join(common)


def kernel_count(graph: Graph) -> int:
    from ..lower.schedule import kernels

    return len(kernels(graph))
