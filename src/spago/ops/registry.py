"""The op registry: every primitive is declared once here-style, with all its rules side by side.

A primitive (`Op`) carries
  * ``shape_rule(*in_specs, **attrs) -> Spec``  — output shape and dtype, raising a spago error on bad input;
  * ``kernel(*arrays, **attrs) -> ndarray``     — the NumPy reference semantics;
  * ``grad(g, out, *inputs, **attrs)``          — the vector-Jacobian product written *with ops*, so the same
    rule records an eager tape or emits IR nodes while tracing; ``None`` means not differentiable;
  * ``traits``                                  — facts the passes and kernels ask the op instead of keeping
    lists of names: ``effectful`` (never merged, folded or hoisted: a random draw), ``view`` (reads its
    input through strides), ``alias`` (shares its input's buffer), ``reduction`` (combines along axes
    from an identity: sum, max, min), ``elementwise`` (its ``kind``). `ops_with` is the table of groups.

``bind`` is the only way an op is applied: it checks shapes, then hands the op to the active *mode*
(eager NumPy by default; the tracer pushes its own), the way JAX's primitives bind to the current trace.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SpagoError


@dataclass(frozen=True)
class Spec:
    """Static shape and dtype of a value (JAX calls this an abstract value)."""

    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"


@dataclass(eq=False)
class Op:
    name: str
    shape_rule: Callable[..., Spec]
    kernel: Callable[..., Any]
    grad: Callable[..., Sequence] | None = None
    kind: str = "opaque"  # "elementwise", "reduction", "matmul", "shape", "opaque": used by fusion
    doc: str = ""
    traits: frozenset = frozenset()

    def __post_init__(self):
        unknown = set(self.traits) - set(TRAITS)
        if unknown:
            raise SpagoError(f"op {self.name!r}: unknown traits {sorted(unknown)}; expected some of {TRAITS}")
        self.traits = frozenset(self.traits) | ({"elementwise"} if self.kind == "elementwise" else set())

    effectful = property(lambda self: "effectful" in self.traits)
    view = property(lambda self: "view" in self.traits)
    alias = property(lambda self: "alias" in self.traits)
    reduction = property(lambda self: "reduction" in self.traits)
    elementwise = property(lambda self: "elementwise" in self.traits)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


TRAITS = ("effectful", "view", "alias", "reduction", "elementwise")

OPS: dict[str, Op] = {}


def ops_with(trait: str) -> frozenset:
    """The names of the registered ops that have ``trait`` (one of `TRAITS`)."""
    if trait not in TRAITS:
        raise SpagoError(f"unknown op trait {trait!r}; expected one of {TRAITS}")
    return frozenset(name for name, op in OPS.items() if trait in op.traits)


def register(op: Op) -> Op:
    if op.name in OPS:
        raise SpagoError(f"op {op.name!r} is already registered")
    OPS[op.name] = op
    return op


# ----------------------------------------------------------------------------- modes

class EagerMode:
    """Compute at once with the NumPy kernel."""

    def apply(self, op: Op, inputs: Sequence, attrs: dict, out: Spec):
        from ..tensor import Tensor

        arrays = [t.numpy() for t in inputs]
        with np.errstate(all="ignore"):
            value = op.kernel(*arrays, **attrs)
        value = np.asarray(value, dtype=out.dtype)
        if value.shape != out.shape:
            raise SpagoError(f"internal: {op.name} kernel gave shape {value.shape}, shape rule said {out.shape}")
        return Tensor._wrap(value)


_state = threading.local()


def _modes() -> list:
    if not hasattr(_state, "modes"):
        _state.modes = [EagerMode()]
    return _state.modes


def current_mode() -> Any:
    return _modes()[-1]


class use_mode:
    """Context manager that makes ``mode`` the one ``bind`` hands ops to."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        _modes().append(self.mode)
        return self.mode

    def __exit__(self, *exc):
        _modes().pop()


def describe(specs: Sequence[Spec]) -> str:
    return ", ".join(str(s) for s in specs)


def bind(op: Op, inputs: Sequence, attrs: dict | None = None) -> Any:
    """Apply ``op`` to Tensors ``inputs`` in the current mode, after checking its shape rule."""
    attrs = attrs or {}
    specs = [t.spec for t in inputs]
    try:
        out = op.shape_rule(*specs, **attrs)
    except SpagoError as exc:
        msg = str(exc)
        if not msg.startswith(op.name + ":"):
            msg = f"{op.name}: {msg} (operands: {describe(specs) or 'none'})"
        raise type(exc)(msg) from None
    result = current_mode().apply(op, inputs, attrs, out)
    if op.grad is not None and any(t.requires_grad for t in inputs):
        from ..autograd import Node, is_grad_enabled

        if is_grad_enabled():  # record on the tape, whichever mode computed the result
            result.requires_grad = True
            result._node = Node(op, tuple(inputs), attrs)
    return result
