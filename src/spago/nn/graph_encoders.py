"""Sentence encoders that treat a sentence as a graph of word nodes around one sentence node, updated
together for a fixed number of steps: the sentence-state LSTM and the Star-Transformer."""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..ops.elementwise import _t
from . import init
from .attention_variants import linear_attention
from .linear import Linear
from .module import Module, Param
from .normalization import LayerNorm

__all__ = ["SLSTM", "StarTransformer"]


def _check(x, size: int, owner: str):
    x = _t(x)
    if x.ndim != 3 or x.shape[-1] != size or x.shape[1] < 1:
        raise ShapeError(f"{owner}: expected input of shape (batch, length ≥ 1, {size}), got {x.shape}")
    return x


class SLSTM(Module):
    """Sentence-state LSTM (Zhang, Liu & Song, 2018, "Sentence-State LSTM for Text Representation"), as the
    Go spaGO's ``slstm``: every word i has a state (h_i, c_i), the sentence one (g, c_g); each of ``steps``
    steps updates all of them from the previous step's values, with a window of one neighbour each side.

        ξ_i = [h_{i−1}; h_i; h_{i+1}]   (the learned ``start``/``end`` vectors beyond the ends)
        i, l, r, f, s, o = σ(W_*·ξ_i + U_*·x_i + V_*·g + b_*),   u = tanh(W_u·ξ_i + U_u·x_i + V_u·g + b_u)
        c_i' = l ⊙ c_{i−1} + f ⊙ c_i + r ⊙ c_{i+1} + s ⊙ c_g + i ⊙ u,   h_i' = o ⊙ tanh(c_i')
        h̄ = mean_i h_i;   f_g, o_g = σ(W·g + U·h̄ + b);   f_i = σ(W_f·g + U_f·h_i + b_f)
        c_g' = f_g ⊙ c_g + Σ_i f_i ⊙ c_i,   g' = o_g ⊙ tanh(c_g')

    Gates are sigmoids as in the Go spaGO (the paper normalises them with a softmax); ``mask`` (B, T) keeps
    padding out of the sentence node. Returns (h (B, T, H), g (B, H))."""

    def __init__(self, input_size: int, hidden_size: int, steps: int = 3, dtype="float32", generator=None):
        super().__init__()
        self.input_size, self.hidden_size, self.steps = int(input_size), int(hidden_size), int(steps)
        h = hidden_size
        self.word_context = Linear(3 * h, 7 * h, dtype=dtype, generator=generator)          # W_*, b_*
        self.word_input = Linear(input_size, 7 * h, bias=False, dtype=dtype, generator=generator)   # U_*
        self.word_sentence = Linear(h, 7 * h, bias=False, dtype=dtype, generator=generator)         # V_*
        self.sentence_state = Linear(h, 3 * h, dtype=dtype, generator=generator)            # W for f_g, o_g, f_i
        self.sentence_words = Linear(h, 3 * h, bias=False, dtype=dtype, generator=generator)        # U for f_g, o_g, f_i
        bound = 1.0 / math.sqrt(h)
        self.start, self.end, self.initial = (init.uniform(Param(np.zeros(h), dtype), -bound, bound, generator)
                                              for _ in range(3))

    def forward(self, x, mask=None):
        """x: (B, T, input_size), batch-first; mask: optional (B, T), 1 for real tokens and 0 for padding (padded words neither update the sentence state nor count in its mean). Returns the word states (B, T, hidden) and the sentence state (B, hidden)."""
        x = _check(x, self.input_size, self._path or "SLSTM")
        b, t, hs = x.shape[0], x.shape[1], self.hidden_size
        m = ops.ones(b, t, 1, dtype=x.dtype) if mask is None else ops.expand_dims(ops.cast(_t(mask), x.dtype), -1)
        count = ops.sum(m, axis=1)                                                   # (B, 1)
        h = c = ops.broadcast_to(self.initial, (b, t, hs))
        g = cg = ops.broadcast_to(self.initial, (b, hs))
        ux = self.word_input(x)
        start, end = ops.broadcast_to(self.start, (b, 1, hs)), ops.broadcast_to(self.end, (b, 1, hs))
        for _ in range(self.steps):
            left_h, right_h = ops.concat([start, h[:, :-1]], axis=1), ops.concat([h[:, 1:], end], axis=1)
            left_c, right_c = ops.concat([start, c[:, :-1]], axis=1), ops.concat([c[:, 1:], end], axis=1)
            z = self.word_context(ops.concat([left_h, h, right_h], axis=-1)) + ux + \
                ops.expand_dims(self.word_sentence(g), 1)
            gi, gl, gr, gf, gs, go, gu = ops.split(z, 7, axis=-1)
            gi, gl, gr, gf, gs, go = (ops.sigmoid(v) for v in (gi, gl, gr, gf, gs, go))
            new_c = gl * left_c + gf * c + gr * right_c + gs * ops.expand_dims(cg, 1) + gi * ops.tanh(gu)
            new_h = go * ops.tanh(new_c)
            # the sentence node, from the previous step's words
            mean_h = ops.sum(h * m, axis=1) / count
            sf, so, _ = ops.split(self.sentence_state(g) + self.sentence_words(mean_h), 3, axis=-1)
            _, _, wf = ops.split(self.sentence_words(h), 3, axis=-1)
            wf = ops.sigmoid(wf + ops.expand_dims(ops.split(self.sentence_state(g), 3, axis=-1)[2], 1))
            cg = ops.sigmoid(sf) * cg + ops.sum(wf * c * m, axis=1)
            g = ops.sigmoid(so) * ops.tanh(cg)
            h, c = new_h * m, new_c * m
        return h, g


class StarTransformer(Module):
    """Star-Transformer (Guo et al., 2019, "Star-Transformer"), as the Go spaGO has it, with linear attention
    (`linear_attention`) in place of softmax attention: satellites h_i (one per word) and a relay s.

        h_i ← LN(relu(Att(h_i; [h_{i−1}, h_i, h_{i+1}, x_i, s])))     (neighbours wrap around the ends)
        s  ← LN(relu(Att(s; [s, h_1, …, h_T])))
        Att(q; C) = linear_attention(W_Q·q, W_K·C, W_V·C)

    starting from h = x and s = mean(x), for ``steps`` steps. Returns (h (B, T, D), s (B, D))."""

    def __init__(self, size: int, steps: int = 2, key_size: int | None = None, dtype="float32", generator=None):
        super().__init__()
        self.size, self.steps = int(size), int(steps)
        k = int(key_size or size)

        def lin(out):
            return Linear(size, out, dtype=dtype, generator=generator)

        self.query, self.key, self.value = lin(k), lin(k), lin(size)
        self.relay_query, self.relay_key, self.relay_value = lin(k), lin(k), lin(size)
        self.satellite_norm, self.relay_norm = LayerNorm(size, dtype=dtype), LayerNorm(size, dtype=dtype)

    def forward(self, x):
        """x: (B, T, size), batch-first, no padding mask; returns the satellites (B, T, size) and the relay (B, size)."""
        x = _check(x, self.size, self._path or "StarTransformer")
        b, t, d = x.shape
        h, s = x, ops.mean(x, axis=1)
        for _ in range(self.steps):
            left = ops.concat([h[:, -1:], h[:, :-1]], axis=1)
            right = ops.concat([h[:, 1:], h[:, :1]], axis=1)
            relay = ops.broadcast_to(ops.expand_dims(s, 1), (b, t, d))
            context = ops.reshape(ops.stack([left, h, right, x, relay], axis=2), (b * t, 5, d))
            q = ops.reshape(self.query(h), (b * t, 1, -1))
            att = linear_attention(q, self.key(context), self.value(context))
            h = self.satellite_norm(ops.relu(ops.reshape(att, (b, t, d))))
            context = ops.concat([ops.expand_dims(s, 1), h], axis=1)
            att = linear_attention(self.relay_query(ops.expand_dims(s, 1)), self.relay_key(context),
                                   self.relay_value(context))
            s = self.relay_norm(ops.relu(att[:, 0]))
        return h, s
