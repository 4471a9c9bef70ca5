"""Train a small network without gradients: differential evolution over all of its parameters.

The network (2 → 6 → 1, tanh) fits y = sin(πx₁)·x₂ on 64 points. `spago.optim.DifferentialEvolution`
keeps a population of parameter vectors, writes each candidate into the model and scores it by the mean
squared error; the validation score (−MSE on held-out points) picks the best. The score curve is printed.

Run: python examples/differential_evolution.py [--mutation rand1|degl] [--generations N]
"""
from __future__ import annotations

import argparse

import numpy as np

import spago
from spago import nn, optim

RNG = np.random.default_rng(0)
X_TRAIN = RNG.uniform(-1, 1, (64, 2)).astype(np.float32)
X_VALID = RNG.uniform(-1, 1, (64, 2)).astype(np.float32)


def target(x: np.ndarray) -> np.ndarray:
    return (np.sin(np.pi * x[:, :1]) * x[:, 1:]).astype(np.float32)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        g = spago.Generator(0)
        self.hidden, self.out = nn.Linear(2, 6, generator=g), nn.Linear(6, 1, generator=g)

    def forward(self, x):
        return self.out(spago.tanh(self.hidden(x)))


def mse(model: Net, x: np.ndarray) -> float:
    with spago.no_grad():
        return float(np.mean((model(x).numpy() - target(x)) ** 2))


def main(mutation: str = "rand1", generations: int = 200, seed: int = 0, quiet: bool = False) -> dict:
    model = Net()
    start = mse(model, X_VALID)
    de = optim.DifferentialEvolution(model, score=lambda v, batch: mse(model, X_TRAIN),
                                     validate=lambda v: -mse(model, X_VALID), population_size=20,
                                     mutation=mutation, adaptive=True, seed=seed, bound=4.0, init_range=1.5)
    curve = []
    for g in range(generations):
        de.optimize(1)
        curve.append(-de.best_score)
        if not quiet and (g % 10 == 0 or g == generations - 1):
            print(f"generation {g:3d}  validation MSE {curve[-1]:.4f}")
    end = mse(model, X_VALID)
    if not quiet:
        print(f"{mutation}: validation MSE {start:.4f} -> {end:.4f} over {model.num_parameters()} parameters")
    return {"start": start, "end": end, "curve": curve}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutation", choices=["rand1", "degl"], default="rand1")
    parser.add_argument("--generations", type=int, default=200)
    args = parser.parse_args()
    main(args.mutation, args.generations)
