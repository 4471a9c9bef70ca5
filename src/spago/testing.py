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


def check_module_grad(module, *inputs, rtol: float = 1e-5, atol: float = 1e-6, eps: float = 1e-6,
                      seed: int = 0, output: Callable | None = None) -> None:
    """Assert that the tape's gradients of a module's parameters and floating inputs equal central finite
    differences. The module is cast to float64 in place (pass a disposable one). ``output`` maps the
    module's result to the tensor to differentiate (default: the result itself)."""
    from .autograd import no_grad

    module.double()
    args = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x) for x in inputs]
    floats = [k for k, a in enumerate(args) if a.dtype.kind == "f"]

    def run(tensors):
        out = module(*tensors)
        return output(out) if output is not None else out

    module.zero_grad()
    tensors = [Tensor(a.copy(), requires_grad=k in floats) for k, a in enumerate(args)]
    out = run(tensors)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(Tensor(cotangent))
    named = [(f"input {k}", args[k], tensors[k].grad) for k in floats]
    named += [(f"parameter {name}", p.numpy(), p.grad) for name, p in module.named_parameters()]
    for what, array, grad in named:
        flat = array.reshape(-1)  # a view: perturbing it perturbs the argument or the parameter itself
        expected = np.zeros_like(flat)
        for j in range(flat.size):
            old = flat[j]
            values = []
            for step in (eps, -eps):
                flat[j] = old + step
                with no_grad():
                    values.append(np.sum(run([Tensor(a) for a in args]).numpy() * cotangent))
            flat[j] = old
            expected[j] = (values[0] - values[1]) / (2 * eps)
        got = np.zeros_like(array) if grad is None else grad.numpy()
        np.testing.assert_allclose(got, expected.reshape(array.shape), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {what}")


def assert_compiled_matches_eager(fn, *inputs, rtol: float = 1e-4, atol: float = 1e-5, **compile_options) -> None:
    """Compile ``fn`` (a function or an eval-mode Module) for ``inputs`` and compare every output with eager."""
    from .compiler import compile
    from .ir.pytree import flatten

    eager = fn(*inputs)
    compiled = compile(fn, *inputs, **compile_options)(*inputs)
    want, _, _ = flatten(eager, is_leaf=lambda x: isinstance(x, (Tensor, np.ndarray)))
    got, _, _ = flatten(compiled, is_leaf=lambda x: isinstance(x, (Tensor, np.ndarray)))
    assert len(want) == len(got), f"{len(got)} compiled outputs, {len(want)} eager"
    for k, (w, g) in enumerate(zip(want, got)):
        w = w.numpy() if isinstance(w, Tensor) else np.asarray(w)
        np.testing.assert_allclose(np.asarray(g), w, rtol=rtol, atol=atol, err_msg=f"output {k}")
