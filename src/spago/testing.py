"""Helpers for checking ops: central finite differences against the tape's gradients."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .tensor import Tensor


def numerical_grad(fn: Callable[..., Tensor], arrays: Sequence[np.ndarray], cotangent: np.ndarray,
                   eps: float = 1e-6) -> list:
    """d<fn(*arrays), cotangent>/d arrays[i] by central differences (float64 recommended)."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            up = np.sum(fn(*[Tensor(x) for x in arrays]).numpy() * cotangent)
            flat[j] = old - eps
            down = np.sum(fn(*[Tensor(x) for x in arrays]).numpy() * cotangent)
            flat[j] = old
            gflat[j] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(fn: Callable[..., Tensor], *arrays: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6,
               eps: float = 1e-6, seed: int = 0) -> None:
    """Assert that the tape's gradient of ``fn`` equals central finite differences, for every argument.

    A random cotangent is used so that every output element matters.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(Tensor(cotangent))
    expected = numerical_grad(fn, arrays, cotangent, eps)
    for i, (t, e) in enumerate(zip(inputs, expected)):
        got = np.zeros_like(e) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, e, rtol=rtol, atol=atol, err_msg=f"gradient of argument {i}")
