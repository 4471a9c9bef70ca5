"""Attention beyond softmax(QKᵀ)V: linear attention, the Synthesizer's synthetic attention and the
Reformer's LSH attention, as the Go spaGO has them. All take batch-first inputs (B, S, E)."""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..errors import ShapeError, SpagoError
from ..ops.elementwise import _t
from .attention import MASKED_SCORE
from .linear import Linear
from .module import Module, Param

__all__ = ["linear_attention", "LinearAttention", "SyntheticAttention", "LSHAttention"]


def _positive_elu(x):
    """φ(x) = elu(x) + 1, the feature map of Katharopoulos et al. (positive, so the normaliser is too)."""
    return ops.elu(x) + 1.0


def linear_attention(q, k, v, causal: bool = False, key_mask=None, eps: float = 1e-12):
    """Linear attention (Katharopoulos et al., 2020), O(S) in the sequence length when not causal:

        out_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / (φ(q_i)·Σ_j φ(k_j) + ε),   φ(x) = elu(x) + 1

    q, k (B, S, d), v (B, S, d_v). ``causal`` sums only over j ≤ i. ``key_mask`` (B, S) is 1 at real keys
    and 0 at padding."""
    q, k, v = _positive_elu(_t(q)), _positive_elu(_t(k)), _t(v)
    if key_mask is not None:
        k = k * ops.expand_dims(ops.cast(_t(key_mask), k.dtype), -1)
    if causal:
        s = q.shape[1]
        a = ops.matmul(q, ops.swapaxes(k, -1, -2)) * np.tril(np.ones((s, s))).astype(q.dtype)
        return ops.matmul(a, v) / (ops.sum(a, axis=-1, keepdims=True) + eps)
    kv = ops.matmul(ops.swapaxes(k, -1, -2), v)                       # (B, d, d_v)
    z = ops.sum(k, axis=1, keepdims=True)                             # (B, 1, d)
    return ops.matmul(q, kv) / (ops.sum(q * z, axis=-1, keepdims=True) + eps)


def _check_input(x, size: int, owner: str):
    x = _t(x)
    if x.ndim != 3 or x.shape[-1] != size:
        raise ShapeError(f"{owner}: expected input of shape (batch, length, {size}), got {x.shape}")
    return x


class LinearAttention(Module):
    """Self-attention by `linear_attention` (Katharopoulos et al., 2020, "Transformers are RNNs: Fast
    Autoregressive Transformers with Linear Attention") over learned projections:

        Q, K, V = x·W_Qᵀ + b_Q, x·W_Kᵀ + b_K, x·W_Vᵀ + b_V,   y = linear_attention(Q, K, V)"""

    def __init__(self, input_size: int, key_size: int | None = None, value_size: int | None = None,
                 causal: bool = False, eps: float = 1e-12, dtype="float32", generator=None):
        super().__init__()
        self.input_size = int(input_size)
        self.key_size, self.value_size = int(key_size or input_size), int(value_size or input_size)
        self.causal, self.eps = bool(causal), float(eps)
        self.query = Linear(input_size, self.key_size, dtype=dtype, generator=generator)
        self.key = Linear(input_size, self.key_size, dtype=dtype, generator=generator)
        self.value = Linear(input_size, self.value_size, dtype=dtype, generator=generator)

    def forward(self, x, mask=None):
        """x (B, S, E) → (B, S, value_size); ``mask`` (B, S) is 1 at real tokens, 0 at padding."""
        x = _check_input(x, self.input_size, self._path or "LinearAttention")
        return linear_attention(self.query(x), self.key(x), self.value(x), self.causal, mask, self.eps)


class SyntheticAttention(Module):
    """Synthetic attention (Tay et al., 2020, "Synthesizer: Rethinking Self-Attention in Transformer Models"):
    the weights are not dot products of token pairs.

        dense:   A_i = softmax_j(w_j · relu(W₁·x_i + b₁))    w_j: row j of a learned (max_length, hidden) matrix
        random:  A = softmax(R[:S, :S])                      R: a learned (or ``fixed``) (max_length, max_length)
        y_i = Σ_j A_ij · (W_V·x_j + b_V)

    ``dense`` is the Go spaGO's form. Sequences may be at most ``max_length`` long."""

    def __init__(self, input_size: int, max_length: int, hidden_size: int | None = None,
                 value_size: int | None = None, mode: str = "dense", fixed: bool = False, dtype="float32",
                 generator=None):
        super().__init__()
        if mode not in ("dense", "random"):
            raise SpagoError(f"SyntheticAttention: mode must be 'dense' or 'random', got {mode!r}")
        self.input_size, self.max_length, self.mode = int(input_size), int(max_length), mode
        hidden = int(hidden_size or input_size)
        self.value = Linear(input_size, int(value_size or input_size), dtype=dtype, generator=generator)
        rng = (generator or ops.random.default_generator).numpy()
        if mode == "dense":
            self.hidden = Linear(input_size, hidden, dtype=dtype, generator=generator)
            self.weight = Param(rng.uniform(-1, 1, (max_length, hidden)) / math.sqrt(hidden), dtype)
        else:
            self.weight = Param(rng.standard_normal((max_length, max_length)), dtype, requires_grad=not fixed)

    def weights(self, x):
        """The attention weights (B or 1, S, S) for x (B, S, E)."""
        s = x.shape[1]
        if s > self.max_length:
            raise ShapeError(f"{self._path or 'SyntheticAttention'}: the sequence has {s} positions, more than "
                             f"max_length={self.max_length}")
        if self.mode == "dense":
            scores = ops.matmul(ops.relu(self.hidden(x)), self.weight[:s].T)
        else:
            scores = ops.expand_dims(self.weight[:s, :s], 0)
        return ops.softmax(scores, axis=-1)

    def forward(self, x):
        """x: (B, S, input_size), batch-first, S at most the configured length; returns (B, S, value size)."""
        x = _check_input(x, self.input_size, self._path or "SyntheticAttention")
        return ops.matmul(self.weights(x), self.value(x))


class LSHAttention(Module):
    """LSH attention (Kitaev, Kaiser & Levskaya, 2020, "Reformer: The Efficient Transformer"), as the Go
    spaGO has it: queries and keys are shared, keys are the unit-length queries, and each position attends
    only to the positions hashed to its bucket by a random rotation R (seeded, not trained):

        q = W_Q·x + b_Q,   k = q / ‖q‖,   v = W_V·x + b_V
        h(u) = argmax([u·R ; −u·R])                           2·``buckets_half`` buckets
        y_i = Σ_{j: h(k_j) = h(q_i)} softmax_j(s · q_i·k_j) · v_j,   s = 1/√d by default

    Every position shares its own bucket (k_i points where q_i does), so no row is empty. Hashing is an
    argmax, so gradients flow through the attention but not through the choice of buckets."""

    def __init__(self, input_size: int, query_size: int | None = None, value_size: int | None = None,
                 buckets_half: int = 2, scale: float | None = None, dtype="float32", generator=None):
        super().__init__()
        if buckets_half < 1:
            raise SpagoError(f"LSHAttention: buckets_half must be at least 1, got {buckets_half}")
        self.input_size = int(input_size)
        self.query_size, self.value_size = int(query_size or input_size), int(value_size or input_size)
        self.buckets_half = int(buckets_half)
        self.scale = float(scale) if scale is not None else 1.0 / math.sqrt(self.query_size)
        self.query = Linear(input_size, self.query_size, dtype=dtype, generator=generator)
        self.value = Linear(input_size, self.value_size, dtype=dtype, generator=generator)
        rng = (generator or ops.random.default_generator).numpy()
        self.rotation = Param(rng.standard_normal((self.query_size, self.buckets_half)), dtype, requires_grad=False)

    def buckets(self, u):
        """The bucket of every vector of u (..., d): an integer tensor (...)."""
        r = ops.matmul(u, self.rotation)
        return ops.argmax(ops.concat([r, -r], axis=-1), axis=-1)

    def forward(self, x):
        """x: (B, S, input_size), batch-first; returns (B, S, value size). No mask: every position attends within its bucket."""
        x = _check_input(x, self.input_size, self._path or "LSHAttention")
        q = self.query(x)
        k = q / ops.sqrt(ops.sum(q * q, axis=-1, keepdims=True))
        hq, hk = self.buckets(q), self.buckets(k)
        same = ops.eq(ops.expand_dims(hq, -1), ops.expand_dims(hk, 1))      # (B, S, S)
        scores = ops.where(same, ops.matmul(q, ops.swapaxes(k, -1, -2)) * self.scale, MASKED_SCORE)
        return ops.matmul(ops.softmax(scores, axis=-1), self.value(x))
