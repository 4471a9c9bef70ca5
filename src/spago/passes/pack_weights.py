"""Pack constant weights into the GEMM micro-kernel's panel layout, once, at compile time.

A float32 product whose right operand is a constant, or a whole slice of one (``x @ W``, ``x @ W.T``,
``z @ W[k]`` of a stacked weight whose slices all feed such products), gets its range of the constant's
data replaced by the packed copy (`spago.lower.gemm`) and is marked ``meta["packed_b"]`` so the matmul
family emits the packed GEMM. The constant keeps its declared shape (only weights whose columns fill
whole panels are packed, so the element count is the same): the compiled function holds the packed weight only. The constant's ``meta["stored_as"]`` records
the layout, so the interpreter still reads the logical weight. Runs last, on the optimiser's own copy of
the graph, so the traced graph and the model keep their arrays.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..lower.families import family_of
from ..lower.gemm import PackedLayout, aligned_copy, choose_isa, pack_weight
from ..lower.matmul import PACKED as META, packable_weight

STORED = "stored_as"   # constant meta: its layout (the interpreter reads the logical array through it)


def pack_weights(graph: Graph) -> Graph:
    """Pack each constant all of whose readers are packable float32 products (see the module doc)."""
    isa = choose_isa()
    if isa is None:
        return graph
    outputs = set(graph.outputs)
    users = graph.users()
    # constants sharing one array (an unrolled loop's merged weight, one per step) are packed once
    shared: dict = {}
    for const in graph.consts:
        if const.data is not None and const.data.dtype == np.float32 and STORED not in const.meta:
            shared.setdefault(id(const.data), []).append(const)
    for consts in shared.values():
        found = []
        for const in consts:
            readers = users.get(const, [])
            if const in outputs or not readers:
                found = None
                break
            for node in readers:
                view = packable_weight(node, isa) if family_of(node) == "matmul" else None
                if view is None or node.inputs.count(const) != 1 or node.inputs[view[0]] is not const:
                    found = None
                    break
                found.append((node, view[1:]))
            if found is None:
                break
        views = sorted({v for _, v in found}) if found else []
        if not views or not _disjoint(views, consts[0].data.size):
            continue
        data = aligned_copy(np.asarray(consts[0].data, dtype=np.float32)).reshape(-1)
        item = data.itemsize
        for (k, n), strides, start in views:
            view = np.lib.stride_tricks.as_strided(data[start:], (k, n), (strides[0] * item, strides[1] * item))
            data[start:start + k * n] = pack_weight(view.copy(), isa).reshape(-1)
        for node, _ in found:
            node.meta[META] = isa.name
        layout = PackedLayout(isa.name, tuple(views))
        for const in consts:
            const.data = data.reshape(const.shape)
            const.meta[STORED] = layout
    return graph


def _disjoint(views: list, size: int) -> bool:
    """Whether each view ((k, n), strides, start) is a whole, contiguous range of the constant (``W``,
    ``W.T``, ``W[i]`` of a stacked weight) and no two overlap: then every range is packed where it lies."""
    ranges = []
    for (k, n), strides, start in views:
        if tuple(strides) not in ((n, 1), (1, k)) or start < 0 or start + k * n > size:
            return False
        ranges.append((start, start + k * n))
    ranges.sort()
    return all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
