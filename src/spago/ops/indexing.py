"""Indexing: ``getitem`` (ints, slices, negative steps, ellipsis, None, integer arrays), ``take``/``gather``
(embedding lookup) with its scatter-add gradient, and ``one_hot``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError, SpagoError
from ._types import DTypeLike, TensorLike
from .registry import Op, Spec, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


# An index is stored as a hashable tuple of entries, so graphs can compare and print it:
#   ("int", i) · ("slice", start, stop, step) · ("newaxis",) · ("ellipsis",) · ("array", shape, flat values)

def _entry(k):
    from ..tensor import Tensor

    if k is None:
        return ("newaxis",)
    if k is Ellipsis:
        return ("ellipsis",)
    if isinstance(k, slice):
        parts = [None if v is None else _as_int(v) for v in (k.start, k.stop, k.step)]
        if parts[2] == 0:
            raise ShapeError("getitem: slice step cannot be zero")
        return ("slice", *parts)
    if isinstance(k, (bool, np.bool_)):
        raise SpagoError("getitem: a bool scalar is not an index")
    if isinstance(k, (int, np.integer)):
        return ("int", int(k))
    if isinstance(k, Tensor):
        k = k.numpy()
    a = np.asarray(k)
    if a.dtype == bool:
        raise SpagoError("getitem: boolean masks give data-dependent shapes; use where() or integer indices")
    if a.dtype.kind not in "iu" and a.size:
        raise DTypeError(f"getitem: index arrays must hold integers, got {a.dtype.name}")
    a = a.astype(np.int64)
    return ("array", a.shape, tuple(int(v) for v in a.ravel()))


def _as_int(v) -> int:
    from ..tensor import Tensor

    if isinstance(v, Tensor):
        v = v.item()
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise DTypeError(f"getitem: slice bounds must be ints, got {v!r}")
    return int(v)


def normalize_index(key) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    entries = tuple(_entry(k) for k in key)
    if sum(e[0] == "ellipsis" for e in entries) > 1:
        raise ShapeError("getitem: an index can only have a single ellipsis")
    return entries


def numpy_index(entries: tuple) -> tuple:
    """The NumPy index that a stored index stands for."""
    out = []
    for e in entries:
        kind = e[0]
        if kind == "int":
            out.append(e[1])
        elif kind == "slice":
            out.append(slice(*e[1:]))
        elif kind == "newaxis":
            out.append(None)
        elif kind == "ellipsis":
            out.append(Ellipsis)
        else:
            out.append(np.array(e[2], dtype=np.int64).reshape(e[1]))
    return tuple(out)


def _getitem_spec(x: Spec, index: tuple) -> Spec:
    probe = np.broadcast_to(np.empty((), dtype=bool), x.shape)
    try:
        shape = probe[numpy_index(index)].shape
    except IndexError as exc:
        raise ShapeError(f"index {describe_index(index)} does not fit shape {x.shape}: {exc}") from None
    return Spec(shape, x.dtype)


def describe_index(index: tuple) -> str:
    parts = []
    for e in index:
        if e[0] == "int":
            parts.append(str(e[1]))
        elif e[0] == "slice":
            a, b, c = ("" if v is None else str(v) for v in e[1:])
            parts.append(f"{a}:{b}" + (f":{c}" if c else ""))
        elif e[0] == "newaxis":
            parts.append("None")
        elif e[0] == "ellipsis":
            parts.append("...")
        else:
            parts.append(f"<int array {e[1]}>")
    return "[" + ", ".join(parts) + "]"


def _getitem_grad(g, y, x, index):
    return (bind(unindex_op, [g], {"index": index, "shape": x.shape}),)


def _unindex_kernel(g, index, shape):
    out = np.zeros(shape, dtype=g.dtype)
    idx = numpy_index(index)
    if any(e[0] == "array" for e in index):
        np.add.at(out, idx, g)  # repeated integer indices accumulate
    else:
        out[idx] = g
    return out


getitem_op = register(Op("getitem", _getitem_spec, lambda x, index: np.array(x[numpy_index(index)]),
                         _getitem_grad, "shape", traits={"view"}))
unindex_op = register(Op("unindex", lambda g, index, shape: Spec(shape, g.dtype), _unindex_kernel,
                         lambda g, y, x, index, shape: (getitem(g, index),), "opaque",
                         doc="Scatter-add ``g`` into zeros of ``shape`` at ``index``: the gradient of getitem."))


def getitem(x: TensorLike, key: Any) -> Tensor:
    """``x[key]`` with NumPy semantics (basic and integer-array indexing)."""
    from ..tensor import Tensor
    from .elementwise import _t

    x = _t(x)
    if isinstance(key, Tensor) and not key.is_concrete:
        return take(x, key, axis=0)
    return bind(getitem_op, [x], {"index": normalize_index(key)})


# ----------------------------------------------------------------------------- take / scatter_add

def _take_spec(x: Spec, idx: Spec, axis: int, negative: bool = True) -> Spec:
    if not dtypes.is_int(idx.dtype):
        raise DTypeError(f"indices must be integers, got {idx.dtype.name}")
    return Spec(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


def _take_grad(g, y, x, idx, axis, negative=True):
    return bind(scatter_add_op, [g, idx], {"axis": axis, "size": x.shape[axis]}), None


def _scatter_add_spec(g: Spec, idx: Spec, axis: int, size: int) -> Spec:
    return Spec(g.shape[:axis] + (size,) + g.shape[axis + idx.ndim:], g.dtype)


def _scatter_add_kernel(g, idx, axis, size):
    out_shape = g.shape[:axis] + (size,) + g.shape[axis + idx.ndim:]
    out = np.zeros(out_shape, dtype=g.dtype)
    np.add.at(out, (slice(None),) * axis + (idx,), g)
    return out


def _take_kernel(x, idx, axis, negative=True):
    """np.take, except that an index out of range always raises (negatives count from the end only when
    ``negative``; an embedding lookup has no negative ids)."""
    n = x.shape[axis]
    if idx.size and (int(idx.min()) < (-n if negative else 0) or int(idx.max()) >= n):
        bad = int(idx.max()) if int(idx.max()) >= n else int(idx.min())
        raise ShapeError(f"take: index {bad} is out of range for axis {axis} of size {n} (shape {x.shape})")
    return np.take(x, idx, axis=axis)


take_op = register(Op("take", _take_spec, _take_kernel, _take_grad, "opaque"))
scatter_add_op = register(Op("scatter_add", _scatter_add_spec, _scatter_add_kernel,
                             lambda g, y, gg, idx, axis, size: (take(g, idx, axis), None), "opaque",
                             doc="Add rows of ``g`` into zeros at ``idx`` along ``axis``: the gradient of take."))


def take(x: TensorLike, indices: TensorLike, axis: int = 0, negative: bool = True) -> Tensor:
    """Pick entries along ``axis`` by integer ``indices`` (an embedding lookup is ``take(table, ids)``).

    Indices must be in ``[-n, n)`` (``[0, n)`` when not ``negative``); eager calls check at once, compiled
    kernels check every call and the runtime raises. The gradient scatter-adds into the rows that were
    picked, so repeated ids accumulate.
    """
    from ._util import normalize_axis
    from .elementwise import _t

    x, idx = _t(x), _t(indices)
    axis = normalize_axis(axis, x.ndim, "take")
    if idx.is_concrete and dtypes.is_int(idx.dtype) and idx.size:
        n = x.shape[axis]
        lo, hi = int(idx.numpy().min()), int(idx.numpy().max())
        if lo < (-n if negative else 0) or hi >= n:
            bad = hi if hi >= n else lo
            raise ShapeError(f"take: index {bad} is out of range for axis {axis} of size {n} (shape {x.shape})")
    return bind(take_op, [x, idx], {"axis": axis} if negative else {"axis": axis, "negative": False})


gather = take


def embedding(table: TensorLike, ids: TensorLike) -> Tensor:
    """Rows of ``table`` for integer ``ids`` of any shape."""
    return take(table, ids, axis=0, negative=False)


# ----------------------------------------------------------------------------- one_hot

def _one_hot_spec(idx: Spec, depth: int, dtype) -> Spec:
    if not dtypes.is_int(idx.dtype):
        raise DTypeError(f"indices must be integers, got {idx.dtype.name}")
    return Spec(idx.shape + (depth,), dtype)


one_hot_op = register(Op("one_hot", _one_hot_spec,
                         lambda idx, depth, dtype: (idx[..., None] == np.arange(depth)).astype(dtype), None, "opaque"))


def one_hot(indices: TensorLike, depth: int, dtype: DTypeLike="float32") -> Tensor:
    """One-hot vectors of length ``depth`` along a new last axis; not differentiable."""
    from .elementwise import _t

    idx = _t(indices)
    depth = int(depth)
    if depth <= 0:
        raise ShapeError(f"one_hot: depth must be positive, got {depth}")
    if idx.is_concrete and idx.size and dtypes.is_int(idx.dtype):
        lo, hi = int(idx.numpy().min()), int(idx.numpy().max())
        if lo < 0 or hi >= depth:
            raise ShapeError(f"one_hot: index {hi if hi >= depth else lo} is out of range for depth {depth}")
    return bind(one_hot_op, [idx], {"depth": depth, "dtype": dtypes.as_dtype(dtype)})
