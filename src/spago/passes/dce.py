"""Dead-code elimination: drop op nodes, constants and parameters that no output depends on.
Inputs stay: they are the function's signature."""
from __future__ import annotations

from ..ir.graph import Graph


def dce(graph: Graph) -> Graph:
    graph.remove_unused()
    return graph
