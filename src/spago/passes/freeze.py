"""For inference, parameters are constants: freezing them lets constant folding do weight-only work once."""
from __future__ import annotations

from ..ir.graph import Graph


def freeze_params(graph: Graph) -> Graph:
    for node in graph.params:
        node.kind = "const"
    graph.consts = graph.params + graph.consts
    graph.params = []
    return graph
