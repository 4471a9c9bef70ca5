"""BERT's basic tokenizer: text cleaning, CJK splitting, lower-casing, accent stripping and punctuation splitting.

It reproduces the Hugging Face `tokenizers` BertNormalizer followed by the BertPreTokenizer (the same rules as
Google's original BERT, except that whitespace is the Unicode White_Space property, as in Rust), and it remembers,
for every character of the normalised text, the index of the ORIGINAL character it came from. Every word therefore
carries character offsets into the text the user passed in, even when normalisation deleted characters (control
and zero-width characters, accents) or expanded one character into several (NFD of Hangul syllables).

Special tokens ("never split": [CLS], [SEP], [MASK], [UNK], [PAD] by default) are found in the raw text first,
case-sensitively and before any normalisation, and are kept whole.

Unicode data (categories, decompositions, combining classes, lower-casing) is the reference's own, shipped in
`unicode_data` and checked against Hugging Face `tokenizers` for every code point. Text holding a lone surrogate
(which Python strings allow and UTF-8 cannot encode) is refused, as Hugging Face refuses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from spago.errors import SpagoError
from spago.nlp.tokenizers.unicode_data import tables

__all__ = [
    "BasicTokenizer", "TokenizerError", "Word", "is_whitespace", "is_control", "is_punctuation", "is_chinese_char",
]

# CJK Unified Ideographs blocks (and their extensions and compatibility blocks), as in BERT. Hangul, Hiragana and
# Katakana are NOT in these blocks: they are written with spaces and go through WordPiece like any other script.

_CACHE_SIZE = 1 << 16


class TokenizerError(SpagoError, ValueError):
    """Bad tokenizer input or configuration (wrong types, missing or malformed vocabulary files, bad options)."""


_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),  # sic: Hugging Face starts this range at 0x2B920, original BERT at 0x2B820
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(ch: str) -> bool:
    """True for tab, LF, CR and every character with the Unicode White_Space property."""
    return ch in tables().whitespace


def is_control(ch: str) -> bool:
    """True for the characters text cleaning deletes: the reference's categories Cc, Cf, Cn, Co (unassigned
    code points included) except tab, LF and CR."""
    return tables().is_control(ch)


def is_punctuation(ch: str) -> bool:
    """True for ASCII punctuation (which includes symbols such as $ + < = > ^ ` | ~) and Unicode categories P*."""
    return tables().is_punctuation(ch)


def is_chinese_char(ch: str) -> bool:
    """True for CJK ideographs, which BERT treats as one word each."""
    cp = ord(ch)
    return cp >= 0x3400 and any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


@dataclass(frozen=True)
class Word:
    """One pre-token: `text` is normalised; `origins[i]` is the original index of `text[i]`.

    `start`/`end` are the word's [start, end) offsets in the original text. `special` marks a special token
    found verbatim in the raw text (its `text` is the token itself, not normalised).
    """

    text: str
    origins: tuple[int, ...]
    special: bool = False

    @property
    def start(self) -> int:
        return self.origins[0]

    @property
    def end(self) -> int:
        return self.origins[-1] + 1

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Original offsets of the normalised characters text[a:b] (b > a)."""
        return self.origins[a], self.origins[b - 1] + 1


class BasicTokenizer:
    """Splits text into normalised words with offsets, as BERT does before WordPiece.

    `strip_accents=None` follows `do_lower_case` (as in Hugging Face). Accent stripping is NFD followed by
    dropping non-spacing marks (category Mn); lower-casing maps each character on its own (full Unicode
    mapping, so one character may become two, e.g. U+0130).
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        clean_text: bool = True,
        never_split: Iterable[str] = ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"),
    ) -> None:
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = self.do_lower_case if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.clean_text = bool(clean_text)
        self.never_split = tuple(sorted({t for t in never_split if t}, key=len, reverse=True))
        # Alternatives longest first: at each position the regex takes the longest special token (leftmost-longest).
        self._special_re = re.compile("|".join(re.escape(t) for t in self.never_split)) if self.never_split else None
        self._cache: dict[str, str] = {}  # normalised form of each character seen (texts reuse few characters)

    def _clean_char(self, ch: str) -> str:
        """One original character after cleaning and CJK spacing ("" when cleaning deletes it)."""
        data = tables()
        if self.clean_text:
            if ch == "\x00" or ch == "\ufffd" or data.is_control(ch):
                return ""
            if ch in data.whitespace:
                return " "
        return " " + ch + " " if self.tokenize_chinese_chars and is_chinese_char(ch) else ch

    def _normalize_char(self, ch: str) -> tuple[str, bool, bool]:
        """One original character fully normalised on its own, and whether its decomposition starts / ends
        with a combining mark (then canonical ordering may move marks across characters)."""
        data = tables()
        norm = self._clean_char(ch)
        starts = ends = False
        if self.strip_accents and norm and not norm.isascii():
            parts = "".join(data.decompose(c) for c in norm)
            starts, ends = parts[0] in data.combining, parts[-1] in data.combining
            norm = "".join(c for c in parts if not data.is_nonspacing(c))
        if self.do_lower_case:
            norm = "".join(data.lower(c) for c in norm)
        return norm, starts, ends

    def normalize_with_origins(self, text: str, base: int = 0) -> tuple[str, list[int]]:
        """Normalise `text`; also return, for each output character, the index (+ base) of its source character.

        Accent stripping is NFD (decomposition, then combining marks in canonical order) and dropping the
        non-spacing marks; origins follow the reference's alignment rules (see `_strip_accents`). Characters
        are normalised one by one (and cached), unless marks of neighbouring characters meet."""
        out: list[str] = []
        origins: list[int] = []
        cache = self._cache
        marks_meet = False
        ends = False
        for i, ch in enumerate(text):
            entry = cache.get(ch)
            if entry is None:
                entry = self._normalize_char(ch)
                if len(cache) < _CACHE_SIZE:
                    cache[ch] = entry
            norm, starts, next_ends = entry
            marks_meet = marks_meet or (ends and starts)
            ends = next_ends if norm or starts or next_ends else ends
            out.append(norm)
            origins.extend([base + i] * len(norm))
        if not marks_meet:
            return "".join(out), origins
        return self._normalize_marks(text, base)

    def _normalize_marks(self, text: str, base: int) -> tuple[str, list[int]]:
        """The whole-text path, for text whose neighbouring characters' marks may be reordered together."""
        out = [self._clean_char(ch) for ch in text]
        origins = [base + i for i, piece in enumerate(out) for _ in piece]
        chars, origins = _strip_accents("".join(out), origins)
        if self.do_lower_case:
            pieces = [tables().lower(c) for c in chars]
            chars = "".join(pieces)
            origins = [o for piece, o in zip(pieces, origins) for _ in piece]
        return chars, origins

    def normalize(self, text: str) -> str:
        """The whole text normalised (special tokens are not protected here: this is the normaliser alone)."""
        _check_text(text)
        return self.normalize_with_origins(text)[0]

    def split_words(self, text: str) -> list[Word]:
        """Normalised words with their original offsets: split on whitespace, then isolate each punctuation mark."""
        _check_text(text)
        words: list[Word] = []
        pos = 0
        matches = self._special_re.finditer(text) if self._special_re is not None else ()
        for m in matches:
            words.extend(self._split_plain(text[pos : m.start()], pos))
            words.append(Word(m.group(), tuple(range(m.start(), m.end())), special=True))
            pos = m.end()
        words.extend(self._split_plain(text[pos:], pos))
        return words

    def tokenize(self, text: str) -> list[str]:
        """The normalised words as strings."""
        return [w.text for w in self.split_words(text)]

    def _split_plain(self, text: str, base: int) -> list[Word]:
        if text.isascii() and not (self.clean_text and _ASCII_DELETED.search(text)):
            # ASCII without deleted controls: normalising maps character i to character i (lower-casing at most),
            # so the words are the regex's matches with their own offsets; same result as the general path
            norm = text.lower() if self.do_lower_case else text
            return [Word(m.group(), tuple(range(base + m.start(), base + m.end())))
                    for m in _ASCII_WORDS.finditer(norm)]
        norm, origins = self.normalize_with_origins(text, base)
        words: list[Word] = []
        start = None  # start of the current word in `norm`
        for i, ch in enumerate(norm):
            if is_whitespace(ch):
                if start is not None:
                    words.append(Word(norm[start:i], tuple(origins[start:i])))
                    start = None
            elif is_punctuation(ch):
                if start is not None:
                    words.append(Word(norm[start:i], tuple(origins[start:i])))
                    start = None
                words.append(Word(ch, (origins[i],)))
            elif start is None:
                start = i
        if start is not None:
            words.append(Word(norm[start:], tuple(origins[start:])))
        return words


_SURROGATE = re.compile("[\ud800-\udfff]")
# ASCII characters text cleaning deletes (controls but tab, LF and CR), and an ASCII word or punctuation mark:
# the fast path of `_split_plain` for ASCII text without them.
_ASCII_DELETED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_WORDS = re.compile(r"[^\t\n\x0b\x0c\r !-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TokenizerError(f"tokenizer input must be a str, got {type(text).__name__}: {text!r:.80}")
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found:
            raise TokenizerError(f"tokenizer input holds a lone surrogate {found.group()!r} at index {found.start()}"
                                 " (not valid Unicode text; Hugging Face refuses it too)")


def _strip_accents(chars: str, origins: list[int]) -> tuple[str, list[int]]:
    """NFD, then drop non-spacing marks, with the origins Hugging Face's alignment gives.

    Each character decomposes into a first character, which stands for it, and added ones; canonical ordering
    then sorts each run of marks by combining class, moving the added ones with them. Origins are handed out
    in order afterwards: the k-th first character takes the k-th input character's origin, an added one the
    origin of the first character before it. (So in ``"\\u0309\\U0001D16D"``, whose marks swap, U+1D16D takes
    the origin of position 0.)"""
    data = tables()
    combining = data.combining
    entries: list[tuple[str, bool]] = []
    for c in chars:
        d = data.decompose(c)
        entries.append((d[0], True))
        entries.extend((x, False) for x in d[1:])
    k = 0
    while k < len(entries):  # canonical ordering: stable sort of each run of non-zero combining classes
        if entries[k][0] in combining:
            j = k
            while j < len(entries) and entries[j][0] in combining:
                j += 1
            if j - k > 1:
                entries[k:j] = sorted(entries[k:j], key=lambda e: combining[e[0]])
            k = j
        else:
            k += 1
    out: list[str] = []
    kept: list[int] = []
    taken = -1
    for c, first in entries:
        if first:
            taken += 1
        if not data.is_nonspacing(c):
            out.append(c)
            kept.append(origins[max(taken, 0)])
    return "".join(out), kept
