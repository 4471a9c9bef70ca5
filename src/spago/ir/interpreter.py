"""The reference interpreter: runs any graph with the registry's NumPy kernels.

Passes and the native backend are tested against it. Like torch.fx's Interpreter it can be
subclassed: override ``run_node`` to watch or change what each node computes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SpagoError
from .graph import Graph, Node
from .pytree import unflatten
from .tracer import input_leaves


class Interpreter:
    def __init__(self, graph: Graph):
        self.graph = graph

    def run_node(self, node: Node, args: list) -> np.ndarray:
        with np.errstate(all="ignore"):
            value = node.op.kernel(*args, **node.attrs)
        return np.asarray(value, dtype=node.dtype)

    def run_flat(self, arrays: list) -> list:
        """Run on the flat list of input arrays; returns the flat list of output arrays."""
        env: dict = {}
        for node, a in zip(self.graph.inputs, arrays):
            env[node] = a
        for node in self.graph.params + self.graph.consts:
            # data a backend stored in its own layout (packed weights) says how to read it back
            stored = node.meta.get("stored_as")
            env[node] = stored.logical(node.data) if stored is not None else node.data
        for node in self.graph.nodes:
            try:
                env[node] = self.run_node(node, [env[i] for i in node.inputs])
            except KeyError as exc:
                raise SpagoError(f"graph {self.graph.name}: node {node.format()} reads an undefined value") from exc
        return [env[o] for o in self.graph.outputs]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the graph like the traced function: same argument structure, NumPy arrays out."""
        flat = self.run_flat(input_leaves(self.graph, args, kwargs))
        return unflatten(self.graph.out_tree, flat) if self.graph.out_tree is not None else flat


def interpret(graph: Graph, *args: Any, **kwargs: Any) -> Any:
    """Run ``graph`` on NumPy arrays (or Tensors) with the reference kernels."""
    return Interpreter(graph).run(*args, **kwargs)
