"""Strided views: which chains of transposes and reshapes read a contiguous buffer without copying.

A view is a shape with element strides over its root buffer. A transpose permutes strides; a reshape
keeps a view only where each group of merged or split axes was contiguous (NumPy's no-copy reshape).
"""
from __future__ import annotations

from typing import Sequence

from ..ir.graph import Node

VIEW_OPS = ("transpose", "reshape")


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


def view_of(node: Node, stop: set | None = None) -> tuple[Node, tuple, tuple] | None:
    """(root, shape, strides) reading ``node`` through its chain of view ops, or None if a copy is needed.

    The chain is followed while nodes are view ops (and not in ``stop``)."""
    chain = []
    n = node
    while n.kind == "op" and n.op.name in VIEW_OPS and (stop is None or n in stop):
        chain.append(n)
        n = n.inputs[0]
    shape, strides = n.shape, contiguous(n.shape)
    for v in reversed(chain):
        if v.op.name == "transpose":
            axes = v.attrs["axes"]
            shape, strides = tuple(shape[a] for a in axes), tuple(strides[a] for a in axes)
        else:
            new = reshape_strides(shape, strides, v.attrs["shape"])
            if new is None:
                return None
            shape, strides = v.attrs["shape"], new
    return n, tuple(shape), tuple(strides)


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
