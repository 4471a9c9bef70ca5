"""Pack constant weights into the GEMM micro-kernel's panel layout, once, at compile time.

A float32 product whose right operand is a constant, or a whole slice of one (``x @ W``, ``x @ W.T``,
``z @ W[k]`` of a stacked weight whose slices all feed such products), gets its range of the constant's
data replaced by the packed copy (`spago.lower.gemm`; allocated 64-byte aligned, so no vector load of the
micro-kernel straddles two cache lines) and is marked ``meta["packed_b"]`` so the matmul
family emits the packed GEMM. The constant keeps its declared shape (only weights whose columns fill
whole panels are packed, so the element count is the same): the compiled function holds the packed weight only. The constant's ``meta["stored_as"]`` records
the layout, so the interpreter still reads the logical weight. Runs last, on the optimiser's own copy of
the graph, so the traced graph and the model keep their arrays.

Packing does not depend on the product's rows, so every specialisation of one model (batch sizes, a
pipeline's bucket lengths) shares one packed array per weight: packed arrays are looked up by their
source's bytes (a hash) and layout, and held weakly, so the last compiled function using one frees it.
A source mapped from a weights file gives its pages back once packed (`spago.mapped.release_pages`), so
a model loaded that way holds each packed weight once, not beside its original.
"""
from __future__ import annotations

import hashlib
import threading
import weakref

import numpy as np

from ..ir.graph import Graph
from ..layout import aligned_empty
from ..lower.families import family_of
from ..lower.gemm import PackedLayout, choose_isa, pack_weight
from ..lower.matmul import PACKED as META, packable_weight
from ..mapped import byte_chunks, release_pages

STORED = "stored_as"   # constant meta: its layout (the interpreter reads the logical array through it)


def pack_weights(graph: Graph) -> Graph:
    """Pack each constant all of whose readers are packable float32 products (see the module doc)."""
    isa = choose_isa()
    if isa is None:
        return graph
    outputs = set(graph.outputs)
    # constants sharing one array (an unrolled loop's merged weight, one per step) are packed once
    shared: dict = {}
    for const in graph.consts:
        if const.data is not None and const.data.dtype == np.float32 and STORED not in const.meta:
            shared.setdefault(id(const.data), []).append(const)
    for consts in shared.values():
        found = []
        for const in consts:
            readers = list(const.users)
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
        data = packed(consts[0].data, tuple(views), isa)
        for node, _ in found:
            node.meta[META] = isa.name
        layout = PackedLayout(isa.name, tuple(views))
        for const in consts:
            const.data = data.reshape(const.shape)
            const.meta[STORED] = layout
    return graph


_PACKED: dict = {}  # (ISA, views, shape, hash of the source's bytes) -> (weak ref to the memory's owner, offset)
_LOCK = threading.Lock()


def packed(source: np.ndarray, views: tuple, isa) -> np.ndarray:
    """``source`` (float32) with each view's range in `pack_weight`'s layout, flat; shared with every
    earlier compilation that packed the same bytes the same way while one of them is alive."""
    contiguous = np.ascontiguousarray(source)
    h = hashlib.blake2b(digest_size=20)
    for piece in byte_chunks(contiguous):
        h.update(piece)
    key = (isa.name, views, source.shape, h.hexdigest())
    with _LOCK:
        ref, offset = _PACKED.get(key, (None, 0))
        owner = ref() if ref is not None else None
    if owner is not None:
        release_pages(source)
        data = owner.reshape(-1).view(np.uint8)[offset:offset + contiguous.nbytes].view(np.float32)
        data.flags.writeable = False
        return data
    data = aligned_empty(contiguous.nbytes).view(np.float32)  # NumPy's own would be 16-byte aligned
    data[...] = contiguous.reshape(-1)
    del contiguous
    item = data.itemsize
    for (k, n), strides, start in views:
        view = np.lib.stride_tricks.as_strided(data[start:], (k, n), (strides[0] * item, strides[1] * item))
        data[start:start + k * n] = pack_weight(view.copy(), isa).reshape(-1)
    data.flags.writeable = False  # shared by compiled functions: nobody writes it in place
    release_pages(source)  # a weight mapped from its file: read once, its pages go back (spago.mapped)
    # held by the owner of its memory (views in the graphs keep that alive), so that ``data`` may be a view
    owner = data if data.base is None else data.base
    offset = data.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    with _LOCK:
        for dead in [k for k, (r, _) in _PACKED.items() if r() is None]:
            del _PACKED[dead]
        _PACKED[key] = (weakref.ref(owner), offset)
    return data


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
