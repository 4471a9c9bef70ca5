"""Split the product of a concatenation by a constant: ``concat([x, h], -1) @ W`` becomes
``x @ W[:i] + h @ W[i:]`` when ``x`` is known from the start.

An RNN cell written as the papers (and the Go spaGO) write it — ``z = concat([x_t, h])``, then
``sigmoid(z @ W[k])`` per gate — multiplies each step's input together with the state, so the whole
product waits for the previous step. Split along the concatenation, the input's share ``x_t @ W[:i]``
depends on the inputs only: `batch_matmul` then computes it for every step as one product before the
loop, `merge_shared_input` joins the gates' shares, and each step multiplies only ``h`` — the work of a
model written with separate input and recurrent weights. The weight's row blocks become constants of
their own (the whole weight is then dead and dropped, so nothing is held twice); the sum is the same
dot products, regrouped, so results agree to rounding.

Applies to a 2-D product whose left operand is a ``concat`` along the contracted axis with at least one
part available from the start (a block of rows of an input, parameter or constant), and whose right
operand is a constant matrix or the transpose of one. A step whose state is known from the start too (the
first) is split all the same: its shares then join the other steps' and the weight is held once.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.rewrite import Rewriter
from .batch_matmul import early_rows
from .fold_linear_chains import constant_matrix
from .merge_shared_input import memory_key


def _split(node: Node) -> tuple | None:
    """(parts, whether each is available from the start, weight value) when ``node`` is a product this pass
    splits, else None."""
    if node.kind != "op" or node.op.name != "matmul" or node.spec.ndim != 2:
        return None
    z, w = node.inputs
    if z.kind != "op" or z.op.name != "concat" or z.spec.ndim != 2 or z.attrs["axis"] != 1:
        return None
    weight = constant_matrix(w)
    if weight is None:
        return None
    early = [early_rows(part) is not None for part in z.inputs]
    if not any(early):
        return None
    return z.inputs, early, weight


def split_concat_products(graph: Graph) -> Graph:
    rw = Rewriter(graph)
    # by memory, not node: an unrolled loop's ``W[k]`` is a fresh constant (a view of one array) at every step
    rows: dict = {}  # (weight's memory, first row, rows) -> that block of rows (one array for every step)
    shared: dict = {}  # the same key -> the constant node that the early parts' products share
    for node in list(graph.nodes):
        found = _split(node)
        if found is None:
            continue
        parts, early, weight = found
        rw.before(node)
        total, start = None, 0
        for part, from_start in zip(parts, early):
            width = part.shape[1]
            key = (memory_key(weight), start, width)
            if key not in rows:
                rows[key] = np.ascontiguousarray(weight[start:start + width])
            start += width
            if from_start:
                # one node for every step: `batch_matmul` joins the products of one weight node
                if key not in shared:
                    shared[key] = graph.add_const(rows[key], "weight_rows")
                block = shared[key]
            else:
                # a node per product (on one array): `merge_shared_input` joins a step's gates only when
                # each weight node has a single reader
                block = graph.add_const(rows[key], "weight_rows")
            product = rw.emit("matmul", [part, block], scope=node.scope)
            total = product if total is None else rw.emit("add", [total, product], scope=node.scope)
        rw.replace(node, total)
    return graph
