"""Shape primitives: reshape, transpose, broadcast_to, concat, pad; and composites expand_dims, squeeze, stack, split."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DTypeError, ShapeError
from ._types import Axis, ShapeLike, TensorLike
from ._util import broadcast_shapes, normalize_axis, sum_to
from .registry import Op, Spec, bind, register

if TYPE_CHECKING:
    from ..tensor import Tensor


def _t(x):
    from .elementwise import _t

    return _t(x)


# ----------------------------------------------------------------------------- reshape

def _reshape_spec(x: Spec, shape: tuple) -> Spec:
    return Spec(shape, x.dtype)


reshape_op = register(Op("reshape", _reshape_spec, lambda x, shape: np.reshape(x, shape),
                         lambda g, y, x, shape: (reshape(g, x.shape),), "shape",
                         traits={"view", "alias"}))


def _resolve_shape(shape, size: int, old: tuple) -> tuple:
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"reshape: invalid target shape {shape}")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape {old} (size {size}) into {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ShapeError(f"reshape: cannot reshape {old} (size {size}) into {shape}")
    return shape


def reshape(x: TensorLike, *shape: int | Sequence[int]) -> Tensor:
    """Same values, new shape; one dimension may be -1."""
    x = _t(x)
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    shape = _resolve_shape(shape, x.size, x.shape)
    if shape == x.shape:
        return x
    return bind(reshape_op, [x], {"shape": shape})


# ----------------------------------------------------------------------------- transpose

def _transpose_spec(x: Spec, axes: tuple) -> Spec:
    return Spec(tuple(x.shape[a] for a in axes), x.dtype)


def _transpose_grad(g, y, x, axes):
    return (transpose(g, tuple(int(i) for i in np.argsort(axes))),)


transpose_op = register(Op("transpose", _transpose_spec, lambda x, axes: np.transpose(x, axes), _transpose_grad,
                           "shape", traits={"view"}))


def transpose(x: TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """Permute axes (default: reverse them)."""
    x = _t(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(normalize_axis(a, x.ndim, "transpose") for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    if axes == tuple(range(x.ndim)):
        return x
    return bind(transpose_op, [x], {"axes": axes})


def permute(x: TensorLike, *axes: int | Sequence[int]) -> Tensor:
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = tuple(axes[0])
    return transpose(x, axes)


def swapaxes(x: TensorLike, a: int, b: int) -> Tensor:
    x = _t(x)
    axes = list(range(x.ndim))
    a, b = normalize_axis(a, x.ndim, "swapaxes"), normalize_axis(b, x.ndim, "swapaxes")
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


# ----------------------------------------------------------------------------- broadcast_to

def _broadcast_spec(x: Spec, shape: tuple) -> Spec:
    if broadcast_shapes(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast {x.shape} to {shape}")
    return Spec(shape, x.dtype)


broadcast_to_op = register(Op("broadcast_to", _broadcast_spec, lambda x, shape: np.broadcast_to(x, shape).copy(),
                              lambda g, y, x, shape: (sum_to(g, x.shape),), "elementwise"))


def broadcast_to(x: TensorLike, shape: ShapeLike) -> Tensor:
    """Repeat along axes of size 1 (and new leading axes) to reach ``shape``."""
    x = _t(x)
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    return bind(broadcast_to_op, [x], {"shape": shape})


def expand_dims(x: TensorLike, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis``."""
    x = _t(x)
    axis = normalize_axis(axis, x.ndim + 1, "expand_dims")
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x: TensorLike, axis: Axis | None=None) -> Tensor:
    """Remove axes of size 1 (all of them, or the given ones, which must have size 1)."""
    from ._util import normalize_axes

    x = _t(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def flatten(x: TensorLike, start_axis: int = 0) -> Tensor:
    x = _t(x)
    start_axis = normalize_axis(start_axis, x.ndim, "flatten") if x.ndim else 0
    return reshape(x, x.shape[:start_axis] + (-1,))


# ----------------------------------------------------------------------------- concat / stack / split

def _concat_spec(*xs: Spec, axis: int) -> Spec:
    first = xs[0]
    for i, x in enumerate(xs[1:], 1):
        if x.dtype != first.dtype:
            raise DTypeError(f"operand {i} has dtype {x.dtype.name}, operand 0 has {first.dtype.name}")
        if x.ndim != first.ndim or any(d != e for k, (d, e) in enumerate(zip(x.shape, first.shape)) if k != axis):
            raise ShapeError(f"operand {i} of shape {x.shape} does not match {first.shape} off axis {axis}")
    return Spec(first.shape[:axis] + (sum(x.shape[axis] for x in xs),) + first.shape[axis + 1:], first.dtype)


def _concat_grad(g, y, *xs, axis):
    from .indexing import getitem

    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        grads.append(getitem(g, (slice(None),) * axis + (slice(start, stop),)))
        start = stop
    return tuple(grads)


concat_op = register(Op("concat", _concat_spec, lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_grad, "shape"))


def concat(tensors: Sequence, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    xs = [_t(x) for x in tensors]
    if not xs:
        raise ShapeError("concat: needs at least one tensor")
    if xs[0].ndim == 0:
        raise ShapeError("concat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = normalize_axis(axis, xs[0].ndim, "concat")
    if len(xs) == 1:
        return xs[0]
    from .elementwise import _promote

    for i in range(1, len(xs)):
        xs[0], xs[i] = _promote(xs[0], xs[i], "concat")
    return bind(concat_op, xs, {"axis": axis})


concatenate = concat


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    xs = [_t(x) for x in tensors]
    if not xs:
        raise ShapeError("stack: needs at least one tensor")
    for i, x in enumerate(xs[1:], 1):
        if x.shape != xs[0].shape:
            raise ShapeError(f"stack: tensor {i} has shape {x.shape}, tensor 0 has {xs[0].shape}")
    axis = normalize_axis(axis, xs[0].ndim + 1, "stack")
    return concat([expand_dims(x, axis) for x in xs], axis)


def split(x: TensorLike, indices_or_sections: int | Sequence[int], axis: int = 0) -> list:
    """Split into equal sections (an int) or at the given indices, as NumPy's split."""
    from .indexing import getitem

    x = _t(x)
    axis = normalize_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f"split: axis {axis} of size {n} does not divide into {k} equal sections")
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        inner = [int(i) for i in indices_or_sections]
        bounds = [0] + inner + [n]
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(a, max(a, b)),)) for a, b in zip(bounds[:-1], bounds[1:])]


def chunk(x: TensorLike, chunks: int, axis: int = 0) -> list:
    return split(x, chunks, axis)


# ----------------------------------------------------------------------------- pad

def _pad_spec(x: Spec, pad_width: tuple, value: float) -> Spec:
    if len(pad_width) != x.ndim:
        raise ShapeError(f"pad_width has {len(pad_width)} pairs for a tensor of rank {x.ndim}")
    if any(a < 0 or b < 0 for a, b in pad_width):
        raise ShapeError(f"negative padding {pad_width}")
    return Spec(tuple(d + a + b for d, (a, b) in zip(x.shape, pad_width)), x.dtype)


def _pad_grad(g, y, x, pad_width, value):
    from .indexing import getitem

    return (getitem(g, tuple(slice(a, a + d) for d, (a, _) in zip(x.shape, pad_width))),)


pad_op = register(Op("pad", _pad_spec,
                     lambda x, pad_width, value: np.pad(x, pad_width, mode="constant", constant_values=value),
                     _pad_grad, "shape"))


def pad(x: TensorLike, pad_width: Any, value: float = 0.0) -> Tensor:
    """Pad with a constant: ``pad_width`` is one (before, after) pair per axis, or one pair for all."""
    x = _t(x)
    pw = np.asarray(pad_width, dtype=np.int64)
    if pw.ndim == 1 and pw.shape == (2,):
        pw = np.tile(pw, (x.ndim, 1))
    if pw.ndim != 2 or pw.shape[1] != 2:
        raise ShapeError(f"pad: pad_width must be (before, after) pairs, got {pad_width!r}")
    return bind(pad_op, [x], {"pad_width": tuple((int(a), int(b)) for a, b in pw), "value": float(value)})
