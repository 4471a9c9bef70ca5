"""Pack constant weights into the GEMM micro-kernel's panel layout, once, at compile time.

A float32 product whose right operand is a constant, or a whole slice of one (``x @ W``, ``x @ W.T``,
``z @ W[k]`` of a stacked weight whose slices all feed such products), gets its range of the constant's
data replaced by the packed copy (`spago.lower.gemm`) and is marked ``meta["packed_b"]`` so the matmul
family emits the packed GEMM. The constant keeps its declared shape (only weights whose columns fill
whole panels are packed, so the element count is the same): the compiled function holds the packed weight only. The constant's ``meta["stored_as"]`` records
the layout, so the interpreter still reads the logical weight. Runs last, on the optimiser's own copy of
the graph, so the traced graph and the model keep their arrays.

**Loop-invariant weights of a loop.** A ``scan`` whose body multiplies few rows (an RNN step at batch 1)
by a captured operand that is not a constant (a weight passed in, a training step's parameter) reads that
weight from memory at every step, where it lies — and NumPy aligns arrays to 16 bytes, not 64 (a large
one typically starts 16 bytes past a page), so every 64-byte vector load of it may straddle two cache
lines (`bench/lstm.py`, 50 steps at batch 1: ~1.35x the time of aligned weights, as a loop or unrolled). Such an operand is
packed once per call, before the first step, into the scan's scratch (``node.meta[LOOP_PACKED]``; aligned,
panel order) and the body's products read it through the packed GEMM's few-row path; the traced graph,
the interpreter and the shadow check still see the logical operand.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..layout import aligned_empty
from ..lower.families import family_of
from ..lower.gemm import PackedLayout, choose_isa, pack_weight
from ..lower.matmul import LOOP_PACKED, PACKED as META, operand_views, packable_weight
from ..ops.scan import scan_op

STORED = "stored_as"   # constant meta: its layout (the interpreter reads the logical array through it)
LOOP_MIN_STEPS = 4     # a shorter loop reads its weight too few times to repay packing it


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
        found: list | None = []
        for const in consts:
            mine = _product_views(const, users, outputs, isa)
            if mine is None:
                found = None
                break
            found += mine
        views = sorted({v for _, v in found}) if found else []
        if not views or not _disjoint(views, consts[0].data.size):
            continue
        data = aligned_empty(consts[0].data.nbytes).view(np.float32)  # the micro-kernel's loads, aligned
        data[...] = np.asarray(consts[0].data, dtype=np.float32).reshape(-1)
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
    for node in graph.nodes:
        if node.op is scan_op:
            pack_loop_operands(node, isa)
    return graph


def _product_views(value, users: dict, outputs: set, isa) -> list | None:
    """[(product, (view...))] when every reader of ``value`` is a float32 product the packed GEMM can run
    with ``value`` (through a 2-d view) as its right operand, else None."""
    readers = users.get(value, [])
    if value in outputs or not readers:
        return None
    found = []
    for node in readers:
        view = packable_weight(node, isa) if family_of(node) == "matmul" else None
        if view is None or node.inputs.count(value) != 1 or node.inputs[view[0]] is not value:
            return None
        found.append((node, view[1:]))
    return found


def pack_loop_operands(node, isa) -> None:
    """Choose the captured operands of scan ``node`` its loop packs once before its first step: float32
    weights (not constants: those are packed above, in the body) read only as the right operand of
    products of fewer rows than one tile of the micro-kernel, in a loop of at least `LOOP_MIN_STEPS`."""
    body, nc = node.attrs["body"], node.attrs["num_consts"]
    if node.attrs["length"] < LOOP_MIN_STEPS:
        return
    users, outputs = body.users(), set(body.outputs)
    chosen = {}
    for k in range(nc):
        inner = body.inputs[k]
        if np.dtype(inner.dtype) != np.float32:
            continue
        found = _product_views(inner, users, outputs, isa)
        if not found or any(_rows(p) >= isa.mr for p, _ in found):
            continue
        views = sorted({v for _, v in found})
        if any(strides[1] != 1 for _, strides, _ in views) or \
                not _disjoint(views, int(np.prod(inner.shape, dtype=np.int64))):
            continue
        for p, _ in found:
            p.meta[META] = isa.name
        chosen[k] = PackedLayout(isa.name, tuple(views))
    if chosen:
        node.meta[LOOP_PACKED] = chosen
        node.meta.pop("scan_plan", None)


def _rows(product) -> int:
    """Rows of a matmul kernel's product (its batch axes folded in)."""
    mm = operand_views(product)[0]
    return int(np.prod(mm.shape[:-1], dtype=np.int64))


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
