"""`WordEmbeddings` (a store as a layer, trainable row by row) and `StackedEmbeddings` (concatenation).

A token embedder is a callable ``tokens -> Tensor (n, d)`` (tokens: str, or objects with a ``.text``). It
may split its work in two: ``prepare(tokens)`` does the dictionary lookups in Python and returns arrays,
and calling it on those arrays does only tensor work — the part a traced or compiled graph can hold. So a
compiled model takes ``embedder.prepare(tokens)`` as input and never holds the table.

Sparse training (``trainable=True``): ``prepare`` loads the rows a batch uses (each distinct word once,
with its optimiser state from the store) into the Param ``rows`` of ``max_rows`` x dim, and returns each
token's slot; the forward pass is ``take(rows, slots)``. Any spago optimiser updates ``rows`` — eagerly or
in a compiled step — with its own rule, and the next ``prepare`` (or `WordEmbeddings.flush`) writes back
the rows and state that changed. Rows not in a batch are not touched: their optimiser state does not decay
(the "lazy" semantics of sparse Adam), and the step count for bias correction is the optimiser's.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ... import ops
from ...errors import ShapeError
from ...nn.module import Module, ModuleList, Param
from ...tensor import Tensor, as_tensor
from .store import EmbeddingStore, EmbeddingStoreError, unknown_vector


def _text(t: Any) -> str | None:
    return t if isinstance(t, str) else getattr(t, "text", None)


def token_texts(tokens: Sequence) -> tuple[list, tuple]:
    """The strings of ``tokens`` (str, or objects with a ``.text`` such as a tagger's tokens), flat, and
    the shape to give their rows: ``(n,)`` for a sequence, ``(b, n)`` for b sequences of n tokens each."""
    if isinstance(tokens, str):
        raise EmbeddingStoreError("expected a sequence of tokens, got one str (split it into words first)")
    tokens = list(tokens)
    if tokens and all(isinstance(t, (list, tuple)) for t in tokens):  # a batch of equally long sequences
        lengths = {len(t) for t in tokens}
        if len(lengths) != 1:
            raise EmbeddingStoreError(f"a batch of token sequences must be padded to one length, got lengths "
                                      f"{sorted(lengths)}")
        flat, _ = token_texts([t for seq in tokens for t in seq])
        return flat, (len(tokens), lengths.pop())
    texts = [_text(t) for t in tokens]
    for t in tokens:
        if not isinstance(_text(t), str):
            raise EmbeddingStoreError(f"tokens must be str or have a .text, got {type(t).__name__}")
    return texts, (len(texts),)


def _is_tokens(x: Any) -> bool:
    """Tokens, or a batch of token sequences (as opposed to prepared arrays)."""
    return isinstance(x, (list, tuple)) and all(isinstance(_text(t), str) or _is_tokens(t) for t in x)


class WordEmbeddings(Module):
    """Word vectors from an `EmbeddingStore` (or the path of one).

    ``emb(tokens)`` -> (n, dim) Tensor (``(b, n, dim)`` for b token sequences padded to n);
    ``emb.prepare(tokens)`` -> the array to feed a compiled graph (the
    rows themselves, or slots into ``rows`` when ``trainable``). ``lowercase`` (default: the store's) falls
    back to the lowercased word; ``unknown`` (default: the store's vector) is ``"zero"``, ``"random"``
    (seeded by ``seed``) or a vector. ``trainable`` needs the store opened with ``readonly=False``;
    ``max_rows`` bounds the distinct words of one batch."""

    def __init__(self, store: EmbeddingStore | str | os.PathLike, trainable: bool = False, max_rows: int = 1024,
                 lowercase: bool | None = None, unknown: Any = None, seed: int = 0):
        super().__init__()
        if not isinstance(store, EmbeddingStore):
            store = EmbeddingStore.open(store, readonly=not trainable)
        self.store, self.trainable, self.lowercase = store, bool(trainable), lowercase
        self.embedding_length = store.dim
        self._unknown = None if unknown is None else unknown_vector(unknown, store.dim, seed)
        self._batch: list | None = None  # resolved keys of the batch in rows, when trainable
        if self.trainable:
            if store.readonly:
                raise EmbeddingStoreError(f"{store.path} is open read-only; open it with readonly=False to train "
                                          "its rows")
            if not (isinstance(max_rows, int) and max_rows > 0):
                raise EmbeddingStoreError(f"max_rows must be a positive int, got {max_rows!r}")
            self.rows = Param(np.zeros((max_rows, store.dim), np.float32))

    def extra_repr(self) -> str:
        return f"{self.store.path!r}, dim={self.store.dim}, trainable={self.trainable}"

    def lookup(self, tokens: Sequence) -> np.ndarray:
        """The (n, dim) (or (b, n, dim)) float32 rows of ``tokens`` with the fallbacks (Python side)."""
        texts, shape = token_texts(tokens)
        return self.store.lookup(texts, self.lowercase, self._unknown).reshape(*shape, self.store.dim)

    def prepare(self, tokens: Sequence) -> np.ndarray:
        """What the forward pass takes instead of tokens: the rows (frozen), or each token's slot in
        ``rows`` after loading the batch's rows and optimiser state (trainable)."""
        if not self.trainable:
            return self.lookup(tokens)
        self.flush()
        texts, shape = token_texts(tokens)
        keys = self.store.resolve(texts, self.lowercase)
        slot: dict = {}
        index = np.array([slot.setdefault(k, len(slot)) for k in keys], np.int64)
        distinct = list(slot)
        capacity = self.rows.shape[0]
        if len(distinct) > capacity:
            raise EmbeddingStoreError(f"the batch uses {len(distinct)} distinct words; this WordEmbeddings holds "
                                      f"max_rows={capacity}")
        rows = self.rows.numpy()
        rows[len(distinct):] = 0.0  # padding rows get zero gradients, so every optimiser leaves them at zero
        rows[:len(distinct)] = self.store.rows(distinct, self._unknown)
        for name in set(self.store.state_names) | set(self.rows.state):
            state = self.rows.state.get(name)
            if not isinstance(state, np.ndarray) or state.shape != rows.shape or state.dtype != rows.dtype:
                state = self.rows.state[name] = np.zeros_like(rows)
            state[len(distinct):] = 0.0
            self.store.read_state(name, distinct, state[:len(distinct)])
        self._batch = distinct
        self._loaded = {name: a[:len(distinct)].copy() for name, a in [("", rows), *self.rows.state.items()]}
        return index.reshape(shape)

    def flush(self) -> None:
        """Write the loaded batch's rows and optimiser state back to the store if an update changed them."""
        if not self.trainable or self._batch is None:
            return
        n = len(self._batch)
        arrays = {"": self.rows.numpy(), **self.rows.state}
        changed = [name for name, a in arrays.items()
                   if name not in self._loaded or not np.array_equal(a[:n], self._loaded[name])]
        if changed:
            state = {name: a[:n] for name, a in arrays.items() if name}
            self.store.write_rows(self._batch, arrays[""][:n], state)
        self._batch = None

    def forward(self, x: Any) -> Tensor:
        """Tokens -> (n, dim); or the output of ``prepare`` (rows, or slots when trainable) -> (n, dim)."""
        if _is_tokens(x):
            x = self.prepare(x)
        x = as_tensor(x)
        if x.dtype.kind in "iu":
            if not self.trainable:
                raise EmbeddingStoreError("integer input is a batch's slots, which only a trainable "
                                          "WordEmbeddings has; pass tokens or prepare(tokens)")
            return ops.take(self.rows, x, axis=0)
        if x.ndim < 1 or x.shape[-1] != self.store.dim:
            raise ShapeError(f"{self._path or 'WordEmbeddings'}: expected rows of {self.store.dim} numbers, "
                             f"got shape {x.shape}")
        return x


class StackedEmbeddings(Module):
    """Several token embedders side by side: ``(n, d1 + d2 + ...)`` for n tokens (outputs are joined on
    their last axis, so batches ``(b, n, d_i)`` work alike).

    ``stack(tokens)`` concatenates each embedder's output; ``stack.prepare(tokens)`` returns a tuple with
    each embedder's prepared input (its ``prepare(tokens)``, or the tokens if it has none), and
    ``stack(prepared)`` runs on that tuple — the form a compiled graph takes."""

    def __init__(self, embedders: Sequence):
        super().__init__()
        if not embedders:
            raise EmbeddingStoreError("StackedEmbeddings needs at least one embedder")
        for e in embedders:
            if not callable(e):
                raise EmbeddingStoreError(f"an embedder maps tokens to (n, d); got {type(e).__name__}")
        self._embedders = list(embedders)
        self.parts = ModuleList([e for e in embedders if isinstance(e, Module)])  # so parameters are seen

    @property
    def embedders(self) -> list:
        return list(self._embedders)

    @property
    def embedding_length(self) -> int:
        """The sum of the embedders' ``embedding_length``s."""
        lengths = [getattr(e, "embedding_length", None) for e in self._embedders]
        if any(not isinstance(n, int) for n in lengths):
            raise EmbeddingStoreError("an embedder has no integer embedding_length")
        return sum(lengths)

    def prepare(self, tokens: Sequence) -> tuple:
        return tuple(e.prepare(tokens) if hasattr(e, "prepare") else tokens for e in self._embedders)

    def forward(self, x: Any) -> Tensor:
        if _is_tokens(x):
            inputs = [x] * len(self._embedders)
        elif isinstance(x, tuple) and len(x) == len(self._embedders):
            inputs = list(x)
        else:
            raise EmbeddingStoreError(f"StackedEmbeddings takes tokens or the tuple prepare(tokens) returns "
                                      f"({len(self._embedders)} entries), got {type(x).__name__}")
        outputs = [e(i) for e, i in zip(self._embedders, inputs)]
        outputs = [out if isinstance(out, Tensor) else as_tensor(out) for out in outputs]
        lead = outputs[0].shape[:-1]
        for k, out in enumerate(outputs):
            if out.ndim < 2 or out.shape[:-1] != lead:
                raise ShapeError(f"StackedEmbeddings: embedder {k} ({type(self._embedders[k]).__name__}) gave "
                                 f"shape {out.shape}; each must give (..., d) with ... = {lead}")
        return ops.concat(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
