"""The Go spaGO README's linear regression: learn y = 3x + 1 from 1,000 points for 100 epochs with
plain SGD (learning rate 0.001, momentum 0.9), one update per point, written by hand against the
Tensor API. It ends at W = 3.00, B = 1.00.
"""
from __future__ import annotations

import numpy as np

import spago


def main(epochs: int = 100, points: int = 1000, lr: float = 0.001, momentum: float = 0.9, seed: int = 42) -> dict:
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=points)
    ys = 3.0 * xs + 1.0
    w = spago.tensor(0.0, requires_grad=True)
    b = spago.tensor(0.0, requires_grad=True)
    vw = vb = 0.0
    for epoch in range(epochs):
        for x, y in zip(xs, ys):
            loss = spago.square(w * float(x) + b - float(y))
            loss.backward()
            # momentum SGD on the raw values (no tape needed for the update)
            vw = momentum * vw - lr * w.grad.item()
            vb = momentum * vb - lr * b.grad.item()
            w.numpy()[...] += vw
            b.numpy()[...] += vb
            w.grad = b.grad = None
    print(f"W = {w.item():.2f}, B = {b.item():.2f}")
    return {"W": w.item(), "B": b.item()}


if __name__ == "__main__":
    main()
