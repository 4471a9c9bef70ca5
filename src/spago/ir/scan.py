"""Tracing a scan's body: ``f`` runs once on symbolic carry and step tensors into a body `Graph`.

Tensors ``f`` reaches from outside — the enclosing trace's values, a module's weights — become the
body's first inputs (*captured*) and the scan node's first operands, so the gradient flows to them and
the passes can see (and hoist) them. Other concrete tensors become the body's constants.
"""
from __future__ import annotations

from ..autograd import no_grad
from ..errors import SpagoError
from ..ops.registry import bind, current_mode, use_mode
from ..ops.scan import bind_scan, call_step, check_carry, leaf_tensor
from ..tensor import Tensor
from .graph import Graph, Node
from .pytree import flatten, unflatten
from .tracer import TraceMode


def is_tracing() -> bool:
    return isinstance(current_mode(), TraceMode)


class BodyTrace(TraceMode):
    """Traces a body: a tensor from outside becomes a captured input (once), remembered in ``outside``."""

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.outside: list = []  # the outside tensors, in body-input order
        self._inputs: list = []
        self._by_key: dict = {}

    def node_of(self, t: Tensor) -> Node:
        if isinstance(t._value, Node) and t._value in self.owned:
            return t._value
        if t.is_concrete and t.name is None and not t.requires_grad:
            return super().node_of(t)  # a constant of the body
        key = ("node", t._value) if isinstance(t._value, Node) else ("array", id(t._value))
        hit = self._by_key.get(key)
        if hit is not None:
            return hit
        node = self.graph.add_input(t.spec, f"captured.{t.name or len(self.outside)}")
        self.owned.add(node)
        self.outside.append(t)
        self._inputs.append(node)
        self._by_key[key] = node
        return node


def trace_scan(f, init_tree, init_leaves: list, init_paths: list, x_tree, x_leaves: list, x_paths: list,
               length: int, reverse: bool) -> tuple:
    """Trace ``f`` into a body and bind one scan node; returns ``(final carry, ys)`` like `spago.scan`."""
    body = Graph("scan_body")
    mode = BodyTrace(body)
    carry_in = [body.add_input(v.spec, f"carry{'.' + p if p else ''}") for v, p in zip(init_leaves, init_paths)]
    x_specs = [type(v.spec)(v.shape[1:], v.dtype) for v in x_leaves]
    x_in = [body.add_input(s, f"x{'.' + p if p else ''}") for s, p in zip(x_specs, x_paths)]
    mode.owned.update(carry_in + x_in)
    carry_sym = unflatten(init_tree, [Tensor._symbolic(n, n.spec) for n in carry_in])
    x_sym = unflatten(x_tree, [Tensor._symbolic(n, n.spec) for n in x_in])
    with no_grad(), use_mode(mode):
        new_carry, y = call_step(f, carry_sym, x_sym)
        carry_out = check_carry(init_tree, init_leaves, init_paths, new_carry)
        y_leaves, _, y_tree = flatten(y)
        y_leaves = [leaf_tensor(v, "y") for v in y_leaves]
        body.outputs = [mode.node_of(v) for v in carry_out + y_leaves]
    body.inputs = mode._inputs + carry_in + x_in
    attrs = dict(body=body, length=length, reverse=bool(reverse), num_consts=len(mode.outside),
                 num_carry=len(init_leaves))
    parts = bind_scan(list(mode.outside) + list(init_leaves) + list(x_leaves), attrs)
    n = len(init_leaves)
    return unflatten(init_tree, parts[:n]), unflatten(y_tree, parts[n:n + len(y_leaves)])


def replay(body: Graph, inputs: list) -> list:
    """Run ``body``'s ops again on ``inputs`` (Tensors) in the current mode, recording the tape: one step
    of a scan, so its gradient can be taken. Nested scans are bound again (keeping residuals if needed)."""
    from ..ops.scan import scan_op

    if len(inputs) != len(body.inputs):
        raise SpagoError(f"replay: {body.name} takes {len(body.inputs)} inputs, got {len(inputs)}")
    env: dict = dict(zip(body.inputs, inputs))
    for n in body.params + body.consts:
        env[n] = Tensor._wrap(n.data)
    packed_of: dict = {}
    for n in body.nodes:
        args = [env[i] for i in n.inputs]
        if n.op is scan_op:
            parts = bind_scan(args, n.attrs)
            packed_of[n] = parts
            env[n] = None
        elif n.op.name == "scan_part" and n.inputs[0] in packed_of:
            env[n] = packed_of[n.inputs[0]][n.attrs["index"]]
        else:
            env[n] = bind(n.op, args, n.attrs)
    return [env[o] for o in body.outputs]
