"""Function transformations: ``grad`` and ``value_and_grad``.

They run the function with the arguments marked as requiring grad and walk the tape backward. Called
eagerly they compute at once; called while tracing, the same gradient rules emit IR nodes, so one graph
holds forward and backward (and, with an optimiser update, a whole training step).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from .autograd import enable_grad
from .errors import GradError, SpagoError
from .ir.pytree import flatten, unflatten
from .tensor import Tensor


def _is_leaf(x: Any) -> bool:
    return isinstance(x, (Tensor, np.ndarray))


def _watch(leaf: Any) -> Tensor:
    if isinstance(leaf, Tensor):
        t = leaf.detach()
    elif isinstance(leaf, np.ndarray):
        t = Tensor(leaf)
    else:
        raise SpagoError(f"grad: differentiated arguments must hold arrays or Tensors, got {type(leaf).__name__}")
    if t.dtype.kind != "f":
        raise GradError(f"grad: cannot differentiate with respect to a {t.dtype.name} argument; it must be floating")
    return t.requires_grad_(True)


def value_and_grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """A function returning ``(fn(*args), gradient)`` with respect to the arguments ``argnums``.

    Each differentiated argument may be a Tensor, an array, or a nested dict/list/tuple of them (a
    parameter dictionary, as with ``jax.grad``); its gradient has the same structure. ``fn`` must return
    a one-element tensor (or ``(value, aux)`` with ``has_aux=True``).
    """
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any):
        args = list(args)
        watched = []
        for i in nums:
            if not -len(args) <= i < len(args):
                raise GradError(f"grad: argnums {i} is out of range for {len(args)} positional arguments")
            leaves, _, tree = flatten(args[i], is_leaf=_is_leaf)
            tensors = [_watch(leaf) for leaf in leaves]
            args[i] = unflatten(tree, tensors)
            watched.append((tree, tensors))
        with enable_grad():
            out = fn(*args, **kwargs)
        value, aux = out if has_aux else (out, None)
        if not isinstance(value, Tensor):
            raise GradError(f"grad: {getattr(fn, '__name__', 'the function')} must return a Tensor, "
                            f"got {type(value).__name__}")
        if value.size != 1:
            raise GradError(f"grad: the function must return a one-element tensor, got shape {value.shape}")
        if value.requires_grad:
            value.backward()
        grads = tuple(unflatten(tree, [t.grad if t.grad is not None else _zeros(t) for t in tensors])
                      for tree, tensors in watched)
        grads = grads[0] if single else grads
        value = value.detach()
        return ((value, aux), grads) if has_aux else (value, grads)

    return wrapped


def _zeros(t: Tensor) -> Tensor:
    return Tensor._wrap(np.zeros(t.shape, dtype=t.dtype))


def grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """A function returning the gradient of ``fn`` with respect to the arguments ``argnums``."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any):
        if has_aux:
            (_, aux), g = vg(*args, **kwargs)
            return g, aux
        return vg(*args, **kwargs)[1]

    return wrapped
