"""Fusion (c) and (d): a matrix product with its operand views and its elementwise epilogue as one kernel.

Operand *prologue*: transposes and reshapes that only feed this product are folded in as strided reads
instead of being materialised (e.g. ``q @ k.T`` and the head permutations of attention).
*Epilogue*: the chain of elementwise consumers of the product's full output shape — bias add, activation,
residual add, scaling — applied while the result tile is still in registers.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group

VIEW_OPS = ("transpose", "reshape")


def _prologue(node: Node, users: dict, outputs: set) -> set:
    """View ops feeding ``node``'s operands that nothing else reads."""
    found: set = set()
    stack = list(node.inputs)
    while stack:
        v = stack.pop()
        if v.kind != "op" or v.op.name not in VIEW_OPS or v in outputs:
            continue
        if len(users.get(v, ())) != 1:
            continue
        found.add(v)
        stack.extend(v.inputs)
    return found


def _epilogue(node: Node, users: dict, outputs: set) -> list:
    """Elementwise consumers chained after ``node`` that keep its output shape (one reader each)."""
    chain, current = [], node
    while current not in outputs:
        readers = users.get(current, ())
        if len(readers) != 1:
            break
        u = readers[0]
        if u.op.kind != "elementwise" or u.spec.shape != node.spec.shape or u.op.name == "broadcast_to":
            break
        if sum(1 for i in u.inputs if i is current) != 1:
            break  # e.g. square via mul(y, y): fine to fuse, but keep the chain a simple path
        chain.append(u)
        current = u
    return chain


def fuse_matmul(graph: Graph) -> Graph:
    users = graph.users()
    outputs = set(graph.outputs)
    for node in [n for n in graph.nodes if n.kind == "op" and n.op.name == "matmul"]:
        members = {node} | _prologue(node, users, outputs) | set(_epilogue(node, users, outputs))
        if len(members) > 1:
            fuse_group(graph, members, "matmul", users)
    return graph
