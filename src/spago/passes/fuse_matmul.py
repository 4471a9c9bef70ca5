"""Fusion (c) and (d): a matrix product with its operand views and its elementwise epilogue as one kernel.

Operand *prologue*: transposes and reshapes that only feed this product are folded in as strided reads
instead of being materialised (e.g. ``q @ k.T`` and the head permutations of attention).
*Epilogue*: the elementwise consumers of the product's full output shape — bias add, activation (a
composite one too), residual add, scaling — applied while the result tile is still in registers. A
transpose after it that keeps the last axis last (attention's head merge) is absorbed too: the product
writes straight into the transposed layout.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from .fusion import fuse_group, is_convex, shrink_to_single_output
from ..lower.views import blas_layout, is_view, view_chains_feeding, view_of


def _operand_chain(operand: Node, outputs: set) -> set:
    """The view ops in front of one operand that nothing else reads."""
    chain: set = set()
    v = operand
    while is_view(v) and v not in outputs and v.uses() == 1:
        chain.add(v)
        v = v.inputs[0]
    return chain


def _readable(node: Node, operand: Node, chain: set, is_left: bool) -> bool:
    """Whether the product can read ``operand`` through ``chain`` as a strided matrix."""
    view = view_of(operand, stop=chain)
    if view is None:
        return False
    _, shape, strides, _ = view
    if len(shape) == 1:
        return strides[0] >= 1
    return blas_layout(shape[-2], shape[-1], strides[-2], strides[-1]) is not None


def _prologue(node: Node, outputs: set) -> set:
    """View ops feeding ``node``'s operands that can be read in place instead of copied."""
    found: set = set()
    for k, operand in enumerate(node.inputs):
        chain = _operand_chain(operand, outputs)
        if chain and node.inputs.count(operand) == 1 and _readable(node, operand, chain, k == 0):
            found |= chain
    return found


def _epilogue(graph: Graph, node: Node, outputs: set) -> list:
    """The elementwise nodes over the product's output shape that read it (directly or through each other),
    in graph order, when they make one kernel with a single result of the product's type: a composite
    activation (gelu = 0.5·x·(1 + erf(x/√2)) reads x twice, relu6 compares it) fuses whole; otherwise
    the plain chain of single readers."""
    if node in outputs or node.dtype.kind != "f":
        return []
    group, stack = {node}, [node]
    while stack:
        for u in stack.pop().users:
            if u not in group and u.op.elementwise and u.shape == node.shape and u.op.name != "broadcast_to":
                group.add(u)
                stack.append(u)
    position = {n: k for k, n in enumerate(graph.nodes)}
    group = shrink_to_single_output(graph, group, position)
    ordered = sorted(group - {node}, key=position.__getitem__)
    if node in group and ordered and ordered[-1].spec == node.spec and is_convex(graph, group, position):
        return ordered
    return _chain(node, outputs)


def _chain(node: Node, outputs: set) -> list:
    """Elementwise consumers chained after ``node`` that keep its output shape (one reader each)."""
    chain, current = [], node
    while current not in outputs:
        if current.uses() != 1:
            break
        u = next(iter(current.users))
        if not u.op.elementwise or u.spec != node.spec or u.op.name == "broadcast_to":
            break
        if sum(1 for i in u.inputs if i is current) != 1:
            break  # e.g. square via mul(y, y): fine to fuse, but keep the chain a simple path
        chain.append(u)
        current = u
    return chain


def _output_transpose(last: Node, outputs: set) -> list:
    """A transpose of the result that keeps the last axis last: the product can write in that layout."""
    if last in outputs or last.uses() != 1:
        return []
    t = next(iter(last.users))
    if t.op.name != "transpose" or t.attrs["axes"][-1] != len(t.attrs["axes"]) - 1 or last.spec.ndim < 2:
        return []
    return [t]


def fuse_matmul(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    for node in [n for n in graph.nodes if n.kind == "op" and n.op.name == "matmul"]:
        chain = _epilogue(graph, node, outputs)
        chain += _output_transpose(chain[-1] if chain else node, outputs)
        members = {node} | _prologue(node, outputs) | set(chain)
        epilogue = [n for n in chain if n.op.name != "transpose"]
        members |= view_chains_feeding(members, outputs, set(epilogue))
        if len(members) > 1:
            fuse_group(graph, members, "matmul")
    return graph
