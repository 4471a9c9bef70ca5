"""The Unicode data of the reference tokenizers, shipped with spago and loaded on first use.

Hugging Face's Rust tokenizers classify characters with their own Unicode tables (older ones for categories,
newer ones for lower-casing), which differ from those of any Python's `unicodedata` on hundreds of code points.
`unicode_tables.json.gz` holds what the reference does with every code point (read off it by
``tools/unicode_tables.py``), so spago's BERT normaliser and pre-tokeniser agree with it everywhere:
which characters text cleaning deletes or turns into spaces, which are punctuation, which are the non-spacing
marks accent stripping drops, each character's canonical decomposition (NFD) and combining class, and its
lower-case form.
"""
from __future__ import annotations

import bisect
import functools
import gzip
import json
import os

__all__ = ["tables", "Tables"]

_PATH = os.path.join(os.path.dirname(__file__), "unicode_tables.json.gz")
_HANGUL_BASE, _HANGUL_COUNT = 0xAC00, 11172


class _RangeSet:
    """Membership in a sorted list of inclusive code point ranges, by bisection."""

    def __init__(self, ranges: list):
        self.starts = [a for a, _ in ranges]
        self.ends = [b for _, b in ranges]

    def __contains__(self, cp: int) -> bool:
        k = bisect.bisect_right(self.starts, cp) - 1
        return k >= 0 and cp <= self.ends[k]


class Tables:
    """Lookups over the shipped data; every argument is one character."""

    def __init__(self, data: dict):
        self.source = data["source"]
        self._control = _RangeSet(data["control"])
        self._punctuation = _RangeSet(data["punctuation"])
        self._nonspacing = _RangeSet(data["nonspacing"])
        self.whitespace = frozenset(chr(c) for a, b in data["whitespace"] for c in range(a, b + 1))
        self._decompose = {chr(int(k, 16)): v for k, v in data["decompose"].items()}
        self._lower = {chr(int(k, 16)): v for k, v in data["lower"].items()}
        self.combining = {chr(int(k, 16)): v for k, v in data["combining"].items()}

    def is_control(self, ch: str) -> bool:
        return ord(ch) in self._control

    def is_punctuation(self, ch: str) -> bool:
        return ord(ch) in self._punctuation

    def is_nonspacing(self, ch: str) -> bool:
        return ord(ch) in self._nonspacing

    def decompose(self, ch: str) -> str:
        """The canonical decomposition of one character (Hangul syllables by the Unicode algorithm)."""
        s = ord(ch) - _HANGUL_BASE
        if 0 <= s < _HANGUL_COUNT:
            lead, vowel, trail = chr(0x1100 + s // 588), chr(0x1161 + (s % 588) // 28), s % 28
            return lead + vowel + (chr(0x11A7 + trail) if trail else "")
        return self._decompose.get(ch, ch)

    def lower(self, ch: str) -> str:
        return self._lower.get(ch, ch)


@functools.lru_cache(maxsize=1)
def tables() -> Tables:
    """The tables (read once, on first use)."""
    with gzip.open(_PATH, "rb") as f:
        return Tables(json.loads(f.read()))
