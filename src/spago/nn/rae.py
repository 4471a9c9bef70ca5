"""Recursive autoencoder: a sequence encoded to one vector by merging neighbours, level by level, and
decoded back by splitting, as the Go spaGO's ``rae``."""
from __future__ import annotations

from .. import ops
from ..errors import ShapeError
from ..ops.elementwise import _t
from .encoding import sinusoidal_table
from .linear import Linear
from .module import Module

__all__ = ["RecursiveAutoEncoder"]


class RecursiveAutoEncoder(Module):
    """Recursive autoencoder (after Socher et al., 2011, "Semi-Supervised Recursive Autoencoders for
    Predicting Sentiment Distributions", on a fixed binary schedule), for sequences x (B, T, I), T ≤ max_length:

        encode:  y⁰_i = tanh(S·x_i + b_S);  level r merges neighbours,
                 y^r_i = tanh(E·([y^{r−1}_i; y^{r−1}_{i+1}] + PE₂ₕ[r]) + b_E),  until one vector is left (r = T−1)
        decode:  level r splits each vector in two,  [a_i; b_i] = tanh(D₁·(u_i + PEₕ[r]) + b₁),
                 u'_i = tanh(D₂·avg(b_{i−1}, a_i) + b₂)  (each end has only one half),  from r = T−1 down to 1;
                 x̂_i = S'·u_i + b_S'

    PE is the sinusoidal encoding of the level, so one merge and one split network serve every level.
    ``forward(x)`` returns the reconstruction; train it to minimise ‖x̂ − x‖²."""

    def __init__(self, input_size: int, hidden_size: int, max_length: int = 64, dtype="float32", generator=None):
        super().__init__()
        self.input_size, self.hidden_size, self.max_length = int(input_size), int(hidden_size), int(max_length)
        h = hidden_size
        self.scale = Linear(input_size, h, dtype=dtype, generator=generator)
        self.merge = Linear(2 * h, h, dtype=dtype, generator=generator)
        self.split = Linear(h, 2 * h, dtype=dtype, generator=generator)
        self.smooth = Linear(h, h, dtype=dtype, generator=generator)
        self.descale = Linear(h, input_size, dtype=dtype, generator=generator)
        self._pe2 = sinusoidal_table(max_length, 2 * h)
        self._pe1 = sinusoidal_table(max_length, h)

    def encode(self, x):
        """x (B, T, I) → the code (B, H)."""
        x = _t(x)
        if x.ndim != 3 or x.shape[-1] != self.input_size or not 1 <= x.shape[1] <= self.max_length:
            raise ShapeError(f"{self._path or 'RecursiveAutoEncoder'}: expected (batch, 1 ≤ length ≤ "
                             f"{self.max_length}, {self.input_size}), got {x.shape}")
        y = ops.tanh(self.scale(x))
        for r in range(1, x.shape[1]):
            pairs = ops.concat([y[:, :-1], y[:, 1:]], axis=-1) + self._pe2[r].astype(x.dtype)
            y = ops.tanh(self.merge(pairs))
        return y[:, 0]

    def decode(self, code, length: int):
        """The code (B, H) → a sequence (B, length, I)."""
        code = _t(code)
        if code.ndim != 2 or code.shape[-1] != self.hidden_size or not 1 <= length <= self.max_length:
            raise ShapeError(f"{self._path or 'RecursiveAutoEncoder'}: expected a code (batch, {self.hidden_size}) "
                             f"and 1 ≤ length ≤ {self.max_length}, got {code.shape} and {length}")
        u = ops.expand_dims(code, 1)
        for r in range(length - 1, 0, -1):
            a, b = ops.split(ops.tanh(self.split(u + self._pe1[r].astype(code.dtype))), 2, axis=-1)
            n = u.shape[1]
            zero = ops.zeros_like(a[:, :1])
            summed = ops.concat([a, zero], axis=1) + ops.concat([zero, b], axis=1)       # (B, n + 1, H)
            counts = [1.0] + [2.0] * (n - 1) + [1.0]
            weights = (1.0 / ops.elementwise._t(counts).astype(code.dtype))
            u = ops.tanh(self.smooth(summed * ops.reshape(weights, (1, n + 1, 1))))
        return self.descale(u)

    def forward(self, x):
        """x: (B, T, input_size), batch-first, T at most ``max_length``; returns the reconstruction (B, T, input_size)."""
        x = _t(x)
        return self.decode(self.encode(x), x.shape[1])
