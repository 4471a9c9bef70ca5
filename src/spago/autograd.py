"""Define-by-run reverse mode: each op result remembers its `Node`; `backward` walks them in reverse.

The walk is iterative (an explicit stack), so a 20,000-op chain needs no recursion.
Gradient rules are written with ops, so they run under ``no_grad`` here and emit IR nodes when traced.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import GradError, ShapeError

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self.prev

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def no_grad() -> _GradMode:
    """Context manager (or decorator) in which ops record nothing on the tape."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


@dataclass(eq=False)
class Node:
    """How a tensor was made: the op, its input tensors and attributes. Freed after backward."""

    op: Any
    inputs: tuple | None
    attrs: dict

    @property
    def freed(self) -> bool:
        return self.inputs is None


def topological_order(roots: list, only_grad: bool = True) -> list:
    """Tensors reachable from ``roots`` through recorded nodes, each before the tensors it was made from
    (roots first). ``only_grad`` follows only inputs that require grad (what backward needs)."""
    order, seen, stack = [], set(), [(r, False) for r in reversed(roots)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        node = t._node
        if node is None:
            continue
        if node.freed:
            raise GradError(
                f"the tape behind this {node.op.name} result was freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to walk it again"
            )
        for inp in node.inputs:
            if (inp.requires_grad or not only_grad) and id(inp) not in seen:
                stack.append((inp, False))
    order.reverse()  # roots first
    return order


def backward(root, grad=None, retain_graph: bool = False, create_graph: bool = False) -> None:
    from .tensor import Tensor, as_tensor

    if not root.requires_grad:
        raise GradError("backward() on a tensor that does not require grad (no input had requires_grad=True)")
    if grad is None:
        if root.spec.size != 1:
            raise GradError(f"backward() without grad needs a one-element output, got shape {root.shape}")
        grad = Tensor._wrap(np.ones(root.shape, dtype=root.dtype))
    else:
        grad = as_tensor(grad, dtype=root.dtype)
        if grad.shape != root.shape:
            try:
                grad = grad.broadcast_to(root.shape)
            except ShapeError:
                raise GradError(f"backward(): grad of shape {grad.shape} does not fit output shape {root.shape}") from None
    order = topological_order([root])

    def store(t, g) -> None:
        if t._node is None or t._retains_grad:
            t.grad = g if t.grad is None else t.grad + g

    with _GradMode(create_graph):
        _pull_back(order, {id(root): grad}, store)
    if not retain_graph:
        for t in order:
            if t._node is not None:
                t._node.inputs = None


def _pull_back(order: list, grads: dict, on_grad) -> None:
    """Walk ``order`` (outputs first) applying each op's gradient rule; ``on_grad(t, g)`` sees every
    tensor's total gradient."""
    for t in order:
        g = grads.pop(id(t), None)
        if g is None:
            continue
        on_grad(t, g)
        node = t._node
        if node is None:
            continue
        in_grads = node.op.grad(g, t, *node.inputs, **node.attrs)
        for inp, ig in zip(node.inputs, in_grads):
            if ig is None or not inp.requires_grad:
                continue
            if ig.shape != inp.shape:
                raise GradError(f"internal: gradient of {node.op.name} has shape {ig.shape}, input has {inp.shape}")
            prev = grads.get(id(inp))
            grads[id(inp)] = ig if prev is None else prev + ig


def vjp(outputs: list, cotangents: list, inputs: list) -> list:
    """The gradients of Σ ⟨outputs[k], cotangents[k]⟩ with respect to ``inputs`` (tensors that require
    grad), None for an input no output depends on. Nothing is stored in ``.grad``; the tape is kept."""
    roots, grads = [], {}
    for o, c in zip(outputs, cotangents):
        if c is None or not o.requires_grad:
            continue
        if id(o) not in grads:
            roots.append(o)
        grads[id(o)] = c if id(o) not in grads else grads[id(o)] + c
    wanted = {id(t) for t in inputs}
    found: dict = {}

    def collect(t, g) -> None:
        if id(t) in wanted:
            found[id(t)] = g

    with _GradMode(False):
        _pull_back(topological_order(roots), grads, collect)
    return [found.get(id(t)) for t in inputs]
