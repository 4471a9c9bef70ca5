"""Batch independent products that share a weight: ``x_t @ W`` for every step t of an unrolled RNN
becomes one ``X @ W`` whose rows are sliced back out, so one large product replaces many
matrix-vector products that each stream all of W from memory.

Only products whose left operand is available from the start (a view of an input, parameter or
constant) are batched, so the combined product can run before any of its users. When those operands
are consecutive rows of one buffer the combined operand is itself a view; otherwise they are
concatenated.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ir.rewrite import Rewriter
from ..ops.indexing import normalize_index
from ..lower.views import view_of


def early_rows(a: Node) -> tuple | None:
    """(root, row offset) if ``a`` is a 2-D block of contiguous rows of an input/param/const, else None."""
    view = view_of(a)
    if view is None or a.spec.ndim != 2:
        return None
    root, shape, strides, offset = view
    if root.kind not in ("input", "param", "const"):
        return None
    rows, width = shape
    if (strides[1] != 1 and width > 1) or (strides[0] != width and rows > 1) or offset % width:
        return None
    return root, offset // width


def batch_matmul(graph: Graph) -> Graph:
    groups: dict = {}
    rw = Rewriter(graph)
    for n in graph.nodes:
        if n.kind == "op" and n.op.name == "matmul" and n.inputs[1].kind in ("input", "param", "const") \
                and n.inputs[0].spec.ndim == 2 and n.inputs[1].spec.ndim == 2:
            groups.setdefault(n.inputs[1], []).append(n)
    for weight, products in groups.items():
        early = [(p, early_rows(p.inputs[0])) for p in products]
        early = [(p, r) for p, r in early if r is not None]
        if len(early) < 2:
            continue
        width = weight.shape[0]
        rw.position = min(graph.nodes.index(p) for p, _ in early)  # before the first of them
        scope = early[0][0].scope
        roots = {r[0] for _, r in early}
        ordered = sorted(early, key=lambda pr: pr[1][1])
        starts = [r[1] for _, r in ordered]
        sizes = [p.inputs[0].shape[0] for p, _ in ordered]
        consecutive = len(roots) == 1 and all(s + z == t for s, z, t in zip(starts, sizes, starts[1:]))
        if consecutive:
            root = next(iter(roots))
            flat = rw.emit("reshape", [root], {"shape": (root.spec.size // width, width)}, scope)
            stacked = rw.emit("getitem", [flat], {"index": normalize_index(slice(starts[0], starts[-1] + sizes[-1]))},
                              scope)
            first = starts[0]
        else:
            stacked = rw.emit("concat", [p.inputs[0] for p, _ in ordered], {"axis": 0}, scope)
            first = 0
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
        product = rw.emit("matmul", [stacked, weight], {}, scope)
        for (p, _), start, size in zip(ordered, starts, sizes):
            rows = rw.emit("getitem", [product], {"index": normalize_index(slice(start - first, start - first + size))},
                           p.scope)
            rw.replace(p, rows)
    graph.remove_unused()
    return graph
