"""WordPiece: greedy longest-match-first subword splitting (Wu et al. 2016, "Google's Neural Machine Translation
System"; as used by BERT, Devlin et al. 2019).

A word is split from its start: the longest prefix found in the vocabulary is taken, then the longest vocabulary
entry (written with the continuation prefix "##") that continues it, and so on. If at some point no entry matches,
or the word is longer than `max_input_chars_per_word`, the whole word becomes the unknown token.
"""

from __future__ import annotations

import os
from typing import Mapping

from spago.errors import SpagoError
from spago.files import read_regular_file
from spago.nlp.tokenizers.basic import TokenizerError
from spago.schema import MAX_JSON_BYTES

__all__ = ["WordPiece", "load_vocab"]

_CACHE_SIZE = 1 << 16  # words remembered per vocabulary


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """Read a BERT `vocab.txt`: one token per line, id = line number from 0."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TokenizerError(f"vocabulary file not found: {path}")
    try:
        raw = read_regular_file(path, MAX_JSON_BYTES, "vocabulary file")
    except SpagoError as e:
        raise TokenizerError(str(e)) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise TokenizerError(f"vocabulary file {path} starts with a UTF-8 byte-order mark (BOM), which would "
                             "become part of its first token; save it as UTF-8 without a BOM")
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"vocabulary file {path} is not valid UTF-8: {e}") from None
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        token = line.rstrip("\r")
        if token == "":
            raise TokenizerError(f"vocabulary file {path}: line {i + 1} is empty (expected one token per line)")
        if token in vocab:
            raise TokenizerError(
                f"vocabulary file {path}: token {token!r} on line {i + 1} repeats line {vocab[token] + 1}"
            )
        vocab[token] = i
    if not vocab:
        raise TokenizerError(f"vocabulary file {path} is empty")
    return vocab


class WordPiece:
    """Greedy longest-match-first WordPiece over a token -> id vocabulary."""

    def __init__(
        self,
        vocab: Mapping[str, int],
        unk_token: str = "[UNK]",
        continuing_prefix: str = "##",
        max_input_chars_per_word: int = 100,
    ) -> None:
        if unk_token not in vocab:
            raise TokenizerError(f"the unknown token {unk_token!r} is not in the vocabulary")
        self.vocab = dict(vocab)
        self.unk_token = unk_token
        self.prefix = continuing_prefix
        if isinstance(max_input_chars_per_word, bool) or not isinstance(max_input_chars_per_word, int) \
                or not 0 <= max_input_chars_per_word < 2 ** 63:
            # Hugging Face (an unsigned integer) refuses these too; -1 or 1.5 would make every word [UNK]
            raise TokenizerError(f"max_input_chars_per_word must be a non-negative integer, got "
                                 f"{max_input_chars_per_word!r}")
        self.max_input_chars_per_word = max_input_chars_per_word
        # The longest entry bounds the search: no piece can be longer (in characters, prefix excluded).
        self._max_piece = max(len(t[len(self.prefix) :] if t.startswith(self.prefix) else t) for t in self.vocab)
        self._cache: dict[str, tuple] = {}  # word -> its pieces: texts repeat words, and splitting is a search

    def split(self, word: str) -> list[tuple[str, int, int]]:
        """Pieces of `word` as (token, start, end) with [start, end) character indices into `word`.

        An unknown word gives one (unk_token, 0, len(word)).
        """
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = tuple(self._split(word))
            if len(self._cache) < _CACHE_SIZE:
                self._cache[word] = pieces
        return list(pieces)

    def _split(self, word: str) -> list[tuple[str, int, int]]:
        n = len(word)
        if n == 0:
            return []
        if n > self.max_input_chars_per_word:
            return [(self.unk_token, 0, n)]
        pieces: list[tuple[str, int, int]] = []
        start = 0
        while start < n:
            end = min(n, start + self._max_piece)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    pieces.append((piece, start, end))
                    break
                end -= 1
            else:
                return [(self.unk_token, 0, n)]
            start = end
        return pieces
