"""Turn an eager result's tape into a `Graph`, so define-by-run computations can be drawn too."""
from __future__ import annotations

from ..autograd import topological_order
from ..errors import SpagoError
from ..tensor import Tensor
from .graph import Graph


def graph_from_tape(*outputs: Tensor, name: str = "tape") -> Graph:
    """The ops recorded behind ``outputs``: leaves that require grad become parameters, others constants.

    Call it before ``backward()`` (or use ``retain_graph=True``): backward frees the tape.
    """
    graph = Graph(name)
    nodes: dict = {}
    counter = {"leaf": 0}

    def leaf(t: Tensor):
        if id(t) not in nodes:
            data = t.numpy()
            if t.requires_grad:
                counter["leaf"] += 1
                nodes[id(t)] = graph.add_param(data, t.name or f"w{counter['leaf']}")
            else:
                nodes[id(t)] = graph.add_const(data, t.name or "c")
        return nodes[id(t)]

    for o in outputs:
        if not isinstance(o, Tensor):
            raise SpagoError(f"to_dot expects Tensors, got {type(o).__name__}")
    order = topological_order(list(outputs), only_grad=False)[::-1]  # made-from before made
    for t in order:
        if t._node is None:
            leaf(t)
    order = [t for t in order if t._node is not None]
    for t in order:
        node = t._node
        nodes[id(t)] = graph.add_op(node.op, [nodes[id(i)] if id(i) in nodes else leaf(i) for i in node.inputs],
                                    node.attrs, t.spec, name=node.op.name)
    graph.outputs = [nodes[id(o)] if id(o) in nodes else leaf(o) for o in outputs]
    return graph


def to_dot(*outputs: Tensor, **options) -> str:
    """DOT source of the computation behind eager results (before backward frees it)."""
    return graph_from_tape(*outputs).to_dot(**options)
