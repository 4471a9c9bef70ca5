"""Train a recursive autoencoder: sequences of word vectors squeezed into one code and spelled back out.

`spago.nn.RecursiveAutoEncoder` merges neighbouring vectors level by level into a single code, then splits
it back; trained on the reconstruction error (MSE) with Adam, as one compiled step per update (or eagerly),
it learns to reproduce sequences of 4 vectors from a vocabulary of 8 random "word" vectors. The loss curve
is printed.

Run: python examples/recursive_autoencoder.py [--eager] [--steps N]
"""
from __future__ import annotations

import argparse

import numpy as np

import spago
from spago import losses, nn, optim

RNG = np.random.default_rng(0)
WORDS = RNG.standard_normal((8, 6)).astype(np.float32)   # 8 word vectors of 6 features
LENGTH = 4


def batch(size: int = 32) -> np.ndarray:
    return WORDS[RNG.integers(0, len(WORDS), (size, LENGTH))]


def loss_fn(model: nn.RecursiveAutoEncoder, x):
    return losses.mse(model(x), x)


def main(steps: int = 300, compiled: bool = True, quiet: bool = False) -> dict:
    model = nn.RecursiveAutoEncoder(6, 24, max_length=LENGTH, generator=spago.Generator(0))
    trainer = optim.Trainer(model, loss_fn, optim.Adam(model, lr=0.01), compiled=compiled)
    curve = []
    for step in range(steps):
        curve.append(trainer.train_step(batch()))
        if not quiet and (step % 50 == 0 or step == steps - 1):
            print(f"step {step:4d}  reconstruction MSE {curve[-1]:.4f}")
    test = batch(64)
    with spago.no_grad():
        error = float(np.mean((model(test).numpy() - test) ** 2))
    # how often the nearest word vector to each reconstructed position is the word that was there
    with spago.no_grad():
        recon = model(test).numpy()
    nearest = np.argmin(((recon[:, :, None, :] - WORDS[None, None]) ** 2).sum(-1), axis=-1)
    truth = np.argmin(((test[:, :, None, :] - WORDS[None, None]) ** 2).sum(-1), axis=-1)
    word_accuracy = float((nearest == truth).mean())
    if not quiet:
        print(f"held-out MSE {error:.4f} (the data's variance is {test.var():.4f}); "
              f"words recovered {word_accuracy:.0%}")
    return {"curve": curve, "test_mse": error, "variance": float(test.var()), "word_accuracy": word_accuracy}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    main(args.steps, compiled=not args.eager)
