"""The Go spaGO README's perceptron: y = sigmoid(w·x + b) with x = -0.8, w = 0.4, b = -0.2.

Pass an output path (e.g. ``perceptron.svg``) to also render the computation with Graphviz.
"""
from __future__ import annotations

import sys

import spago


def main(render_to: str | None = None) -> dict:
    x = spago.tensor(-0.8)
    w = spago.tensor(0.4, requires_grad=True)
    b = spago.tensor(-0.2, requires_grad=True)
    x.name, w.name, b.name = "x", "w", "b"
    y = spago.sigmoid(w * x + b)
    if render_to:
        spago.ir.tape.graph_from_tape(y, name="perceptron").render(render_to)
        print(f"rendered {render_to}")
    dot = spago.to_dot(y)  # drawn before backward, which frees the tape
    y.backward()
    print(f"y = {y.item():.6f}")
    print(f"gw = {w.grad.item():.6f}, gb = {b.grad.item():.6f}")
    return {"y": y.item(), "gw": w.grad.item(), "gb": b.grad.item(), "dot": dot}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
