"""A cursor for rewrites that build several nodes in place of one (torch.fx's ``inserting_before``).

A rewrite that replaces a node by a small computation makes the new nodes right before the node it
replaces, in the order it makes them, so the graph stays in topological order without re-sorting::

    rw = Rewriter(graph)
    rw.before(node)                      # new nodes go here, one after another
    total = rw.emit("add", [a, b], scope=node.scope)
    rw.replace(node, total)              # every reader of node (and the outputs) now reads total

Users are read from ``Node.users``, which the graph keeps current; `is_output` answers in constant time.
"""
from __future__ import annotations

import numpy as np

from .graph import Graph, Node


class Rewriter:
    """Inserts new op nodes at a moving position of ``graph`` and replaces old nodes by them."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.position = 0
        self._outputs = set(graph.outputs)
        self._shared: dict = {}  # (op, input ids, attrs) -> a node made earlier with share=True
        self._zero: dict = {}  # dtype -> a scalar zero constant

    def before(self, node: Node) -> "Rewriter":
        """New nodes go right before ``node`` (after any made since the last call)."""
        self.position = self.graph.nodes.index(node)
        return self

    def after(self, node: Node) -> "Rewriter":
        """New nodes go right after ``node``."""
        self.position = self.graph.nodes.index(node) + 1
        return self

    def emit(self, op: str, inputs: list, attrs: dict | None = None, scope: str = "", share: bool = False) -> Node:
        """A new ``op`` node at the cursor; with ``share``, the node an identical earlier call made (which must
        still be above the cursor: use it for rewrites that go forward through the graph)."""
        attrs = dict(attrs or {})
        key = (op, tuple(id(i) for i in inputs), tuple(sorted(attrs.items()))) if share else None
        if key is not None and key in self._shared:
            return self._shared[key]
        node = self.graph.insert_at(self.position, self.graph.create_node(op, inputs, attrs, scope))
        self.position += 1
        if key is not None:
            self._shared[key] = node
        return node

    def zeros(self, shape: tuple, dtype, scope: str = "") -> Node:
        """A zero-filled value of ``shape``: one scalar constant per dtype, broadcast at the cursor."""
        zero = self._zero.get(np.dtype(dtype))
        if zero is None:
            zero = self._zero[np.dtype(dtype)] = self.graph.add_const(np.zeros((), dtype), "zero")
        return self.emit("broadcast_to", [zero], {"shape": tuple(shape)}, scope)

    def is_output(self, node: Node) -> bool:
        return node in self._outputs

    def only_read_by(self, node: Node, readers: set | Node) -> bool:
        """Whether ``node`` is not returned and every reader of it is ``readers`` (a node or a set of nodes)."""
        if node in self._outputs:
            return False
        if isinstance(readers, Node):
            return all(u is readers for u in node.users)
        return all(u in readers for u in node.users)

    def replace(self, old: Node, new: Node) -> None:
        """Every reader of ``old``, and the graph's outputs, read ``new`` (``old`` is left to dead-code removal)."""
        self.graph.replace_all_uses_with(old, new)
        if old in self._outputs:
            self._outputs.discard(old)
            self._outputs.add(new)
