"""Strided views: which chains of transposes, reshapes and basic slices read a buffer without copying.

A view is a shape with element strides and a start offset over its root buffer. A transpose permutes
strides; a basic ``getitem`` (ints, slices with any step, None, ellipsis) picks a start and rescales
strides; a reshape keeps a view only where each group of merged or split axes was contiguous (NumPy's
no-copy reshape).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir.graph import Node

def is_view(node: Node) -> bool:
    """A node whose value is its input's memory read differently (a basic slice, not a gather)."""
    if node.kind != "op" or not node.op.view:
        return False
    return node.op.name != "getitem" or not any(e[0] == "array" for e in node.attrs["index"])


def index_view(shape: tuple, strides: tuple, index: tuple) -> tuple[tuple, tuple, int]:
    """(shape, element strides, offset change) of a basic index applied to a strided view."""
    from ..ops.indexing import numpy_index

    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=shape, strides=strides)
    view = probe[numpy_index(index)]
    offset = view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return view.shape, view.strides, offset


def contiguous(shape: Sequence[int]) -> tuple:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def reshape_strides(shape: tuple, strides: tuple, new_shape: tuple) -> tuple | None:
    """Strides that read ``shape``/``strides`` as ``new_shape`` without a copy, or None."""
    old = [(d, s) for d, s in zip(shape, strides) if d != 1]
    new = [d for d in new_shape if d != 1]
    out: list = []
    i = j = 0
    while i < len(old) and j < len(new):
        # grow a group of old axes and a group of new axes until their sizes match
        oi, oj = i + 1, j + 1
        osize, nsize = old[i][0], new[j]
        while osize != nsize:
            if osize < nsize:
                if oi >= len(old):
                    return None
                osize *= old[oi][0]
                oi += 1
            else:
                if oj >= len(new):
                    return None
                nsize *= new[oj]
                oj += 1
        for k in range(i, oi - 1):  # the old group must be contiguous
            if old[k][1] != old[k + 1][1] * old[k + 1][0]:
                return None
        stride = old[oi - 1][1]
        group = []
        for d in reversed(new[j:oj]):
            group.append(stride)
            stride *= d
        out.extend(reversed(group))
        i, j = oi, oj
    if i != len(old) or j != len(new):
        return None
    it = iter(out)
    return tuple(next(it) if d != 1 else 0 for d in new_shape)


def view_of(node: Node, stop: set | None = None) -> tuple[Node, tuple, tuple, int] | None:
    """(root, shape, strides, offset) reading ``node`` through its chain of views, or None if a copy is
    needed. The chain is followed while nodes are views (and, if given, in ``stop``)."""
    chain = []
    n = node
    while is_view(n) and (stop is None or n in stop):
        chain.append(n)
        n = n.inputs[0]
    shape, strides, offset = n.shape, contiguous(n.shape), 0
    for v in reversed(chain):
        if v.op.name == "transpose":
            axes = v.attrs["axes"]
            shape, strides = tuple(shape[a] for a in axes), tuple(strides[a] for a in axes)
        elif v.op.name == "getitem":
            shape, strides, delta = index_view(shape, strides, v.attrs["index"])
            offset += delta
        else:
            new = reshape_strides(shape, strides, v.attrs["shape"])
            if new is None:
                return None
            shape, strides = v.attrs["shape"], new
    return n, tuple(shape), tuple(strides), offset


def blas_layout(rows: int, cols: int, row_stride: int, col_stride: int) -> tuple[bool, int] | None:
    """(transposed, leading dimension) for a BLAS operand with these strides, or None if BLAS cannot read it.

    Row-major with unit column stride is "not transposed" (leading dimension = row stride); unit row stride
    is "transposed" (leading dimension = column stride). A single row or column fits either way."""
    if rows <= 1:
        row_stride = max(cols, 1) if col_stride == 1 else 1
    if cols <= 1:
        col_stride = 1 if row_stride != 1 else max(rows, 1)
    if col_stride == 1 and row_stride >= max(cols, 1):
        return False, row_stride
    if row_stride == 1 and col_stride >= max(rows, 1):
        return True, col_stride
    return None


def view_chains_feeding(group: set, outputs: set, members: set | None = None) -> set:
    """Chains of views that feed ``members`` (default: the whole group), are read nowhere outside the
    group, and start from a materialised value: a kernel can read them in place through their strides."""
    found: set = set()
    for m in members if members is not None else group:
        for i in m.inputs:
            chain, v = set(), i
            while is_view(v) and v not in outputs and all(u in group or u in chain for u in v.users):
                chain.add(v)
                v = v.inputs[0]
            if chain and view_of(i, stop=chain) is not None:
                found |= chain
    return found


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int], strides: Sequence[int] | None = None) -> tuple:
    """Element strides that read a ``shape`` buffer as if broadcast to ``out_shape`` (0 on broadcast axes)."""
    strides = contiguous(shape) if strides is None else tuple(strides)
    lead = len(out_shape) - len(shape)
    out = [0] * lead
    for d, s, o in zip(shape, strides, out_shape[lead:]):
        out.append(0 if d == 1 and o != 1 else s)
    return tuple(out)


def collapse(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[tuple, list]:
    """Merge adjacent axes that every operand walks contiguously, and drop axes of size 1."""
    dims = [(n, [s[k] for s in strides]) for k, n in enumerate(shape) if n != 1]
    merged: list = []
    for n, ss in dims:
        if merged:
            pn, ps = merged[-1]
            if all(p == s * n for p, s in zip(ps, ss)):
                merged[-1] = (pn * n, ss)
                continue
        merged.append((n, ss))
    new_shape = tuple(n for n, _ in merged)
    new_strides = [tuple(ss[k] for _, ss in merged) for k in range(len(strides))]
    return new_shape, new_strides


def outer_extent(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> int:
    """Trip count of the outermost loop ``strided_nest`` would emit (what a parallel split divides)."""
    collapsed, _ = collapse(shape, strides)
    return collapsed[0] if collapsed else 1
