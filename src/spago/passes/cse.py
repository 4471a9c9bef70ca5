"""Common-subexpression elimination: identical op nodes (same op, same inputs, equal attributes) and
identical small constants are computed or stored once."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.graph import Graph, Node

MAX_CONST_ELEMENTS = 4096  # larger constants are compared by identity only


def hashable(value: Any) -> Any:
    if isinstance(value, np.dtype):
        return ("dtype", value.name)
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, hashable(v)) for k, v in value.items()))
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))  # e.g. a fused body: equal only to itself


def _key(node: Node) -> tuple:
    return (node.op.name, tuple(id(i) for i in node.inputs), hashable(node.attrs), node.spec)


def cse(graph: Graph) -> Graph:
    consts: dict = {}
    for c in graph.consts:
        if c.data.size <= MAX_CONST_ELEMENTS:
            key = (c.spec, c.data.tobytes())
            keep = consts.setdefault(key, c)
            if keep is not c:
                graph.replace_uses(c, keep)
    seen: dict = {}
    for node in list(graph.nodes):
        if node.op.effectful:  # random draws are never merged (their seeds differ anyway)
            continue
        keep = seen.setdefault(_key(node), node)
        if keep is not node:
            graph.replace_uses(node, keep)
    graph.remove_unused()
    return graph
