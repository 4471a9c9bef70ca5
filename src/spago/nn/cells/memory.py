"""Cells whose state is a structured memory: TPR (tensor-product representations) and RLA (recurrent
linear attention), with their sequence layers."""
from __future__ import annotations

import math

from ... import ops
from ...errors import SpagoError
from .base import Cell, CellRNN

__all__ = ["TPRCell", "TPR", "RLACell", "RLA"]


def _square_split(n: int) -> int:
    """The largest divisor of n that is at most √n."""
    return max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)


class TPRCell(Cell):
    """Tensor-product representation RNN (Palangi et al., 2018, "Question-Answering with
    Grammatically-Interpretable Representations"), as the Go spaGO's ``tpr``:

        a_S = σ(W_S·x + U_S·h + b_S) ∈ ℝ^{n_S}      a_R = σ(W_R·x + U_R·h + b_R) ∈ ℝ^{n_R}
        s = S·a_S ∈ ℝ^{d_S}    r = R·a_R ∈ ℝ^{d_R}    (S, R: learned symbol and role embeddings)
        h' = vec(s ⊗ r) ∈ ℝ^{d_S·d_R}

    ``hidden_size`` = d_S·d_R; by default d_R is its largest divisor ≤ √H, and n_S = d_S, n_R = d_R."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, d_roles: int | None = None,
                 n_symbols: int | None = None, n_roles: int | None = None, dtype="float32", generator=None):
        d_r = int(d_roles or _square_split(hidden_size))
        if hidden_size % d_r:
            raise SpagoError(f"TPRCell: hidden_size {hidden_size} must be d_symbols·d_roles; d_roles={d_r} does "
                             "not divide it")
        d_s = hidden_size // d_r
        n_s, n_r = int(n_symbols or d_s), int(n_roles or d_r)
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=n_s + n_r, rec_rows=n_s + n_r)
        self.d_symbols, self.d_roles, self.n_symbols, self.n_roles = d_s, d_r, n_s, n_r
        self.symbols = self.param(d_s, n_s)
        self.roles = self.param(d_r, n_r)

    def step(self, p, h):
        a_s, a_r = ops.split(ops.sigmoid(p + self.recurrent(h)), [self.n_symbols], axis=-1)
        s, r = a_s @ self.symbols.T, a_r @ self.roles.T                      # (B, d_S), (B, d_R)
        h = ops.reshape(ops.expand_dims(s, -1) * ops.expand_dims(r, 1), (p.shape[0], self.hidden_size))
        return h, h


class TPR(CellRNN):
    """Stacked TPR layers (see `TPRCell`)."""

    cell_type = TPRCell


class RLACell(Cell):
    """Recurrent linear attention (Katharopoulos et al., 2020, "Transformers are RNNs: Fast Autoregressive
    Transformers with Linear Attention"), as the Go spaGO's ``rla``: causal linear attention run as an RNN.

        k, v, q = W_k·x + b_k, W_v·x + b_v, W_q·x + b_q,    φ(u) = elu(u) + 1
        S' = S + φ(k) vᵀ ∈ ℝ^{H×H}        z' = z + φ(k)
        y = (φ(q)ᵀ S') / (φ(q)·z' + ε)

    There is no recurrent weight: all of the input part is one projection. The state is (S, z), with S
    flattened to (B, H·H) so that padding masks broadcast over it like over any other state."""

    eps = 1e-12

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=3 * hidden_size)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size * self.hidden_size,), (self.hidden_size,))

    def step(self, p, state):
        s, z = state
        b, h = p.shape[0], self.hidden_size
        s = ops.reshape(s, (b, h, h))
        k, v, q = ops.split(p, 3, axis=-1)
        k, q = ops.elu(k) + 1.0, ops.elu(q) + 1.0
        s = s + ops.expand_dims(k, -1) * ops.expand_dims(v, 1)
        z = z + k
        num = ops.squeeze(ops.matmul(ops.expand_dims(q, 1), s), 1)
        y = num / (ops.sum(q * z, axis=-1, keepdims=True) + self.eps)
        return y, (ops.reshape(s, (b, h * h)), z)


class RLA(CellRNN):
    """Stacked RLA layers (see `RLACell`); the state is (S_n, z_n)."""

    cell_type = RLACell
