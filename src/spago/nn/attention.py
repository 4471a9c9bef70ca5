"""Scaled dot-product attention and multi-head attention (Vaswani et al., 2017, "Attention Is All You Need").

    Attention(Q, K, V) = softmax(Q·Kᵀ / √d + M) · V
    MultiHead(Q, K, V) = Concat(head_1, …, head_h) · W_O,  head_i = Attention(Q·W_Q,i, K·W_K,i, V·W_V,i)

M is the mask: a boolean mask keeps the scores where it is True (the others get a large negative score,
so they receive no weight), a float mask is added to the scores as it is.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes, ops
from ..errors import DTypeError, ShapeError, SpagoError
from ..ops._util import broadcast_shapes
from ..ops.elementwise import _t
from ..ops.random import Generator
from ..tensor import Tensor
from .linear import Linear
from .module import Module

__all__ = ["scaled_dot_product_attention", "MultiHeadAttention"]

# The score of a masked-out position: finite (so a fully masked row gives uniform weights rather than NaN,
# and fast-math code never meets an infinity), yet far enough below any real score that exp() makes it 0.
MASKED_SCORE = -1e9


def _apply_mask(scores, mask, owner: str):
    mask = _t(mask)
    try:
        fits = broadcast_shapes(mask.shape, scores.shape) == scores.shape
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(f"{owner}: mask of shape {mask.shape} does not broadcast to the attention scores "
                         f"(..., query length, key length) = {scores.shape}")
    if mask.dtype == dtypes.bool_:
        return ops.where(mask, scores, MASKED_SCORE)
    if dtypes.is_float(mask.dtype):
        return scores + ops.cast(mask, scores.dtype)
    raise DTypeError(f"{owner}: mask must be bool (True = attend) or float (added to the scores), "
                     f"got {mask.dtype.name}")


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False,
                                 dropout_p: float = 0.0, training: bool = False, generator: Generator | None = None,
                                 return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """softmax(q·kᵀ/√d + mask)·v for q (..., S_q, d), k (..., S_k, d), v (..., S_k, d_v) → (..., S_q, d_v).

    ``mask`` broadcasts to (..., S_q, S_k): bool (True = attend) or float (added to the scores).
    ``causal`` lets query i attend only to keys j <= i (aligned at the top left, as in PyTorch).
    ``dropout_p`` drops attention weights while ``training``. ``return_weights`` also returns the weights.
    """
    owner = "scaled_dot_product_attention"
    q, k, v = _t(q), _t(k), _t(v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ShapeError(f"{owner}: {name} must have at least 2 axes (..., length, features), got {t.shape}")
        if not dtypes.is_float(t.dtype):
            raise DTypeError(f"{owner}: {name} must be floating, got {t.dtype.name}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"{owner}: q and k must have the same feature size, got q {q.shape} and k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{owner}: k and v must have the same length (axis -2), got k {k.shape} and v {v.shape}")
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = _apply_mask(scores, mask, owner)
    if causal:
        lq, lk = q.shape[-2], k.shape[-2]
        scores = ops.where(np.tril(np.ones((lq, lk), dtype=bool)), scores, MASKED_SCORE)
    weights = ops.softmax(scores, axis=-1)
    if dropout_p:
        weights = ops.dropout(weights, dropout_p, training, generator)
    out = ops.matmul(weights, v)
    return (out, weights) if return_weights else out


class MultiHeadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017) over batch-first inputs (B, S, E).

    The query, key and value are projected to ``num_heads`` heads of size E / num_heads, each head attends
    with scaled dot products, and the concatenated heads are projected back to E:

        head_i = softmax(Q_i·K_iᵀ / √(E/h) + M) · V_i,   y = Concat(head_1, …, head_h) · W_Oᵀ + b_O

    Self-attention: ``forward(x)``; cross-attention: ``forward(query, key, value)`` where key and value may
    have their own feature sizes ``kdim`` and ``vdim`` (both default to ``embed_dim``, as in PyTorch). The four
    projections are separate `Linear` layers (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``), so checkpoints
    that store them separately (BERT, BART) map onto them one to one.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, dropout: float = 0.0,
                 kdim: int | None = None, vdim: int | None = None, dtype="float32", generator=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ShapeError(f"MultiHeadAttention: embed_dim and num_heads must be positive, "
                             f"got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ShapeError(f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise SpagoError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.kdim, self.vdim = int(kdim or embed_dim), int(vdim or embed_dim)
        self.dropout, self.generator = float(dropout), generator
        self.q_proj = Linear(embed_dim, embed_dim, bias, dtype, generator)
        self.k_proj = Linear(self.kdim, embed_dim, bias, dtype, generator)
        self.v_proj = Linear(self.vdim, embed_dim, bias, dtype, generator)
        self.out_proj = Linear(embed_dim, embed_dim, bias, dtype, generator)

    def _check(self, name: str, x, features: int, batch: int | None):
        if x.ndim != 3 or x.shape[-1] != features or (batch is not None and x.shape[0] != batch):
            want = f"({batch if batch is not None else 'B'}, S, {features})"
            raise ShapeError(f"{self._path or 'MultiHeadAttention'}: expected {name} of shape {want} "
                             f"(batch first), got {x.shape}")

    def _heads(self, x):
        """(B, S, E) → (B, H, S, E/H)."""
        b, s, _ = x.shape
        return ops.transpose(ops.reshape(x, (b, s, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def forward(self, query, key=None, value=None, mask=None, causal: bool = False, key_padding_mask=None,
                need_weights: bool = False):
        """query (B, S_q, E), key (B, S_k, kdim), value (B, S_k, vdim) → (B, S_q, E).

        ``mask`` broadcasts to (B, H, S_q, S_k); a 3-D mask (B, S_q, S_k) applies to every head.
        ``key_padding_mask`` (B, S_k) is True at real keys and False at padding. Both bool masks keep where
        True; a float ``mask`` is added to the scores. ``need_weights`` also returns the attention weights
        (B, H, S_q, S_k)."""
        query = _t(query)
        key = query if key is None else _t(key)
        value = key if value is None else _t(value)
        self._check("query", query, self.embed_dim, None)
        self._check("key", key, self.kdim, query.shape[0])
        self._check("value", value, self.vdim, query.shape[0])
        if key.shape[1] != value.shape[1]:
            raise ShapeError(f"{self._path or 'MultiHeadAttention'}: key and value must have the same length, "
                             f"got {key.shape} and {value.shape}")
        if mask is not None:
            mask = _t(mask)
            if mask.ndim == 3:
                mask = ops.expand_dims(mask, 1)
        if key_padding_mask is not None:
            kpm = _t(key_padding_mask)
            if kpm.dtype != dtypes.bool_ or kpm.shape != (key.shape[0], key.shape[1]):
                raise ShapeError(f"{self._path or 'MultiHeadAttention'}: key_padding_mask must be bool of shape "
                                 f"{(key.shape[0], key.shape[1])}, got {kpm.dtype.name} {kpm.shape}")
            kpm = ops.reshape(kpm, (key.shape[0], 1, 1, key.shape[1]))
            if mask is None:
                mask = kpm
            elif mask.dtype == dtypes.bool_:
                mask = ops.where(kpm, mask, False)
            else:
                mask = ops.where(kpm, mask, MASKED_SCORE)
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(value))
        out, weights = scaled_dot_product_attention(q, k, v, mask, causal, self.dropout, self.training,
                                                    self.generator, return_weights=True)
        b, _, s, _ = out.shape
        out = self.out_proj(ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, s, self.embed_dim)))
        return (out, weights) if need_weights else out

    def decode_step(self, query, cache: tuple | None = None):
        """Incremental causal self-attention with a key/value cache: ``query`` (B, n, E) are the next n
        positions, ``cache`` the (keys, values) of the positions before, each (B, H, P, E/H), or None at the
        start. Returns (output (B, n, E), new cache). Decoding a sequence one step at a time this way gives
        the same outputs as ``forward(x, causal=True)`` on the whole of it, with each step projecting only
        its new positions."""
        query = _t(query)
        self._check("query", query, self.embed_dim, None)
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            raise ShapeError(f"{self._path or 'MultiHeadAttention'}: decode_step is self-attention; it needs "
                             f"kdim = vdim = embed_dim, got {self.kdim} and {self.vdim}")
        k, v = self._heads(self.k_proj(query)), self._heads(self.v_proj(query))
        past = 0
        if cache is not None:
            if not isinstance(cache, (tuple, list)) or len(cache) != 2:
                raise ShapeError(f"{self._path or 'MultiHeadAttention'}: expected the cache as (keys, values), "
                                 f"got {type(cache).__name__}")
            ck, cv = _t(cache[0]), _t(cache[1])
            want = (query.shape[0], self.num_heads, ck.shape[2] if ck.ndim == 4 else -1, self.head_dim)
            if ck.shape != want or cv.shape != want:
                raise ShapeError(f"{self._path or 'MultiHeadAttention'}: expected cached keys and values of shape "
                                 f"(B, H, P, E/H) = {want}, got {ck.shape} and {cv.shape}")
            past = ck.shape[2]
            k, v = ops.concat([ck, k], axis=2), ops.concat([cv, v], axis=2)
        n = query.shape[1]
        mask = np.tril(np.ones((n, past + n), dtype=bool), k=past)  # new position i sees keys up to past + i
        out = scaled_dot_product_attention(self._heads(self.q_proj(query)), k, v, mask)
        out = self.out_proj(ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (query.shape[0], n, self.embed_dim)))
        return out, (k, v)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout:g}"
