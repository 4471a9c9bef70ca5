"""Algebraic simplification: rewrites that remove work without changing results.

x*1, 1*x, x/1, x+0, 0+x, x-0 → x; x-x → 0 (for finite x); -(-x) → x; transpose of transpose → one
transpose (or none); reshape of reshape → one reshape; reshape, broadcast or cast to what it already is
→ x; x**1 → x, x**2 → x*x, x**0.5 → sqrt(x); a broadcast scalar constant feeding elementwise ops is
read as the scalar. Runs to a fixed point.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpagoError
from ..ir.graph import Graph, Node


def _const_value(node: Node) -> float | None:
    """The value of a constant whose entries are all equal, else None."""
    if node.kind != "const" or node.data is None or node.data.size == 0:
        return None
    flat = node.data.reshape(-1)
    first = flat[0]
    return float(first) if np.all(flat == first) else None


def _rewrite(graph: Graph, node: Node) -> Node | None:
    """The node that can stand for ``node``, or None."""
    name = node.op.name
    ins = node.inputs
    if name in ("add", "sub", "mul", "div"):
        a, b = ins
        va, vb = _const_value(a), _const_value(b)
        if name == "add" and vb == 0 and a.spec == node.spec:
            return a
        if name == "add" and va == 0 and b.spec == node.spec:
            return b
        if name == "sub" and vb == 0 and a.spec == node.spec:
            return a
        if name in ("mul", "div") and vb == 1 and a.spec == node.spec:
            return a
        if name == "mul" and va == 1 and b.spec == node.spec:
            return b
        if name == "sub" and a is b and node.dtype.kind in "fiu":
            return graph.add_const(np.zeros(node.shape, node.dtype), "zeros")
    elif name == "neg" and ins[0].kind == "op" and ins[0].op.name == "neg":
        return ins[0].inputs[0]
    elif name == "transpose":
        x, axes = ins[0], node.attrs["axes"]
        if x.kind == "op" and x.op.name == "transpose":
            inner = x.attrs["axes"]
            combined = tuple(inner[a] for a in axes)
            if combined == tuple(range(len(combined))):
                return x.inputs[0]
            return graph.insert_before(node, graph.create_node("transpose", [x.inputs[0]], {"axes": combined},
                                                               node.scope))
        if axes == tuple(range(len(axes))):
            return x
    elif name == "reshape":
        x = ins[0]
        if x.spec.shape == node.shape:
            return x
        if x.kind == "op" and x.op.name == "reshape":
            if x.inputs[0].shape == node.shape:
                return x.inputs[0]
            return graph.insert_before(node, graph.create_node("reshape", [x.inputs[0]], {"shape": node.shape},
                                                               node.scope))
    elif name in ("broadcast_to", "cast") and ins[0].spec == node.spec:
        return ins[0]
    elif name == "pow":
        x, e = ins
        ve = _const_value(e)
        if ve is not None and np.broadcast_shapes(e.shape, x.shape) == x.shape and x.spec == node.spec:
            if ve == 1.0:
                return x
            if ve == 2.0:
                return graph.insert_before(node, graph.create_node("mul", [x, x], {}, node.scope))
            if ve == 0.5:
                return graph.insert_before(node, graph.create_node("sqrt", [x], {}, node.scope))
    return None


def _scalar_broadcasts(graph: Graph) -> bool:
    """Elementwise users of ``broadcast_to(scalar const)`` read the scalar directly."""
    changed = False
    for node in graph.nodes:
        if not node.op.elementwise or node.op.name == "broadcast_to":
            continue
        for k, i in enumerate(node.inputs):
            if i.kind == "op" and i.op.name == "broadcast_to" and i.inputs[0].kind == "const" \
                    and i.inputs[0].spec.size == 1:
                trial = list(node.inputs)
                trial[k] = i.inputs[0]
                try:
                    spec = node.op.shape_rule(*[t.spec for t in trial], **node.attrs)
                except SpagoError:
                    continue
                if spec == node.spec:
                    node.inputs = trial
                    changed = True
    return changed


def simplify(graph: Graph) -> Graph:
    changed = True
    while changed:
        changed = _scalar_broadcasts(graph)
        for node in list(graph.nodes):
            replacement = _rewrite(graph, node)
            if replacement is not None and replacement is not node:
                graph.replace_uses(node, replacement)
                changed = True
        graph.remove_unused()
    return graph
