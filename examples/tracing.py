"""Trace a two-layer MLP, print its graph, build a whole training step as one graph, and render both.

Run: python examples/tracing.py [output-folder]
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import spago


def make_params(rng: np.random.Generator) -> dict:
    return {"w1": rng.standard_normal((4, 8)).astype(np.float32) * 0.5, "b1": np.zeros(8, np.float32),
            "w2": rng.standard_normal((8, 1)).astype(np.float32) * 0.5, "b2": np.zeros(1, np.float32)}


def mlp(params, x):
    with spago.ir.scope("hidden"):
        h = spago.tanh(x @ params["w1"] + params["b1"])
    with spago.ir.scope("output"):
        return h @ params["w2"] + params["b2"]


def loss(params, x, y):
    return ((mlp(params, x) - y) ** 2).mean()


def train_step(params, x, y):
    value, grads = spago.value_and_grad(loss)(params, x, y)
    return value, {k: params[k] - 0.1 * grads[k] for k in params}


def main(folder: str | None = None) -> dict:
    folder = folder or tempfile.mkdtemp(prefix="spago-tracing-")
    rng = np.random.default_rng(0)
    params = make_params(rng)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = (x.sum(axis=1, keepdims=True) > 0).astype(np.float32)

    forward = spago.trace(mlp, params, spago.spec((16, 4)))
    print(forward)
    step = spago.trace(train_step, params, x, y)
    print(f"training step: {len(step.nodes)} ops, {step.op_counts()}")
    paths = [forward.render(os.path.join(folder, "mlp.svg")), step.render(os.path.join(folder, "train_step.svg"))]

    compiled_step = spago.compile(train_step, params, x, y, inference=False)
    losses = []
    for _ in range(50):
        value, params = compiled_step(params, x, y)
        losses.append(float(value))
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; graphs in {folder}")
    return {"forward": forward, "step": step, "losses": losses, "paths": paths}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
