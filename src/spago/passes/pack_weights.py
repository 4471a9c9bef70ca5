"""Pack constant weights into the GEMM micro-kernel's panel layout, once, at compile time.

A float32 product whose right operand is a constant read by that kernel alone (``x @ W``, ``x @ W.T``,
a frozen layer's weight) gets its constant's data replaced by the packed copy (`spago.backend.kernels.gemm`)
and is marked ``meta["packed_b"]`` so the matmul family emits the packed GEMM. The constant keeps its
declared shape (only weights whose columns fill whole panels are packed, so the element count is the
same): the compiled function holds the packed weight only. Runs last, on the optimiser's own copy of
the graph, so the traced graph and the model keep their arrays.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph

META = "packed_b"


def pack_weights(graph: Graph) -> Graph:
    from ..backend.kernels import family_of
    from ..backend.kernels.gemm import choose_isa, pack_weight
    from ..backend.kernels.matmul import packable_weight

    isa = choose_isa()
    if isa is None:
        return graph
    users = graph.users()
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if family_of(node) != "matmul" or META in node.meta:
            continue
        found = packable_weight(node, isa)
        if found is None:
            continue
        index, (k, n), strides, start = found
        const = node.inputs[index]
        if (const.kind != "const" or users.get(const) != [node] or node.inputs.count(const) != 1
                or const in outputs or const.data.dtype != np.float32 or const.data.size != k * n):
            continue
        data = np.ascontiguousarray(const.data).reshape(-1)
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[start:], (k, n), (strides[0] * item, strides[1] * item))
        const.data = pack_weight(view, isa).reshape(const.shape)
        const.meta[META] = isa.name
        node.meta[META] = isa.name
    return graph
