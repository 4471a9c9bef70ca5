"""Project a constant table before gathering from it: ``take(E, ids) @ W`` becomes ``take(E @ W, ids)``.

An embedding followed by a frozen linear map — a character LM's input projection, a character BiLSTM's
``x_t @ W_ih`` hoisted out of its loop — multiplies every gathered row by ``W`` on every call, though the
table has only a few hundred distinct rows. With ``E`` and ``W`` constants (inference) the product of the
whole table is computed once, at compile time, and each call gathers its rows: one row copy per position
instead of a K-long dot product per output. Row ``i`` of ``E @ W`` is the same dot products as a gathered
row times ``W``, so results agree to rounding. Views between the gather and the product (the LSTM's
time-major transpose, a reshape to rows) are kept, as long as they leave the last axis in place. The
projected table may grow the constants at most ``MAX_GROWTH`` times (`constant_folding`'s bound) and
take at most ``MAX_TABLE_BYTES``.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from .constant_folding import MAX_GROWTH

MAX_TABLE_BYTES = 1 << 24  # a word vocabulary's projection (30k x 768) is left to the call: too large to keep


def moves_whole_rows(n: Node) -> bool:
    """A view that moves whole rows: a transpose keeping the last axis last, a reshape keeping its size."""
    if n.op.name == "transpose":
        axes = n.attrs["axes"]
        return axes[-1] == len(axes) - 1
    if n.op.name == "reshape":
        return n.spec.ndim >= 1 and n.inputs[0].spec.ndim >= 1 and n.shape[-1] == n.inputs[0].shape[-1]
    return False


def row_views_above(n: Node) -> tuple[list, Node]:
    """The row views (`moves_whole_rows`) that ``n`` is reached through, in the order they are applied, and
    the node they start from."""
    views = []
    while n.kind == "op" and n.op.name in ("transpose", "reshape") and moves_whole_rows(n):
        views.append(n)
        n = n.inputs[0]
    return views[::-1], n


def replay_row_views(graph: Graph, views: list, node: Node, width: int, before: Node) -> Node:
    """``views`` applied again to ``node`` (rows of ``width`` values), inserted before ``before``."""
    for view in views:
        attrs = dict(view.attrs)
        if view.op.name == "reshape":
            attrs["shape"] = tuple(attrs["shape"][:-1]) + (width,)
        node = graph.insert_before(before, graph.create_node(view.op.name, [node], attrs, view.scope))
    return node


def _gather_chain(a: Node) -> list | None:
    """[take, view, …, view] when ``a`` is a gather along axis 0 of a constant 2-D table seen through row
    views (a BiLSTM's two directions read the same gathered rows: each product gets its own gather)."""
    views, a = row_views_above(a)
    if not (a.kind == "op" and a.op.name == "take" and a.attrs.get("axis") == 0 and a.inputs[0].kind == "const"
            and a.inputs[0].spec.ndim == 2 and a.inputs[0].dtype.kind == "f"):
        return None
    return [a] + views


def gather_products(graph: Graph) -> Graph:
    for mm in list(graph.nodes):
        if mm.op is None or mm.op.name != "matmul" or mm.inputs[0].spec.ndim < 2:
            continue
        w = mm.inputs[1]
        if w.kind != "const" or w.spec.ndim != 2 or w.dtype != mm.dtype:
            continue
        chain = _gather_chain(mm.inputs[0])
        if chain is None:  # a gather other work also reads stays for it: a row copy is cheaper than a product
            continue
        table = chain[0].inputs[0]
        rows, width = table.shape[0], w.shape[1]
        if table.dtype != mm.dtype or rows * width > MAX_GROWTH * max(table.spec.size + w.spec.size, 1) \
                or rows * width * table.dtype.itemsize > MAX_TABLE_BYTES:
            continue
        projected = graph.add_const(np.ascontiguousarray(np.matmul(table.data, w.data), dtype=mm.dtype),
                                    f"{table.name}_projected")
        node = graph.create_node("take", [projected, chain[0].inputs[1]], chain[0].attrs, chain[0].scope)
        graph.insert_before(mm, node)
        graph.replace_uses(mm, replay_row_views(graph, chain[1:], node, width, mm))
    graph.remove_unused()
    return graph
