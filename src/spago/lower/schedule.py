"""Which op nodes are kernels. A ``reshape`` of a contiguous buffer is a view: it shares its input's
buffer and costs no kernel; so is a ``scan_part``, one result inside a scan's packed buffer (at its byte
``offset``). Everything else that survives fusion is one kernel launch."""
from __future__ import annotations

from ..ir.graph import Graph, Node

def is_alias(node: Node) -> bool:
    return node.kind == "op" and node.op.alias


def kernels(graph: Graph) -> list:
    """The op nodes that run as kernels, in schedule order."""
    return [n for n in graph.nodes if not is_alias(n)]


def alias_root(node: Node) -> Node:
    """The node whose buffer ``node`` views (itself unless it is a reshape of something)."""
    while is_alias(node):
        node = node.inputs[0]
    return node


def byte_offset(node: Node) -> int:
    """Where ``node``'s data starts inside its alias root's buffer (non-zero only inside a scan's results)."""
    offset = 0
    while is_alias(node):
        offset += node.attrs.get("offset", 0) if node.op.name == "scan_part" else 0
        node = node.inputs[0]
    return offset


def is_scan_result(node: Node) -> bool:
    """Whether ``node`` views one result of a scan (a graph output that is one gets copied out)."""
    while is_alias(node):
        if node.op.name == "scan_part":
            return True
        node = node.inputs[0]
    return False
