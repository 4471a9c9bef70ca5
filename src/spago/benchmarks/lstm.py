"""The four-gate LSTM a user writes from the paper (Hochreiter & Schmidhuber, 1997), the Go spaGO's way:
a weight per gate, each multiplying ``concat([x_t, h])``. `bench/lstm.py` times it and the tests of
`split_concat_products` check what the compiler makes of it."""
from __future__ import annotations

from typing import Callable


def four_gate_lstm(weights, bias) -> Callable:
    """``run(xs, h, c) -> h`` over every step of ``xs`` (steps, batch, input), with constant gate weights
    ``weights[k]`` ((input + hidden) x hidden) and biases ``bias[k]``, gates i, f, g, o."""
    import spago as sp

    def run(xs, h, c):
        for t in range(xs.shape[0]):
            z = sp.concat([xs[t], h], axis=-1)
            i = sp.sigmoid(z @ weights[0] + bias[0])
            f = sp.sigmoid(z @ weights[1] + bias[1])
            g = sp.tanh(z @ weights[2] + bias[2])
            o = sp.sigmoid(z @ weights[3] + bias[3])
            c = f * c + i * g
            h = o * sp.tanh(c)
        return h

    return run
