"""Gated recurrent cells: CFN, RAN, DeltaRNN, LTM, LSTMSC and NRU, with their sequence layers."""
from __future__ import annotations

import math

from ... import ops
from ...errors import SpagoError
from ..linear import Linear
from ..normalization import LayerNorm
from .base import Cell, CellRNN, shift

__all__ = ["CFNCell", "CFN", "RANCell", "RAN", "DeltaRNNCell", "DeltaRNN", "LTMCell", "LTM", "LSTMSCCell", "LSTMSC",
           "NRUCell", "NRU"]


class CFNCell(Cell):
    """Chaos-free network (Laurent & von Brecht, 2017, "A Recurrent Neural Network Without Chaos"):

        θ = σ(W_θ·x + U_θ·h + b_θ)       η = σ(W_η·x + U_η·h + b_η)
        h' = θ ⊙ tanh(h) + η ⊙ tanh(W·x + b)

    ``weight_ih`` stacks W_θ, W_η, W; ``weight_hh`` stacks U_θ, U_η."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=3 * hidden_size,
                         rec_rows=2 * hidden_size)

    def step(self, p, h):
        p_theta, p_eta, p_cand = ops.split(p, 3, axis=-1)
        r_theta, r_eta = ops.split(self.recurrent(h), 2, axis=-1)
        h = ops.sigmoid(p_theta + r_theta) * ops.tanh(h) + ops.sigmoid(p_eta + r_eta) * ops.tanh(p_cand)
        return h, h


class CFN(CellRNN):
    """Stacked CFN layers (see `CFNCell`)."""

    cell_type = CFNCell


class RANCell(Cell):
    """Recurrent additive network (Lee, Levy & Zettlemoyer, 2017, "Recurrent Additive Networks"):

        i = σ(W_i·x + U_i·h + b_i)       f = σ(W_f·x + U_f·h + b_f)
        c' = i ⊙ (W_c·x + b_c) + f ⊙ c
        h' = tanh(c')

    The state is (h, c). (The Go spaGO feeds h back where the paper has c; this follows the paper.)"""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=3 * hidden_size,
                         rec_rows=2 * hidden_size)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,), (self.hidden_size,))

    def step(self, p, state):
        h, c = state
        p_i, p_f, p_c = ops.split(p, 3, axis=-1)
        r_i, r_f = ops.split(self.recurrent(h), 2, axis=-1)
        c = ops.sigmoid(p_i + r_i) * p_c + ops.sigmoid(p_f + r_f) * c
        h = ops.tanh(c)
        return h, (h, c)


class RAN(CellRNN):
    """Stacked RAN layers (see `RANCell`); the state is (h_n, c_n)."""

    cell_type = RANCell


class DeltaRNNCell(Cell):
    """Delta-RNN (Ororbia, Mikolov & Reitter, 2017, "Learning Simpler Language Models with the Differential
    State Framework"), as the Go spaGO's ``deltarnn``:

        d₁ = β₁ ⊙ W·x + β₂ ⊙ U·h         d₂ = α ⊙ W·x ⊙ U·h
        z = tanh(d₁ + d₂ + b)             p = σ(W·x + b_p)
        h' = tanh(p ⊙ z + (1 − p) ⊙ h)

    α, β₁, β₂ start at 1 (the paper's second-order form with unit gates)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, False, dtype, generator, in_rows=hidden_size, rec_rows=hidden_size)
        h = hidden_size
        self.bias = self.param(h) if bias else None
        self.bias_p = self.param(h) if bias else None
        self.alpha, self.beta1, self.beta2 = (self.param(h, low=1.0, high=1.0) for _ in range(3))

    def step(self, wx, h):
        uh = self.recurrent(h)
        z = self.beta1 * wx + self.beta2 * uh + self.alpha * wx * uh
        p = wx
        if self.bias is not None:
            z, p = z + self.bias, p + self.bias_p
        z, p = ops.tanh(z), ops.sigmoid(p)
        h = ops.tanh(p * z + (1.0 - p) * h)
        return h, h


class DeltaRNN(CellRNN):
    """Stacked Delta-RNN layers (see `DeltaRNNCell`)."""

    cell_type = DeltaRNNCell


class LTMCell(Cell):
    """Long-term memory network (Nugaliyadde, Wong, Sohel & Xie, 2019, "Language Modeling through Long-Term
    Memory Network"), as the Go spaGO's ``ltm``:

        l_k = σ(W_k·x + U_k·h + b_k),  k = 1, 2, 3
        c' = σ(W_c·(l₁ ⊙ l₂ + c) + b_c)
        h' = c' ⊙ l₃

    The Go code (and the paper) use W_k·(x + h), which needs I = H; separate W_k and U_k allow any sizes
    and reduce to it with W_k = U_k. The state is (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype="float32", generator=None):
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=3 * hidden_size,
                         rec_rows=3 * hidden_size)
        self.weight_cell = self.param(hidden_size, hidden_size)
        self.bias_cell = self.param(hidden_size) if bias else None

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,), (self.hidden_size,))

    def step(self, p, state):
        h, c = state
        l1, l2, l3 = ops.split(ops.sigmoid(p + self.recurrent(h)), 3, axis=-1)
        c = (l1 * l2 + c) @ self.weight_cell.T
        c = ops.sigmoid(c + self.bias_cell if self.bias_cell is not None else c)
        h = c * l3
        return h, (h, c)


class LTM(CellRNN):
    """Stacked LTM layers (see `LTMCell`); the state is (h_n, c_n)."""

    cell_type = LTMCell


class LSTMSCCell(Cell):
    """LSTM with dynamic skip connections (Gui et al., 2019, "Long Short-Term Memory with Dynamic Skip
    Connections"), as the Go spaGO's ``lstmsc``: a policy picks which of the last K states to skip back to.

        π = softmax(W₂·tanh(W₁·[h_{t−1}; x] + b₁) + b₂)            over K skips, k = argmax π
        h̃ = λ·h_{t−1−k} + (1 − λ)·h_{t−1}     c̃ = λ·c_{t−1−k} + (1 − λ)·c_{t−1}
        i, f, o = σ(W·x + U·h̃ + b),  g = tanh(W_g·x + U_g·h̃ + b_g)
        c_t = f ⊙ c̃ + i ⊙ g,  h_t = o ⊙ tanh(c_t)

    The choice is an argmax, so no gradient reaches the policy through it; the paper trains the policy with
    REINFORCE, for which the state carries Σ_t log π(k_t), the log-probability of the skips taken (a loss
    term −reward·Σ log π trains it). The state is the last K hidden vectors, the last K cells, then that
    sum (B, 1)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, skips: int = 3, lam: float = 0.5,
                 policy_size: int | None = None, dtype="float32", generator=None):
        if skips < 1:
            raise SpagoError(f"LSTMSCCell: skips must be at least 1, got {skips}")
        h, k, m = hidden_size, int(skips), int(policy_size or hidden_size)
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=4 * h + m, rec_rows=4 * h + m)
        self.skips, self.lam, self.policy_size = k, float(lam), m
        self.policy = Linear(m, k, bias, dtype, generator)

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,),) * (2 * self.skips) + ((1,),)

    def step(self, p, state):
        k, hs = self.skips, self.hidden_size
        hist_h, hist_c, log_prob = state[:k], state[k:2 * k], state[-1]
        p_gates, p_pol = ops.split(p, [4 * hs], axis=-1)
        w_pol = self.weight_hh[4 * hs:]
        scores = self.policy(ops.tanh(p_pol + hist_h[0] @ w_pol.T))
        pick = ops.one_hot(ops.argmax(scores, axis=-1), k, dtype=p.dtype)  # (B, K)
        log_prob = log_prob + ops.sum(pick * ops.log_softmax(scores, axis=-1), axis=-1, keepdims=True)
        skip_h = sum(pick[:, j:j + 1] * hist_h[j] for j in range(k))
        skip_c = sum(pick[:, j:j + 1] * hist_c[j] for j in range(k))
        h_prev = self.lam * skip_h + (1.0 - self.lam) * hist_h[0]
        c_prev = self.lam * skip_c + (1.0 - self.lam) * hist_c[0]
        i, f, g, o = ops.split(p_gates + h_prev @ self.weight_hh[:4 * hs].T, 4, axis=-1)
        c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, shift(hist_h, h) + shift(hist_c, c) + (log_prob,)


class LSTMSC(CellRNN):
    """Stacked LSTM-with-skip-connections layers (see `LSTMSCCell`)."""

    cell_type = LSTMSCCell


class NRUCell(Cell):
    """Non-saturating recurrent unit (Chandar et al., 2019, "Towards Non-saturating Recurrent Units for
    Modelling Long-term Dependencies"), as the Go spaGO's ``nru``: a memory vector m (size M) written
    by additive and subtractive outer-product updates, never squashed.

        h_t = relu([LN](W_x·x + W_h·h_{t−1} + W_m·m_{t−1} + b))
        α = [relu](W_α·[h_t; m_{t−1}] + b_α) ∈ ℝ^K;   u₁, u₂ = W_u·[h_t; m_{t−1}] + b_u ∈ ℝ^{√(MK)} each
        v = normalise₅([relu](u₁ ⊗ u₂)) ∈ ℝ^{K×M}      (5-norm down each column of the √(MK)×√(MK)
                                                       outer product; a tiny ε keeps all-zero columns finite)
        β, v_β likewise with their own weights
        m_t = m_{t−1} + (1/K) Σ_k (α_k v_k − β_k v_β,k)

    M·K must be a perfect square. The state is (h, m)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, memory_size: int = 16, k: int = 4,
                 use_relu: bool = False, layer_norm: bool = False, dtype="float32", generator=None):
        side = math.isqrt(memory_size * k)
        if memory_size < 1 or k < 1 or side * side != memory_size * k:
            raise SpagoError(f"NRUCell: memory_size·k must be a perfect square, got memory_size={memory_size}, "
                             f"k={k}")
        h, m = hidden_size, memory_size
        super().__init__(input_size, hidden_size, bias, dtype, generator, in_rows=h, rec_rows=h)
        self.memory_size, self.k, self.side = m, int(k), side
        self.use_relu, self.layer_norm = bool(use_relu), bool(layer_norm)
        self.weight_m = self.param(h, m)
        # write (α, u) and erase (β, u_β) heads, each from [h; m]
        self.heads = Linear(h + m, 2 * (k + 2 * side), bias, dtype, generator)
        self.norm = LayerNorm(h, dtype=dtype) if layer_norm else None

    def state_shapes(self) -> tuple:
        return ((self.hidden_size,), (self.memory_size,))

    def _relu(self, x):
        return ops.relu(x) if self.use_relu else x

    def _write(self, coeff, u):
        """(1/K)·Σ_k coeff_k · v_k for one head: coeff (B, K), u (B, 2·side)."""
        s, b = self.side, u.shape[0]
        u1, u2 = ops.split(u, 2, axis=-1)
        v = self._relu(ops.expand_dims(u1, -1) * ops.expand_dims(u2, 1))   # (B, side, side)
        norm = ops.power(ops.sum(ops.power(ops.abs(v), 5.0), axis=1, keepdims=True) + 1e-30, 0.2) + 1e-10
        v = ops.reshape(v / norm, (b, self.k, self.memory_size))
        return ops.sum(ops.expand_dims(coeff, -1) * v, axis=1) * (1.0 / self.k)

    def step(self, p, state):
        h, m = state
        z = p + self.recurrent(h) + m @ self.weight_m.T
        h = ops.relu(self.norm(z) if self.norm is not None else z)
        k, s = self.k, self.side
        alpha, u_a, beta, u_b = ops.split(self.heads(ops.concat([h, m], axis=-1)),
                                          [k, k + 2 * s, 2 * k + 2 * s], axis=-1)
        m = m + self._write(self._relu(alpha), u_a) - self._write(self._relu(beta), u_b)
        return h, (h, m)


class NRU(CellRNN):
    """Stacked NRU layers (see `NRUCell`); the state is (h_n, m_n)."""

    cell_type = NRUCell
