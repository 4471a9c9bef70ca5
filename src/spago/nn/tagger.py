"""A BiLSTM-CRF sequence labeler (Huang, Xu & Yu, 2015; Lample et al., 2016) and what training one needs:
a small `Vocabulary`, `pad_batch` for padded id/tag/mask arrays, and span-level entity F1 for BIO tags
(the CoNLL-2003 measure: a predicted entity counts only if its type and both boundaries are exact).

    x = Embedding(ids) → Dropout → BiLSTM (forward and backward states concatenated) → Dropout
    emissions = Linear(x)                          (B, T, num_tags)
    loss = CRF.nll(emissions, tags, mask);  prediction = CRF.decode(emissions, mask)
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from ..metrics.sequence import entity_f1 as sequence_f1, get_entities
from ..errors import SpagoError
from .crf import CRF
from .dropout import Dropout
from .linear import Embedding, Linear
from .module import Module
from .recurrent import LSTM

__all__ = ["BiLSTMCRF", "Vocabulary", "pad_batch", "bio_spans", "entity_f1"]


class Vocabulary:
    """A bijection between tokens and ids 0…n−1; the ``specials`` come first (by default ``<pad>`` = 0 and
    ``<unk>`` = 1), and unknown tokens map to ``unk`` if there is one, else raise."""

    def __init__(self, tokens: Iterable[str] = (), specials: Sequence[str] = ("<pad>", "<unk>"),
                 unk: str | None = "<unk>"):
        self._ids: dict[str, int] = {}
        self._tokens: list[str] = []
        for t in list(specials) + list(tokens):
            self.add(t)
        if unk is not None and unk not in self._ids:
            raise SpagoError(f"Vocabulary: the unknown token {unk!r} must be one of the specials {list(specials)}")
        self.unk = unk

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], min_count: int = 1, **options) -> "Vocabulary":
        """Tokens seen at least ``min_count`` times, most frequent first (ties in first-seen order)."""
        counts = Counter(t for seq in sequences for t in seq)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: first-seen order among ties
        return cls((t for t, n in ranked if n >= min_count), **options)

    def add(self, token: str) -> int:
        if token not in self._ids:
            self._ids[token] = len(self._tokens)
            self._tokens.append(token)
        return self._ids[token]

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def index(self, token: str) -> int:
        if token in self._ids:
            return self._ids[token]
        if self.unk is None:
            raise SpagoError(f"Vocabulary: unknown token {token!r} and no unknown-token id")
        return self._ids[self.unk]

    def token(self, i: int) -> str:
        if not 0 <= i < len(self._tokens):
            raise SpagoError(f"Vocabulary: id {i} out of range [0, {len(self._tokens)})")
        return self._tokens[i]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.token(int(i)) for i in ids]

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)


def pad_batch(sequences: Sequence[Sequence[int]], pad: int = 0, length: int | None = None) -> tuple:
    """Id sequences as one int64 array (B, T) padded with ``pad`` at the end, and its mask (B, T) float32.

    ``length`` fixes T (so compiled code sees few shapes); longer sequences are an error, not cut."""
    if not sequences:
        raise SpagoError("pad_batch: no sequences")
    longest = max(len(s) for s in sequences)
    if min(len(s) for s in sequences) == 0:
        raise SpagoError("pad_batch: every sequence needs at least one item")
    length = longest if length is None else int(length)
    if longest > length:
        raise SpagoError(f"pad_batch: a sequence of length {longest} does not fit length={length}")
    ids = np.full((len(sequences), length), pad, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.float32)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = s
        mask[b, :len(s)] = 1.0
    return ids, mask


class BiLSTMCRF(Module):
    """Embedding → dropout → bidirectional LSTM → dropout → linear → CRF (see the module docstring)."""

    def __init__(self, vocab_size: int, num_tags: int, embedding_dim: int = 64, hidden_size: int = 64,
                 num_layers: int = 1, dropout: float = 0.0, padding_idx: int | None = 0, dtype="float32",
                 generator=None):
        super().__init__()
        self.embedding = Embedding(vocab_size, embedding_dim, padding_idx=padding_idx, dtype=dtype,
                                   generator=generator)
        self.dropout = Dropout(dropout, generator) if dropout > 0 else None
        self.lstm = LSTM(embedding_dim, hidden_size, num_layers=num_layers, bidirectional=True,
                         dropout=dropout if num_layers > 1 else 0.0, dtype=dtype, generator=generator)
        self.projection = Linear(2 * hidden_size, num_tags, dtype=dtype, generator=generator)
        self.crf = CRF(num_tags, dtype=dtype, generator=generator)

    def forward(self, ids, mask=None):
        """Emission scores (B, T, num_tags) for token ids (B, T), batch-first; ``mask`` (B, T) is 1 on real
        tokens and 0 on padding (a prefix of ones per row), or None when nothing is padded."""
        x = self.embedding(ids)
        if self.dropout is not None:
            x = self.dropout(x)
        x, _ = self.lstm(x, mask=mask)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.projection(x)

    def loss(self, ids, tags, mask=None):
        """The CRF's mean negative log-likelihood of the gold tags."""
        return self.crf.nll(self(ids, mask), tags, mask)

    def predict(self, ids, mask=None) -> list[list[int]]:
        """The best tag ids per sequence (Viterbi), each as long as its unmasked part."""
        from ..autograd import no_grad

        with no_grad():
            return self.crf.decode(self(ids, mask), mask)


def _bio(tags: Sequence[str], where: str) -> list[str]:
    """``tags`` checked to be BIO (IOB2), for the shared chunk reader in `spago.metrics.sequence`."""
    checked = []
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if prefix not in ("B", "I", "O") or (prefix != "O" and not label):
            raise SpagoError(f"{where}: {tag!r} at position {i} is not a BIO tag (O, B-TYPE or I-TYPE)")
        checked.append("O" if prefix == "O" else tag)
    return checked


def bio_spans(tags: Sequence[str]) -> set:
    """Entities in a BIO (IOB2) tag sequence as (type, start, end) with ``end`` exclusive.

    An ``I-X`` that does not continue an ``X`` entity starts a new one, as the CoNLL evaluation script does."""
    return set(get_entities(_bio(tags, "bio_spans")))


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged span precision, recall and F1 over sentences of BIO tags (exact type and boundaries);
    `spago.metrics.entity_f1` also reads IOB1 and BIOES."""
    return sequence_f1([_bio(g, "entity_f1") for g in gold], [_bio(p, "entity_f1") for p in predicted])
