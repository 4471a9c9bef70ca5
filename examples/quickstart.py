"""A five-minute tour of spago: tensors, autograd, tracing, and compiled native code."""
from __future__ import annotations

import numpy as np

import spago


def main() -> dict:
    # Tensors and define-by-run autograd.
    x = spago.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (spago.tanh(x) * 2.0).sum()
    y.backward()
    print("y =", y.item())
    print("dy/dx =\n", x.grad.numpy())

    # A softmax layer, traced into a graph and compiled to machine code for this CPU.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)

    def layer(inputs):
        return spago.softmax(spago.gelu(inputs @ w + 0.1), axis=-1)

    graph = spago.trace(layer, spago.spec((2, 4)))
    print(graph)
    compiled = spago.compile(layer, spago.spec((2, 4)))
    batch = rng.standard_normal((2, 4)).astype(np.float32)
    fast = compiled(batch)
    eager = layer(spago.tensor(batch)).numpy()
    print("compiled:\n", fast)
    print("max difference to eager:", float(np.abs(fast - eager).max()))
    print("kernels:", compiled.report()["kernels"])
    return {"y": y.item(), "grad": x.grad.numpy(), "compiled": fast, "eager": eager}


if __name__ == "__main__":
    main()
