"""Linear-chain conditional random field (Lafferty, McCallum & Pereira, 2001), the output layer of
sequence labelers such as the BiLSTM-CRF (Huang, Xu & Yu, 2015; Lample et al., 2016).

A tag path y₁…y_T over emission scores E (T × K, e.g. a network's per-token outputs) scores

    s(y) = start[y₁] + Σₜ E[t, yₜ] + Σₜ₌₂ transitions[yₜ₋₁, yₜ] + end[y_T]

and the CRF models p(y | E) = exp s(y) / Z with Z = Σ_y' exp s(y'). The forward algorithm computes
log Z in O(T·K²) by the recursion

    α₁ = start + E[1],   αₜ[j] = logsumexp_i(αₜ₋₁[i] + transitions[i, j]) + E[t, j],
    log Z = logsumexp_j(α_T[j] + end[j])

written with ops as a `spago.scan` over time, so the negative log-likelihood −log p(y | E) differentiates
and compiles to one loop whatever the length (``unroll=True`` traces the Python loop instead). Viterbi
decoding replaces logsumexp by max and follows back-pointers: `decode` runs in NumPy on the same
parameters, `viterbi` is the same algorithm as two scans (forward, then back-pointers followed
backward), so it compiles with the network that makes the emissions.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import DTypeError, ShapeError, SpagoError
from . import init
from .module import Module, Param

__all__ = ["CRF"]


class CRF(Module):
    """``transitions`` (K × K, from row tag to column tag), ``start`` and ``end`` (K), all ~ U(−0.1, 0.1).

    Inputs are batch-first: emissions (B, T, K), tags (B, T) integers, mask (B, T) 1 on real tokens and 0 on
    padding; each row's mask is a prefix of ones and every sequence has at least one token."""

    def __init__(self, num_tags: int, dtype="float32", generator=None, unroll: bool = False):
        super().__init__()
        self.unroll = bool(unroll)
        if num_tags <= 0:
            raise SpagoError(f"CRF: num_tags must be positive, got {num_tags}")
        self.num_tags = int(num_tags)
        k = self.num_tags
        self.transitions = init.uniform(Param(np.zeros((k, k)), dtype), -0.1, 0.1, generator)
        self.start = init.uniform(Param(np.zeros(k), dtype), -0.1, 0.1, generator)
        self.end = init.uniform(Param(np.zeros(k), dtype), -0.1, 0.1, generator)

    # -- checks ------------------------------------------------------------------------------------------
    def _check(self, emissions, tags=None, mask=None):
        where = self._path or "CRF"
        e = ops.elementwise._t(emissions)
        if e.ndim != 3 or e.shape[-1] != self.num_tags:
            raise ShapeError(f"{where}: expected emissions of shape (batch, time, {self.num_tags}), got {e.shape}")
        if e.dtype.kind != "f":
            raise DTypeError(f"{where}: expected floating emissions, got {e.dtype.name}")
        if e.shape[1] == 0:
            raise ShapeError(f"{where}: the sequences are empty (emissions of shape {e.shape})")
        batch, steps = e.shape[:2]
        if tags is not None:
            tags = ops.elementwise._t(tags)
            if tags.shape != (batch, steps):
                raise ShapeError(f"{where}: expected tags of shape {(batch, steps)}, got {tags.shape}")
            if tags.dtype.kind not in "iu":
                raise DTypeError(f"{where}: tags must be integers, got {tags.dtype.name}")
            if tags.is_concrete and tags.size:
                lo, hi = int(tags.numpy().min()), int(tags.numpy().max())
                if lo < 0 or hi >= self.num_tags:
                    raise SpagoError(f"{where}: tags must be in [0, {self.num_tags}), got values from {lo} to {hi}")
        if mask is not None:
            mask = ops.elementwise._t(mask)
            if mask.shape != (batch, steps):
                raise ShapeError(f"{where}: expected a mask of shape {(batch, steps)}, got {mask.shape}")
            if mask.is_concrete:
                m = mask.numpy().astype(bool)
                if not m[:, 0].all():
                    raise SpagoError(f"{where}: every sequence needs its first step unmasked (mask[:, 0] == 1)")
                if (m[:, 1:] & ~m[:, :-1]).any():
                    raise SpagoError(f"{where}: each row of the mask must be ones followed by zeros (padding last)")
            mask = ops.cast(mask, e.dtype)
        return e, tags, mask

    # -- scores ------------------------------------------------------------------------------------------
    def score(self, emissions, tags, mask=None):
        """s(y) for the given tag paths: (B,)."""
        e, tags, m = self._check(emissions, tags, mask)
        batch, steps, k = e.shape
        onehot = ops.one_hot(tags, k, dtype=e.dtype)                       # (B, T, K)
        emit = ops.sum(e * onehot, axis=-1)                                # (B, T)
        if m is not None:
            emit = emit * m
        total = ops.sum(emit, axis=1) + ops.sum(onehot[:, 0] * self.start, axis=-1)
        if steps > 1:
            prev = ops.reshape(onehot[:, :-1], (-1, k)) @ self.transitions  # row of transitions from y_{t-1}
            moves = ops.sum(ops.reshape(prev, (batch, steps - 1, k)) * onehot[:, 1:], axis=-1)
            if m is not None:
                moves = moves * m[:, 1:]
            total = total + ops.sum(moves, axis=1)
        if m is None:
            last = onehot[:, -1]
        else:  # the one-hot of each row's last real tag: where the mask steps down from 1 to 0
            drop = m - ops.concat([m[:, 1:], ops.zeros(batch, 1, dtype=e.dtype)], axis=1)
            last = ops.sum(onehot * ops.expand_dims(drop, -1), axis=1)
        return total + ops.sum(last * self.end, axis=-1)

    def log_partition(self, emissions, mask=None):
        """log Z for each sequence by the forward algorithm: (B,)."""
        e, _, m = self._check(emissions, None, mask)
        trans = ops.expand_dims(self.transitions, 0)                       # (1, K, K)

        def step(alpha, inputs):
            e_t, m_t = inputs
            nxt = ops.logsumexp(ops.expand_dims(alpha, -1) + trans, axis=1) + e_t
            return (nxt if m_t is None else alpha + m_t * (nxt - alpha)), None

        alpha = self.start + e[:, 0]                                       # (B, K)
        if e.shape[1] > 1:
            alpha, _ = ops.scan(step, alpha, self._later_steps(e, m), unroll=self.unroll)
        return ops.logsumexp(alpha + self.end, axis=-1)

    @staticmethod
    def _later_steps(e, m) -> tuple:
        """Emissions (T−1, B, K) and mask (T−1, B, 1) of steps 2…T, time-major, as a scan reads them."""
        steps = ops.swapaxes(e[:, 1:], 0, 1)
        return steps, None if m is None else ops.expand_dims(ops.swapaxes(m[:, 1:], 0, 1), -1)

    def viterbi(self, emissions, mask=None, with_scores: bool = False):
        """The best tag path of each sequence as a (B, T) int64 tensor, with ops (so it compiles): a scan
        keeps the best score per tag and its back-pointers, a reverse scan follows them. Padded positions
        repeat the sequence's last tag; `decode` gives the same paths as lists of their true lengths.
        ``with_scores`` also returns the best score of each tag at each step (B, T, K), held over padding
        (a tagger's confidences are their softmax)."""
        e, _, m = self._check(emissions, None, mask)
        k = self.num_tags
        trans = ops.expand_dims(self.transitions, 0)
        stay = ops.arange(k, dtype="int64")

        def forward(score, inputs):
            e_t, m_t = inputs
            cand = ops.expand_dims(score, -1) + trans                      # cand[b, i, j]: from i to j
            back = ops.argmax(cand, axis=1)                                # (B, K) int64
            nxt = ops.max(cand, axis=1) + e_t
            if m_t is not None:
                keep = ops.cast(m_t, "int64")                              # a padded step points to itself
                nxt, back = score + m_t * (nxt - score), back * keep + stay * (1 - keep)
            return nxt, ((back, nxt) if with_scores else back)

        def backward(tag, back):
            prev = ops.sum(back * ops.one_hot(tag, k, dtype="int64"), axis=-1)
            return prev, tag

        score = self.start + e[:, 0]
        if e.shape[1] == 1:
            path = ops.expand_dims(ops.argmax(score + self.end, axis=-1), 1)
            return (path, ops.expand_dims(score, 1)) if with_scores else path
        first_score = score
        score, backs = ops.scan(forward, score, self._later_steps(e, m), unroll=self.unroll)
        if with_scores:
            backs, steps = backs
        last = ops.argmax(score + self.end, axis=-1)                       # (B,)
        first, tags = ops.scan(backward, last, backs, reverse=True, unroll=self.unroll)
        path = ops.concat([ops.expand_dims(first, 1), ops.swapaxes(tags, 0, 1)], axis=1)
        if not with_scores:
            return path
        return path, ops.concat([ops.expand_dims(first_score, 1), ops.swapaxes(steps, 0, 1)], axis=1)

    def nll(self, emissions, tags, mask=None, reduction: str = "mean"):
        """Negative log-likelihood −log p(tags | emissions) = log Z − s(tags), averaged over the batch
        (``reduction="mean"``), summed ("sum") or per sequence ("none")."""
        if reduction not in ("mean", "sum", "none"):
            raise SpagoError(f"CRF.nll: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        per = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "none":
            return per
        return ops.mean(per) if reduction == "mean" else ops.sum(per)

    def forward(self, emissions, tags, mask=None):
        """The mean negative log-likelihood (the training loss) of ``tags`` (B, T) ints given ``emissions``
        (B, T, num_tags), batch-first; ``mask`` (B, T), 1 on real tokens and 0 on padding (a prefix of ones)."""
        return self.nll(emissions, tags, mask)

    # -- decoding ----------------------------------------------------------------------------------------
    def decode(self, emissions, mask=None) -> list[list[int]]:
        """The best tag path of each sequence (Viterbi), as lists of ints as long as each sequence."""
        e, _, m = self._check(emissions, None, mask)
        if not e.is_concrete:
            raise SpagoError(f"{self._path or 'CRF'}.decode runs eagerly on concrete emissions; compile the "
                             "network that makes the emissions and decode its output")
        e = e.numpy().astype(np.float64)
        lengths = [e.shape[1]] * e.shape[0] if m is None else m.numpy().sum(axis=1).astype(int).tolist()
        trans = self.transitions.numpy().astype(np.float64)
        start, end = self.start.numpy().astype(np.float64), self.end.numpy().astype(np.float64)
        paths = []
        for b, n in enumerate(lengths):
            score, back = start + e[b, 0], []
            for t in range(1, n):
                cand = score[:, None] + trans                              # cand[i, j]: come from i to j
                back.append(np.argmax(cand, axis=0))
                score = cand[back[-1], np.arange(self.num_tags)] + e[b, t]
            tag = int(np.argmax(score + end))
            path = [tag]
            for pointers in reversed(back):
                tag = int(pointers[tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}" + (", unroll=True" if self.unroll else "")
