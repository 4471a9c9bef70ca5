"""Small helpers shared by the op modules: shape rules and the broadcasting reduction of gradients."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Sequence

import numpy as np

from .. import dtypes
from ..errors import AxisError, DTypeError, ShapeError, SpagoError
from .registry import Spec


def float_spec(x: Spec, **_) -> Spec:
    """Shape rule of a unary elementwise op on floats."""
    if not dtypes.is_float(x.dtype):
        raise DTypeError(f"expected a floating tensor (float32 or float64), got {x.dtype.name}")
    return x


def broadcast_shapes(*shapes: Sequence[int]) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError("shapes " + " and ".join(str(tuple(s)) for s in shapes) + " do not broadcast") from None


def normalize_axis(axis: int, ndim: int, op: str = "") -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise AxisError(f"{op + ': ' if op else ''}axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1) or (ndim == 0 and axis not in (0, -1)):
        raise AxisError(f"{op + ': ' if op else ''}axis {axis} is out of range for a tensor of rank {ndim}")
    return int(axis) % max(ndim, 1)


def normalize_axes(axis: Any, ndim: int, op: str = "") -> tuple:
    """``None`` → all axes; int or sequence → sorted tuple of non-negative axes (no repeats)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = tuple(sorted(normalize_axis(a, ndim, op) for a in axes))
    if len(set(out)) != len(out):
        raise AxisError(f"{op + ': ' if op else ''}repeated axis in {axis!r}")
    return out


def reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def sum_to(g, shape: tuple):
    """Sum a broadcast gradient back down to ``shape`` (the inverse of broadcasting)."""
    from . import reshape, sum as sum_

    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, d in enumerate(shape) if d == 1 and g.shape[i + lead] != 1)
    out = sum_(g, axis=axes, keepdims=True) if axes else g
    return reshape(out, shape)


# PyTorch's keyword names -> spago's (NumPy's), accepted by every op function that takes the latter
TORCH_NAMES = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis"}


def rename_keywords(kwargs: dict, accepted: Any, owner: str) -> dict:
    """``kwargs`` with PyTorch's names (``dim``, ``keepdim``, ``start_dim``) turned into spago's where
    ``accepted`` holds spago's name; giving both names is an error."""
    if not any(k in TORCH_NAMES for k in kwargs):
        return kwargs
    out = dict(kwargs)
    for theirs, ours in TORCH_NAMES.items():
        if theirs in out and ours in accepted:
            if ours in out:
                raise SpagoError(f"{owner}: give {ours}= or {theirs}=, not both")
            out[ours] = out.pop(theirs)
    return out


def accept_torch_names(fn: Callable) -> Callable:
    """``fn`` also taking PyTorch's keyword names for its ``axis``/``keepdims``/``start_axis`` (one wrapper
    for the whole op API, applied in ``spago.ops``); functions without those parameters come back as they are."""
    params = inspect.signature(fn).parameters
    if not any(ours in params for ours in TORCH_NAMES.values()):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **(rename_keywords(kwargs, params, fn.__name__) if kwargs else kwargs))

    return wrapper
