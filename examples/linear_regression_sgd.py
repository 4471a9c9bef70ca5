"""The Go spaGO README's linear regression, y = 3x + 1, learnt with `spago.optim.SGD` (momentum 0.9)
through the Trainer, eagerly or as one compiled step per update. It ends at W = 3.00, B = 1.00.

Run: python examples/linear_regression_sgd.py [--compiled]
"""
from __future__ import annotations

import argparse

import numpy as np

import spago
from spago import losses, nn, optim


class Line(nn.Module):
    """y = W·x + B, both starting at 0."""

    def __init__(self):
        super().__init__()
        self.W = nn.Param(np.zeros(()), dtype="float32")
        self.B = nn.Param(np.zeros(()), dtype="float32")

    def forward(self, x):
        return self.W * x + self.B


def loss_fn(model: Line, x, y):
    return losses.mse(model(x), y)


def main(compiled: bool = False, epochs: int = 10, points: int = 1000, batch_size: int = 10, lr: float = 0.05,
         momentum: float = 0.9, seed: int = 42, progress: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=points).astype(np.float32)
    ys = (3.0 * xs + 1.0).astype(np.float32)
    batches = [(xs[i:i + batch_size], ys[i:i + batch_size]) for i in range(0, points, batch_size)]
    model = Line()
    trainer = optim.Trainer(model, loss_fn, optim.SGD(model, lr=lr, momentum=momentum), compiled=compiled)
    trainer.fit(batches, epochs=epochs, progress=progress)
    w, b = model.W.item(), model.B.item()
    print(f"W = {w:.2f}, B = {b:.2f}")
    return {"W": w, "B": b, "loss": trainer.losses[-1]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true", help="train with one native call per step")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    main(compiled=args.compiled, epochs=args.epochs, progress=True)
