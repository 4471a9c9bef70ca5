"""Products that read the same input with different constant weights become one wider product.

Attention's projections (Vaswani et al., 2017) read one hidden state three times::

    Q = x Wqᵀ + bq,   K = x Wkᵀ + bk,   V = x Wvᵀ + bv

Three products of width n each stream ``x`` three times and give the thread pool three small jobs; one
product against the concatenated weight ``[Wq; Wk; Wv]ᵀ`` (width 3n) with the concatenated bias streams
it once, and Q, K and V are column slices of its output — views that the following kernels (attention)
read in place through their strides. The concatenated constant replaces the originals in the graph,
which dead-code elimination then drops, so the graph holds no second copy of the weights.

A product joins a group when its right operand is a 2-D constant or the transpose of one (a Linear's
``(out, in)`` weight, read through strides); its bias joins when every product of the group has exactly
one reader, an ``add`` of a 1-D constant along the last axis.

The concatenation is then packed for the GEMM in its place (`pack_weights`), and a model loaded from
a mapped weights file gives the parts' pages back, so it costs no resident memory beside the packed
weight (a model whose parameters are arrays of its own keeps them). Compiling the same model for
several shapes reuses one concatenation while it is alive (looked up by the memory of the arrays it was
made from, and checked equal to them, since parameters can change in place between compilations).
"""
from __future__ import annotations

import weakref

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.rewrite import Rewriter
from ..mapped import release_pages
from ..ops.indexing import normalize_index


def _weight(node: Node) -> tuple[Node, bool] | None:
    """(constant, transposed) when ``node`` is a 2-D constant or the transpose of one."""
    if node.kind == "const" and node.spec.ndim == 2:
        return node, False
    if node.kind == "op" and node.op.name == "transpose" and node.attrs["axes"] == (1, 0) \
            and node.inputs[0].kind == "const":
        return node.inputs[0], True
    return None


def _only_reader(weight: Node, product: Node, outputs: set) -> bool:
    """Whether ``product`` reads its weight (through at most a transpose) and nothing else does, so the
    merged copy replaces the original instead of adding to it."""
    chain = [weight] + ([weight.inputs[0]] if weight.kind == "op" else [])
    reader = product
    for n in chain:
        if n in outputs or list(n.users) != [reader] or n.uses() != 1:
            return False
        reader = n
    return True


def _bias(product: Node, outputs: set) -> Node | None:
    """The single ``add`` of a 1-D constant over the last axis that is ``product``'s only reader."""
    if product in outputs or product.uses() != 1:
        return None
    add = next(iter(product.users))
    if add.op.name != "add" or add.spec != product.spec:
        return None
    other = add.inputs[1] if add.inputs[0] is product else add.inputs[0]
    if other is product or other.kind != "const" or other.shape != (product.shape[-1],):
        return None
    return add


def memory_key(a: np.ndarray) -> tuple:
    """What identifies an array's values by where they lie: two views of the same bytes, alike."""
    return a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str


_CONCATENATED: dict = {}  # (ids of the parts, axis) -> (weak refs to the parts, weak ref to the result)


def _concatenate(parts: list, axis: int) -> np.ndarray:
    """``np.concatenate(parts, axis)``, shared with earlier compilations of the same arrays."""
    # by memory, not object: an unrolled loop's ``W[k]`` is a fresh view of one array at every step
    key = (tuple(memory_key(a) for a in parts), axis)
    entry = _CONCATENATED.get(key)
    if entry is not None:
        result = entry[1]()
        if result is not None:
            bounds = np.cumsum([0] + [a.shape[axis] for a in parts])
            pieces = np.split(result, bounds[1:-1], axis=axis)
            if all(np.array_equal(p, a) for p, a in zip(pieces, parts)):
                return result
    result = np.concatenate(parts, axis=axis)
    for part in parts:
        release_pages(part)  # weights mapped from a file go back to it (the concatenation replaces them)
    for k in [k for k, (refs, r) in _CONCATENATED.items() if r() is None]:
        del _CONCATENATED[k]
    _CONCATENATED[key] = ([weakref.ref(a) for a in parts], weakref.ref(result))
    return result


def _merge(graph: Graph, products: list, outputs: set) -> None:
    weights = [_weight(p.inputs[1]) for p in products]
    transposed = weights[0][1]
    adds = [_bias(p, outputs) for p in products]
    with_bias = all(a is not None for a in adds)
    axis = 0 if transposed else 1
    data = _concatenate([w.data for w, _ in weights], axis)
    scope = products[0].scope.rsplit(".", 1)[0] if "." in products[0].scope else products[0].scope
    merged = graph.add_const(data, "merged_weight")
    rw = Rewriter(graph).before(products[0])
    right = rw.emit("transpose", [merged], {"axes": (1, 0)}, scope) if transposed else merged
    result = rw.emit("matmul", [products[0].inputs[0], right], {}, scope)
    if with_bias:
        biases = [a.inputs[1] if a.inputs[0] is p else a.inputs[0] for p, a in zip(products, adds)]
        bias = graph.add_const(_concatenate([b.data for b in biases], 0), "merged_bias")
        result = rw.emit("add", [result, bias], {}, scope)
    start = 0
    for p, a in zip(products, adds):
        width = p.shape[-1]
        piece = rw.emit("getitem", [result], {"index": normalize_index((Ellipsis, slice(start, start + width)))},
                        p.scope)
        rw.replace(a if with_bias else p, piece)
        start += width


def merge_shared_input(graph: Graph) -> Graph:
    outputs = set(graph.outputs)
    groups: dict = {}
    for n in graph.nodes:
        if n.kind == "op" and n.op.name == "matmul" and n.inputs[0].spec.ndim >= 2 \
                and n.inputs[0] is not n.inputs[1] and _weight(n.inputs[1]) is not None \
                and _weight(n.inputs[1])[0].dtype == n.dtype and _only_reader(n.inputs[1], n, outputs):
            groups.setdefault((n.inputs[0], _weight(n.inputs[1])[1], n.dtype), []).append(n)
    merged = False
    for products in groups.values():
        ends = [_bias(p, outputs) or p for p in products]
        # a result the graph returns would need a copy out of the merged buffer: leave it alone
        products = [p for p, e in zip(products, ends) if e not in outputs]
        biased = [_bias(p, outputs) is not None for p in products]
        if any(biased) and not all(biased):
            products = [p for p, b in zip(products, biased) if b]
        if len(products) < 2:
            continue
        _merge(graph, products, outputs)
        merged = True
    if merged:
        graph.remove_unused()
    return graph
