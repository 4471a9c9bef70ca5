"""Which op nodes are kernels. A ``reshape`` of a contiguous buffer is a view: it shares its input's
buffer and costs no kernel. Everything else that survives fusion is one kernel launch."""
from __future__ import annotations

from ..ir.graph import Graph, Node

ALIAS_OPS = frozenset({"reshape"})


def is_alias(node: Node) -> bool:
    return node.kind == "op" and node.op.name in ALIAS_OPS


def kernels(graph: Graph) -> list:
    """The op nodes that run as kernels, in schedule order."""
    return [n for n in graph.nodes if not is_alias(n)]


def alias_root(node: Node) -> Node:
    """The node whose buffer ``node`` views (itself unless it is a reshape of something)."""
    while is_alias(node):
        node = node.inputs[0]
    return node
