"""Token embeddings of Flair's sequence taggers, computed exactly as Flair 0.15 computes them:

- `FlairEmbeddings` — contextual string embeddings (Akbik et al., 2018): a character LM reads the sentence
  (tokens joined by spaces) between a start marker ``"\\n"`` and an end marker ``" "``; a forward LM's state
  after each token's last character (and the space after it), a backward LM's state before its first;
- `PooledFlairEmbeddings` — the same, concatenated with a memory of every earlier embedding of the word,
  pooled by min, max, mean or fade (Akbik et al., 2019);
- `CharacterEmbeddings` — a BiLSTM over each word's characters (Lample et al., 2016), with Flair's reading
  of its outputs (the forward half after the last character, the backward half at the last character), and
  Flair's order-of-sorting quirk for repeated words reproduced;
- `OneHotEmbeddings` — a trainable lookup table over a vocabulary (optionally layer-normalised);
- `WordStoreEmbeddings` — pre-trained word vectors from an LMDB store (`spago.nlp.embeddings`), frozen as
  Flair's ``WordEmbeddings`` are;
- `StackedEmbeddings` — several of them concatenated, in the order of their names (as Flair sorts them).

Every embedding splits its work in two: ``inputs(sentences, length, …)`` turns tokens into padded NumPy
arrays (running the frozen character LMs there, eagerly or compiled), and ``forward(inputs)`` computes
``{name: (B, T, dim) tensor}`` with ops, so it differentiates (character and word embeddings train) and
compiles with the tagger. Sentences are lists of `Token` (see `spago.nlp.sequence_labeler`).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .. import ops
from ..errors import SpagoError
from ..nn import init
from ..nn.linear import Embedding
from ..nn.module import Module, ModuleList
from ..nn.normalization import LayerNorm
from ..nn.recurrent import LSTM
from .charlm import CHAR_BUCKETS, LanguageModel, as_dictionary, run_together

__all__ = ["TokenEmbeddings", "FlairEmbeddings", "PooledFlairEmbeddings", "CharacterEmbeddings",
           "OneHotEmbeddings", "WordStoreEmbeddings", "StackedEmbeddings", "WORD_BUCKETS"]

WORD_BUCKETS = (12, 16, 24, 32, 64)  # the longest word of most sentences has 8-20 characters


def _bucket(n: int, buckets: Sequence[int] | None) -> int:
    """The smallest bucket holding ``n`` (doubling the largest as needed); ``n`` itself without buckets."""
    if not buckets:
        return n
    for b in buckets:
        if b >= n:
            return b
    b = buckets[-1]
    while b < n:
        b *= 2
    return b


class TokenEmbeddings(Module):
    """Base class: ``names()``, ``embedding_length``, ``inputs(...)`` and ``forward(inputs)``. A ``static``
    embedding (frozen, no parameters in the graph) also has ``token_vectors(sentences)``, which training
    computes once per sentence and caches."""

    name: str = ""
    embedding_length: int = 0
    static: bool = False

    def _padded(self, sentences, length: int, compiled: bool = False, vectors: list | None = None) -> dict:
        """``{"vectors": (B, T, dim)}`` from ``token_vectors`` (or these ``vectors`` of it), zero on padding."""
        padded = np.zeros((len(sentences), length, self.embedding_length), np.float32)
        for b, v in enumerate(vectors if vectors is not None else self.token_vectors(sentences, compiled)):
            padded[b, :len(v)] = v
        return {"vectors": padded}

    def names(self) -> list[str]:
        return [self.name]

    def inputs(self, sentences: Sequence[Sequence[Any]], length: int, compiled: bool = False,
               word_buckets: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        raise SpagoError(f"{type(self).__name__} does not define inputs()")


class FlairEmbeddings(TokenEmbeddings):
    """Contextual string embeddings from a character `LanguageModel` (frozen: computed outside the graph)."""

    static = True

    def __init__(self, lm: LanguageModel, name: str | None = None, with_whitespace: bool = True,
                 tokenized_lm: bool = True, is_lower: bool = False, fine_tune: bool = False):
        super().__init__()
        if fine_tune:
            raise SpagoError("FlairEmbeddings: fine-tuning the language model (fine_tune=True) is not supported")
        if not isinstance(lm, LanguageModel):
            raise SpagoError(f"FlairEmbeddings: expected a spago LanguageModel, got {type(lm).__name__}")
        self.lm = lm
        self.name = name or f"Task-LSTM-{lm.hidden_size}-{lm.nlayers}-{lm.is_forward_lm}"
        self.with_whitespace, self.tokenized_lm, self.is_lower = bool(with_whitespace), bool(tokenized_lm), \
            bool(is_lower)
        self.embedding_length = lm.output_size

    def _text(self, tokens: Sequence[Any]) -> str:
        if self.tokenized_lm:
            return " ".join(t.text for t in tokens)
        return "".join(t.text + " " * t.whitespace_after for t in tokens).rstrip()

    def _char_ids(self, sentences: Sequence[Sequence[Any]], compiled: bool) -> tuple[list[str], np.ndarray, int]:
        """The sentences' texts, and the LM's char ids over them with the longest width (`LanguageModel.char_ids`)."""
        texts = [self._text(s) for s in sentences]
        ids, longest = self.lm.char_ids([t.lower() if self.is_lower else t for t in texts],
                                        self.lm.document_delimiter, " ", compiled)
        return texts, ids, longest

    def _pick(self, sentences: Sequence[Sequence[Any]], texts: list[str], states: np.ndarray) -> list[np.ndarray]:
        """Per sentence, the LM states (B, chars, dim) at the offsets Flair reads for each token."""
        start_marker = self.lm.document_delimiter
        out = []
        for b, (tokens, text) in enumerate(zip(sentences, texts)):
            forward, backward = len(start_marker), len(text) + len(start_marker)
            picks = []
            for token in tokens:
                forward += len(token.text)
                at = forward if self.lm.is_forward_lm else backward
                picks.append(at if self.with_whitespace else at - 1)
                if self.tokenized_lm or token.whitespace_after > 0:
                    forward += 1
                    backward -= 1
                backward -= len(token.text)
            out.append(states[b, picks].astype(np.float32))
        return out

    def token_vectors(self, sentences: Sequence[Sequence[Any]], compiled: bool = False) -> list[np.ndarray]:
        """Per sentence, (tokens, dim) float32: the LM states Flair reads at each token's offsets."""
        texts, ids, longest = self._char_ids(sentences, compiled)
        return self._pick(sentences, texts, self.lm.run(ids, compiled)[:, :longest])

    @staticmethod
    def together(embeddings: Sequence["FlairEmbeddings"], sentences: Sequence[Sequence[Any]]
                 ) -> list[list[np.ndarray]] | None:
        """`token_vectors` (compiled) of several Flair embeddings with ONE native call for all their language
        models (`spago.nlp.charlm.run_together`); None when the text is longer than the largest character
        bucket (each embedding then runs its own model, in chunks)."""
        prepared = [e._char_ids(sentences, True) for e in embeddings]
        if any(ids.shape[1] not in CHAR_BUCKETS for _, ids, _ in prepared):
            return None
        states = run_together([e.lm for e in embeddings], [ids for _, ids, _ in prepared])
        return [e._pick(sentences, texts, s[:, :longest])
                for e, (texts, _, longest), s in zip(embeddings, prepared, states)]

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        return self._padded(sentences, length, compiled)

    def forward(self, inputs: dict) -> dict:
        """``{name: (B, T, dim)}``: the language model's states at each token, computed outside the graph."""
        return {self.name: ops.elementwise._t(inputs["vectors"])}


class PooledFlairEmbeddings(TokenEmbeddings):
    """`FlairEmbeddings` plus a per-word memory of its embeddings pooled by ``pooling`` ("min", "max",
    "mean" or "fade"); the memory is wiped when training starts (``train()``), as in Flair."""

    POOLINGS = ("min", "max", "mean", "fade")

    def __init__(self, contextual: FlairEmbeddings, pooling: str = "min", only_capitalized: bool = False):
        super().__init__()
        if pooling not in self.POOLINGS:
            raise SpagoError(f"PooledFlairEmbeddings: pooling must be one of {self.POOLINGS}, got {pooling!r}")
        self.context_embeddings = contextual
        self.pooling, self.only_capitalized = pooling, bool(only_capitalized)
        self.name = contextual.name + "-context"
        self.embedding_length = 2 * contextual.embedding_length
        self.word_embeddings: dict[str, np.ndarray] = {}
        self.word_count: dict[str, int] = {}

    def names(self) -> list[str]:
        return [self.name, self.context_embeddings.name]

    def train(self, mode: bool = True) -> "PooledFlairEmbeddings":
        super().train(mode)
        if mode:
            self.word_embeddings, self.word_count = {}, {}
        return self

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        local = self.context_embeddings.token_vectors(sentences, compiled)
        for tokens, vectors in zip(sentences, local):
            for token, v in zip(tokens, vectors):
                text = token.text
                if not text or not (text[0].isupper() or not self.only_capitalized):
                    continue
                if text not in self.word_embeddings:
                    self.word_embeddings[text], self.word_count[text] = v.copy(), 1
                    continue
                old = self.word_embeddings[text]
                if self.pooling in ("mean", "fade"):
                    new = old + v
                    if self.pooling == "fade":
                        new = new / 2
                else:
                    new = np.maximum(old, v) if self.pooling == "max" else np.minimum(old, v)
                self.word_embeddings[text] = new
                self.word_count[text] += 1
        pooled = np.zeros((len(sentences), length, self.context_embeddings.embedding_length), np.float32)
        context = np.zeros_like(pooled)
        for b, (tokens, vectors) in enumerate(zip(sentences, local)):
            context[b, :len(vectors)] = vectors
            for i, token in enumerate(tokens):
                if token.text in self.word_embeddings:
                    base = self.word_embeddings[token.text]
                    pooled[b, i] = base / self.word_count[token.text] if self.pooling == "mean" else base
                else:
                    pooled[b, i] = vectors[i]
        return {"pooled": pooled, "context": context}

    def forward(self, inputs: dict) -> dict:
        """``{name: pooled (B, T, dim), context name: contextual (B, T, dim)}``, computed outside the graph."""
        return {self.name: ops.elementwise._t(inputs["pooled"]),
                self.context_embeddings.name: ops.elementwise._t(inputs["context"])}


class CharacterEmbeddings(TokenEmbeddings):
    """A bidirectional LSTM over each word's characters (``char_embedding``, ``char_rnn`` as in Flair)."""

    def __init__(self, dictionary: Any, char_embedding_dim: int = 25, hidden_size_char: int = 25,
                 name: str = "Char"):
        super().__init__()
        self.char_dictionary = as_dictionary(dictionary)
        self.name = name
        self.char_embedding_dim, self.hidden_size_char = int(char_embedding_dim), int(hidden_size_char)
        self.char_embedding = Embedding(len(self.char_dictionary), char_embedding_dim)
        self.char_rnn = LSTM(char_embedding_dim, hidden_size_char, bidirectional=True)
        self.embedding_length = 2 * self.hidden_size_char

    def _char_ids(self, word: str) -> list[int]:
        try:
            return self.char_dictionary.get_idx_for_items(word)
        except SpagoError as exc:
            raise SpagoError(f"CharacterEmbeddings: {exc}") from None

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        rows = []
        for tokens in sentences:
            chars = [self._char_ids(t.text) for t in tokens]
            # Flair sorts the words by length and copies results back through a map that, for a word
            # repeated later in the sentence, keeps the sorted word at its own position instead
            order = sorted(range(len(chars)), key=lambda i: len(chars[i]), reverse=True)
            last = {tuple(c): i for i, c in enumerate(chars)}
            rows.append([chars[k] if last[tuple(chars[k])] == k else chars[order[k]] for k in range(len(chars))])
        longest = max([len(c) for r in rows for c in r] + [1])
        width = _bucket(longest, word_buckets)
        shape = (len(sentences), length, width)
        ids = np.zeros(shape, np.int64)
        mask = np.zeros(shape, np.float32)
        mask[:, :, 0] = 1.0  # padding tokens: one dummy character, so no row is empty
        last_char = np.zeros(shape, np.float32)
        last_char[:, :, 0] = 1.0
        for b, r in enumerate(rows):
            for i, c in enumerate(r):
                ids[b, i, :len(c)] = c
                mask[b, i, :len(c)] = 1.0
                last_char[b, i, 0] = 0.0
                last_char[b, i, len(c) - 1] = 1.0
        return {"chars": ids, "mask": mask, "last": last_char}

    def forward(self, inputs: dict) -> dict:
        """``{name: (B, T, 2·hidden_size_char)}``: the character BiLSTM's output at each word's last character."""
        chars = ops.elementwise._t(inputs["chars"])                                  # (B, T, W)
        batch, length, width = chars.shape
        flat = (batch * length, width)
        out, _ = self.char_rnn(self.char_embedding(ops.reshape(chars, flat)), mask=ops.reshape(inputs["mask"], flat))
        last = ops.expand_dims(ops.reshape(ops.elementwise._t(inputs["last"]), flat), -1)
        picked = ops.sum(out * last, axis=1)                                          # (B·T, 2h)
        return {self.name: ops.reshape(picked, (batch, length, self.embedding_length))}


class OneHotEmbeddings(TokenEmbeddings):
    """A trainable embedding per vocabulary item (``<unk>`` = 0 for the rest); ``stable`` adds a layer norm."""

    def __init__(self, vocabulary: Any, embedding_length: int = 300, field: str = "text", stable: bool = False):
        super().__init__()
        if field != "text":
            raise SpagoError(f"OneHotEmbeddings: only field='text' is supported, got {field!r}")
        self.vocab_dictionary = as_dictionary(vocabulary)
        self.name = f"one-hot-{field}"
        self.field, self.embedding_length = field, int(embedding_length)
        self.embedding_layer = Embedding(len(self.vocab_dictionary), embedding_length)
        init.xavier_uniform(self.embedding_layer.weight)  # as Flair's: small, where Embedding draws N(0, 1)
        self.layer_norm = LayerNorm(embedding_length) if stable else None

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        ids = np.zeros((len(sentences), length), np.int64)
        for b, tokens in enumerate(sentences):
            ids[b, :len(tokens)] = [self.vocab_dictionary.get_idx_for_item(t.text) for t in tokens]
        return {"ids": ids}

    def forward(self, inputs: dict) -> dict:
        """``{name: (B, T, embedding_length)}``: each token id's vector (layer-normed when ``stable``)."""
        x = self.embedding_layer(inputs["ids"])
        return {self.name: self.layer_norm(x) if self.layer_norm is not None else x}


class WordStoreEmbeddings(TokenEmbeddings):
    """Pre-trained word vectors from an embedding store (`spago.nlp.embeddings.EmbeddingStore`, LMDB), looked
    up with the store's lowercase and unknown-word fallbacks; frozen, like Flair's ``WordEmbeddings``."""

    static = True

    def __init__(self, store: str, name: str | None = None, lowercase: bool | None = None):
        super().__init__()
        from .embeddings import WordEmbeddings

        self.words = WordEmbeddings(os.fspath(store), lowercase=lowercase)
        self.name = name or f"words-{os.path.basename(os.path.normpath(os.fspath(store)))}"
        self.embedding_length = self.words.embedding_length

    def token_vectors(self, sentences, compiled: bool = False) -> list[np.ndarray]:
        return [self.words.lookup([t.text for t in tokens]).astype(np.float32) if tokens
                else np.zeros((0, self.embedding_length), np.float32) for tokens in sentences]

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        return self._padded(sentences, length, compiled)

    def forward(self, inputs: dict) -> dict:
        """``{name: (B, T, dim)}``: the stored word vectors of each token (frozen)."""
        return {self.name: ops.elementwise._t(inputs["vectors"])}


class StackedEmbeddings(TokenEmbeddings):
    """Several token embeddings concatenated per token, ordered by name as Flair orders them."""

    def __init__(self, embeddings: list):
        super().__init__()
        if not embeddings:
            raise SpagoError("StackedEmbeddings: needs at least one embedding")
        self.embeddings = ModuleList(list(embeddings))
        names = [n for e in self.embeddings for n in e.names()]
        if len(set(names)) != len(names):
            raise SpagoError(f"StackedEmbeddings: embedding names must differ, got {names}")
        self.name = "Stack"
        self.embedding_length = sum(e.embedding_length for e in self.embeddings)

    def names(self) -> list[str]:
        return [n for e in self.embeddings for n in e.names()]

    def inputs(self, sentences, length, compiled=False, word_buckets=None):
        """Every embedding's input arrays under ``"<k>.<key>"``. Compiled, several Flair embeddings run their
        language models in one native call (`FlairEmbeddings.together`)."""
        flair = [k for k, e in enumerate(self.embeddings) if type(e) is FlairEmbeddings]
        shared = FlairEmbeddings.together([self.embeddings[k] for k in flair], sentences) \
            if compiled and len(flair) > 1 else None
        shared = dict(zip(flair, shared)) if shared is not None else {}
        out = {}
        for k, e in enumerate(self.embeddings):
            arrays = e._padded(sentences, length, vectors=shared[k]) if k in shared \
                else e.inputs(sentences, length, compiled, word_buckets)
            for key, value in arrays.items():
                out[f"{k}.{key}"] = value
        return out

    def forward(self, inputs: dict) -> dict:
        """Every embedding's ``{name: (B, T, dim)}``, each from its own ``"<k>.<key>"`` share of ``inputs``."""
        vectors = {}
        for k, e in enumerate(self.embeddings):
            vectors.update(e({key.split(".", 1)[1]: v for key, v in inputs.items() if key.split(".", 1)[0] == str(k)}))
        return vectors

    def concat(self, inputs: dict):
        """The stacked (B, T, embedding_length) tensor: every embedding, concatenated in name order."""
        vectors = self(inputs)
        return ops.concat([vectors[n] for n in sorted(vectors)], axis=-1)
