"""The result of tokenizing one text (or one pair of texts), and the list surgery done on it: windows for
truncation with overflow, concatenation of a pair, padding.

The behaviour matches the Hugging Face `tokenizers` Encoding, so models fine-tuned with Hugging Face see the same
inputs: truncation keeps the first `max_len` tokens and, when asked, returns the rest as overflowing windows that
advance by `max_len - stride` tokens (consecutive windows share `stride` tokens), which is how long passages are
fed to question answering models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spago.nlp.tokenizers.basic import TokenizerError

__all__ = ["Encoding", "window_ranges"]


@dataclass
class Encoding:
    """Tokens of one input, all lists of the same length.

    `offsets[i]` is the [start, end) character span of token i in its own source text (Python str indices; special
    tokens added by the tokenizer and padding get (0, 0)); `sequence_ids[i]` says which text (0 or 1 for a pair)
    the token comes from (None for added special tokens and padding); `word_ids[i]` is the index of the word
    (pre-token) within that text. `overflowing` holds the windows that truncation cut off, each a full Encoding.
    """

    tokens: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    type_ids: list[int] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    attention_mask: list[int] = field(default_factory=list)
    special_tokens_mask: list[int] = field(default_factory=list)
    word_ids: list[int | None] = field(default_factory=list)
    sequence_ids: list[int | None] = field(default_factory=list)
    overflowing: list["Encoding"] = field(default_factory=list)

    _FIELDS = ("tokens", "ids", "type_ids", "offsets", "attention_mask", "special_tokens_mask", "word_ids",
               "sequence_ids")

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int) -> "Encoding":
        """Tokens [start, stop) as a new Encoding without overflow."""
        return Encoding(**{name: getattr(self, name)[start:stop] for name in self._FIELDS})

    def concat(self, other: "Encoding") -> "Encoding":
        """This encoding followed by `other` (overflow not carried)."""
        return Encoding(**{name: getattr(self, name) + getattr(other, name) for name in self._FIELDS})

    def pad(self, length: int, pad_id: int, pad_token: str, pad_type_id: int = 0) -> None:
        """Pad on the right to `length` (in place, overflowing windows too); longer encodings are left as they are."""
        for enc in [self, *self.overflowing]:
            n = length - len(enc)
            if n <= 0:
                continue
            enc.tokens += [pad_token] * n
            enc.ids += [pad_id] * n
            enc.type_ids += [pad_type_id] * n
            enc.offsets += [(0, 0)] * n
            enc.attention_mask += [0] * n
            enc.special_tokens_mask += [1] * n
            enc.word_ids += [None] * n
            enc.sequence_ids += [None] * n

    def windows(self, max_len: int, stride: int) -> list["Encoding"]:
        """Split into windows of at most `max_len` tokens sharing `stride` tokens; the first is the kept part."""
        return [self.slice(a, b) for a, b in window_ranges(len(self), max_len, stride)]


def window_ranges(n: int, max_len: int, stride: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of the truncation windows of a sequence of n tokens.

    Windows start every `max_len - stride` tokens and the last one ends at n. With max_len == 0 the whole
    sequence overflows: ranges [(0, 0), (0, n)].
    """
    if max_len >= n:
        return [(0, n)]
    if max_len == 0:
        return [(0, 0), (0, n)]
    if not 0 <= stride < max_len:
        raise TokenizerError(
            f"stride must be in [0, {max_len}) for a window of {max_len} tokens (the maximum length minus the "
            f"special tokens), got stride={stride}"
        )
    step = max_len - stride
    ranges = []
    for start in range(0, n, step):
        stop = min(start + max_len, n)
        ranges.append((start, stop))
        if stop == n:
            break
    return ranges
