"""Two constant linear maps in a row become one: ``(X @ W1 + b1) @ W2`` becomes ``X @ (W1 @ W2) + b1 @ W2``.

A tagger's re-projection (``embedding2nn``) feeds its BiLSTM, whose input product `scan_bodies` moved out of
the loop: with frozen weights nothing non-linear lies between the two products, so one product with the
folded (K, N) weight replaces a (K, M) and an (M, N) product per row — when K·N ≤ K·M + M·N, which the
pass checks. Row views between them (the LSTM's time-major transpose, a reshape to rows) are replayed on
``X``. The folded weight and bias are computed once, in float64, so the results agree to rounding. Every
reader of the first map's result must be such a product (both directions of a BiLSTM are), else nothing
is saved and the pass leaves the chain alone.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from .gather_products import replay_row_views, row_views_above


def constant_matrix(n: Node) -> np.ndarray | None:
    """The value of a constant 2-D matrix, or of a transpose of one (large weights stay such views)."""
    if n.kind == "const" and n.spec.ndim == 2:
        return n.data
    if n.kind == "op" and n.op.name == "transpose" and n.inputs[0].kind == "const" and n.spec.ndim == 2:
        return np.transpose(n.inputs[0].data, n.attrs["axes"])
    return None


def _first_map(v: Node) -> tuple | None:
    """(X, W1, bias or None, the row views from the first map to ``v``) when ``v`` is ``X @ W1 (+ b1)``
    seen through row views, each node of that chain read only by the next (``v`` itself may have several
    readers)."""
    views, v = row_views_above(v)
    chain = views[::-1]
    bias = None
    if v.kind == "op" and v.op.name == "add" and len(v.inputs) == 2:
        product, b = v.inputs
        if b.kind != "const" or b.spec.ndim < 1 or b.spec.size != b.shape[-1] or b.shape[-1] != v.shape[-1]:
            return None
        chain.append(v)
        bias, v = b.data.reshape(-1), product
    if not (v.kind == "op" and v.op.name == "matmul" and v.inputs[0].spec.ndim >= 2 and v.dtype.kind == "f"):
        return None
    w1 = constant_matrix(v.inputs[1])
    if w1 is None:
        return None
    chain.append(v)
    if any(len(n.users) != 1 for n in chain[1:]):
        return None
    return v.inputs[0], w1, bias, views


def fold_linear_chains(graph: Graph) -> Graph:
    for end in list(graph.nodes):
        if end.graph is None or not end.users or end.kind != "op":
            continue
        readers = list(end.users)
        if not all(r.op.name == "matmul" and r.inputs[0] is end and r.inputs[1] is not end
                   and constant_matrix(r.inputs[1]) is not None for r in readers):
            continue
        found = _first_map(end)
        if found is None:
            continue
        x, w1, bias, views = found
        k, m = w1.shape
        weights = [constant_matrix(r.inputs[1]) for r in readers]
        if any(k * w.shape[1] > k * m + m * w.shape[1] for w in weights):
            continue
        for reader, w2 in zip(readers, weights):
            left = replay_row_views(graph, views, x, k, reader)
            folded = graph.add_const((w1.astype(np.float64) @ w2.astype(np.float64)).astype(reader.dtype),
                                     f"{reader.name}_folded")
            out = graph.insert_before(reader, graph.create_node("matmul", [left, folded], {}, reader.scope))
            if bias is not None:
                shift = graph.add_const((bias.astype(np.float64) @ w2.astype(np.float64)).astype(reader.dtype),
                                        f"{reader.name}_folded_bias")
                out = graph.insert_before(reader, graph.create_node("add", [out, shift], {}, reader.scope))
            graph.replace_uses(reader, out)
        graph.remove_unused()
    return graph
