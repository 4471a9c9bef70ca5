"""`Tensor`: the one user-facing array type.

Eagerly it holds a NumPy array; while a function is traced it holds a symbolic IR value instead
(``_value`` is then not an ndarray). Every method goes through the op functions, which go through
``bind``, so user code never needs to know which mode is active.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .errors import DTypeError, SpagoError
from .ops.registry import Spec


class Tensor:
    __slots__ = ("_value", "spec", "requires_grad", "grad", "_node", "_retains_grad", "name", "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data: Any, dtype=None, requires_grad: bool = False):
        array = _to_array(data, dtype)
        self._value = array
        self.spec = Spec(array.shape, array.dtype)
        self.requires_grad = False
        self.grad: Tensor | None = None
        self._node = None
        self._retains_grad = False
        self.name: str | None = None
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        """Wrap an array this module made, without copying."""
        t = cls.__new__(cls)
        t._value, t.spec = array, Spec(array.shape, array.dtype)
        t.requires_grad, t.grad, t._node, t._retains_grad, t.name = False, None, None, False, None
        return t

    @classmethod
    def _symbolic(cls, value: Any, spec: Spec) -> "Tensor":
        """A tensor standing for a value that is not computed yet (used by the tracer)."""
        t = cls._wrap.__func__(cls, np.empty((0,)))
        t._value, t.spec = value, spec
        return t

    # -- basic properties ---------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.spec.shape

    @property
    def dtype(self) -> np.dtype:
        return self.spec.dtype

    @property
    def ndim(self) -> int:
        return self.spec.ndim

    @property
    def size(self) -> int:
        return self.spec.size

    @property
    def is_concrete(self) -> bool:
        return isinstance(self._value, np.ndarray)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (shared, not copied)."""
        if not isinstance(self._value, np.ndarray):
            raise SpagoError(
                f"this {self.spec} tensor is symbolic (it is being traced), so it has no value yet; "
                "Python control flow that needs a value cannot depend on traced tensors"
            )
        return self._value

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def item(self):
        a = self.numpy()
        if a.size != 1:
            raise SpagoError(f"item() needs a one-element tensor, got shape {self.shape}")
        return a.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __len__(self) -> int:
        if not self.shape:
            raise SpagoError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise SpagoError(f"truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self) -> int:
        return id(self)

    @property
    def grad_fn(self) -> str | None:
        """The name of the op that made this tensor on the tape (``None`` for leaves), as PyTorch shows it."""
        return None if self._node is None else f"<{self._node.op.name}>"

    def __repr__(self) -> str:
        grad = f", grad_fn={self.grad_fn}" if self._node is not None else \
            ", requires_grad=True" if self.requires_grad else ""
        if not self.is_concrete:
            return f"Tensor(<traced {self._value}>, {self.spec}{grad})"
        body = np.array2string(self._value, separator=", ", precision=4)
        return f"tensor({body}, dtype={self.dtype.name}{grad})"

    # -- autograd -----------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and not dtypes.is_float(self.dtype):
            raise DTypeError(f"only floating tensors can require grad, got {self.dtype.name}")
        if not flag and self._node is not None:
            raise SpagoError("requires_grad_(False) on a non-leaf tensor; use detach()")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True
        return self

    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on that requires grad (adding to what is there).

        ``grad`` is d(something)/d(self), of this tensor's shape; it may be omitted for a one-element
        tensor (then it is 1). The tape is freed afterwards unless ``retain_graph``; ``create_graph``
        records the backward pass itself, for higher-order gradients. While tracing, the same call emits
        the backward pass as IR nodes."""
        from .autograd import backward

        backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)

    def detach(self) -> "Tensor":
        """The same value, cut off from the tape."""
        t = Tensor._wrap.__func__(Tensor, np.empty((0,)))
        t._value, t.spec = self._value, self.spec
        return t

    def zero_grad(self) -> None:
        self.grad = None

    # -- conversions --------------------------------------------------------------------
    def astype(self, dtype) -> "Tensor":
        from .ops import cast

        return cast(self, dtype)

    def float(self) -> "Tensor":
        """This tensor as float32 (itself if it already is)."""
        return self.astype(dtypes.float32)

    def double(self) -> "Tensor":
        """This tensor as float64 (itself if it already is)."""
        return self.astype(dtypes.float64)


def _to_array(data: Any, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.numpy()
    if isinstance(data, np.generic):  # a NumPy scalar keeps its dtype, like an array
        data = np.asarray(data)
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    if isinstance(data, np.ndarray):
        array = data if dtype is None else data.astype(dtype, copy=False)
        if dtype is None and array.dtype not in dtypes.SUPPORTED:
            array = array.astype(_default_for(array.dtype, keep_float64=True))
        return array
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise SpagoError(f"cannot make a tensor from {type(data).__name__}: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise DTypeError(f"cannot make a tensor from {type(data).__name__} holding {array.dtype}; expected numbers")
    return array.astype(dtype if dtype is not None else _default_for(array.dtype, keep_float64=False))


def _default_for(dt: np.dtype, keep_float64: bool) -> np.dtype:
    if dt.kind == "f":
        return dtypes.float64 if keep_float64 and dt.itemsize >= 8 else dtypes.DEFAULT_FLOAT
    if dt.kind in "iu":
        return dtypes.int64
    if dt.kind == "b":
        return dtypes.bool_
    raise DTypeError(f"unsupported dtype {dt}")


def tensor(data: Any, dtype=None, requires_grad: bool = False) -> Tensor:
    """Make a tensor. Python floats become float32, ints int64; NumPy arrays keep float64 / float32."""
    if isinstance(data, (np.ndarray, np.generic)) and dtype is None:
        data = np.asarray(data)
        return Tensor(data.copy() if data.dtype in dtypes.SUPPORTED else data, requires_grad=requires_grad)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory, as PyTorch's ``from_numpy`` (the dtype must be one spago has:
    float32, float64, int32, int64 or bool)."""
    if not isinstance(array, np.ndarray):
        raise SpagoError(f"from_numpy expects a NumPy array, got {type(array).__name__}")
    if array.dtype not in dtypes.SUPPORTED:
        raise DTypeError(f"from_numpy: spago has no {array.dtype} tensors; expected one of "
                         f"{', '.join(sorted(d.name for d in dtypes.SUPPORTED))}")
    return Tensor._wrap(array)


def as_tensor(x: Any, dtype=None) -> Tensor:
    """``x`` as a Tensor; Tensors pass through (cast only if ``dtype`` differs)."""
    if isinstance(x, Tensor):
        if dtype is not None and dtypes.as_dtype(dtype) != x.dtype:
            return x.astype(dtype)
        return x
    return Tensor(x, dtype=dtype)


def _install_methods() -> None:
    """Operators and methods, each a thin call into the op API."""
    from . import ops

    def swap(fn):
        return lambda self, other: fn(other, self)

    methods = {
        "__add__": ops.add, "__radd__": swap(ops.add), "__sub__": ops.sub, "__rsub__": swap(ops.sub),
        "__mul__": ops.mul, "__rmul__": swap(ops.mul), "__truediv__": ops.div, "__rtruediv__": swap(ops.div),
        "__pow__": ops.pow, "__rpow__": swap(ops.pow), "__matmul__": ops.matmul, "__rmatmul__": swap(ops.matmul),
        "__neg__": ops.neg, "__abs__": ops.abs, "__getitem__": ops.getitem,
        "__eq__": ops.eq, "__ne__": ops.ne, "__lt__": ops.lt, "__le__": ops.le, "__gt__": ops.gt, "__ge__": ops.ge,
        "__pos__": lambda self: self,
        "sum": ops.sum, "mean": ops.mean, "max": ops.max, "min": ops.min, "var": ops.var, "std": ops.std,
        "argmax": ops.argmax, "argmin": ops.argmin, "logsumexp": ops.logsumexp,
        "softmax": ops.softmax, "log_softmax": ops.log_softmax,
        "reshape": ops.reshape, "view": ops.reshape, "transpose": ops.transpose, "permute": ops.permute,
        "swapaxes": ops.swapaxes, "broadcast_to": ops.broadcast_to, "expand_dims": ops.expand_dims,
        "unsqueeze": ops.expand_dims, "squeeze": ops.squeeze, "flatten": ops.flatten, "split": ops.split,
        "take": ops.take, "clip": ops.clip, "clamp": ops.clip, "matmul": ops.matmul, "dot": ops.dot,
        "exp": ops.exp, "expm1": ops.expm1, "log": ops.log, "log1p": ops.log1p, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "abs": ops.abs,
        "square": ops.square, "reciprocal": ops.reciprocal, "sin": ops.sin, "cos": ops.cos, "tan": ops.tan,
        "tanh": ops.tanh, "sigmoid": ops.sigmoid, "relu": ops.relu, "erf": ops.erf, "sign": ops.sign,
        "neg": ops.neg, "pad": ops.pad, "clone": ops.clone,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: ops.transpose(self))
    Tensor.mT = property(lambda self: ops.swapaxes(self, -1, -2))


_install_methods()
