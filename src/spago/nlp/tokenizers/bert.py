"""The BERT tokenizer: basic tokenization + WordPiece + [CLS]/[SEP] templates, truncation, overflow and padding.

It gives the same tokens, ids, type ids and character offsets as the Hugging Face BertTokenizer (fast) for the
same vocabulary and options, so checkpoints imported from Hugging Face see the inputs they were trained on.

Lengths: nothing is truncated unless `truncation` is asked for. A text longer than the model's maximum length is
then encoded whole, and the model raises a clear error when given more positions than it has — a too-long input
is never cut silently.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from spago.errors import SpagoError
from spago.files import atomic_write
from spago.nlp.tokenizers.basic import BasicTokenizer, TokenizerError
from spago.nlp.tokenizers.encoding import Encoding, window_ranges
from spago.nlp.tokenizers.wordpiece import WordPiece, load_vocab
from spago.schema import TOKENIZER_MODEL, check_fields, read_json

__all__ = ["BertTokenizer"]

_TRUNCATION = ("longest_first", "only_first", "only_second")
_PADDING = ("longest", "max_length")
# Spaces that detokenization removes (the WordPiece decoder's clean-up, as in Hugging Face).
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class BertTokenizer:
    """WordPiece tokenizer of BERT-family models (BERT, ELECTRA, MiniLM ...).

    `vocab_file` is a `vocab.txt` path or a token -> id mapping. `strip_accents=None` follows `do_lower_case`.
    Special tokens written in the input text are recognised verbatim (case-sensitively, before normalisation).
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike | Mapping[str, int],
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        clean_text: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: int | None = 512,
        max_input_chars_per_word: int = 100,
    ) -> None:
        vocab = dict(vocab_file) if isinstance(vocab_file, Mapping) else load_vocab(vocab_file)
        specials = {"unk_token": unk_token, "sep_token": sep_token, "pad_token": pad_token, "cls_token": cls_token,
                    "mask_token": mask_token}
        for name, token in specials.items():
            if not isinstance(token, str) or token not in vocab:
                raise TokenizerError(f"{name} {token!r} is not in the vocabulary ({len(vocab)} tokens)")
        if model_max_length is not None and (not isinstance(model_max_length, int) or model_max_length <= 0):
            raise TokenizerError(f"model_max_length must be a positive int or None, got {model_max_length!r}")
        self.vocab = vocab
        self.ids_to_tokens = {i: t for t, i in vocab.items()}
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.model_max_length = model_max_length
        self.all_special_tokens = list(dict.fromkeys(specials.values()))
        self.all_special_ids = [vocab[t] for t in self.all_special_tokens]
        self.basic = BasicTokenizer(do_lower_case, strip_accents, tokenize_chinese_chars, clean_text,
                                    never_split=self.all_special_tokens)
        self.wordpiece = WordPiece(vocab, unk_token, "##", max_input_chars_per_word)

    # ----- construction from a checkpoint folder -----

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> "BertTokenizer":
        """Load a tokenizer folder: `vocab.txt` (or, without it, the WordPiece vocabulary of `tokenizer.json`)
        and the options of `tokenizer.json`'s BertNormalizer, `tokenizer_config.json` and
        `special_tokens_map.json`, later ones overriding earlier ones, as Hugging Face's fast tokenizer does.

        Keyword arguments override the values read from the files.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise TokenizerError(f"tokenizer folder not found: {directory}")
        vocab_path = os.path.join(directory, "vocab.txt")
        json_path = os.path.join(directory, "tokenizer.json")
        vocab: str | dict[str, int] = vocab_path
        kwargs: dict[str, Any] = {}
        if os.path.isfile(json_path):
            strict = not os.path.isfile(vocab_path)  # tokenizer.json must then describe the whole tokenizer
            json_vocab, kwargs = _read_tokenizer_json(json_path, strict)
            if strict:
                vocab = json_vocab
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                kwargs.update(_read_config(path))
        kwargs.update(overrides)
        return cls(vocab, **kwargs)

    def save_vocabulary(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as a `vocab.txt` (one token per line, id = line number), atomically."""
        path = os.fspath(path)
        tokens = [self.ids_to_tokens.get(i) for i in range(self.vocab_size)]
        if any(t is None for t in tokens) or any("\n" in t or "\r" in t for t in tokens):
            raise TokenizerError(f"cannot write {path}: the vocabulary ids are not 0..{self.vocab_size - 1} or a "
                                 "token holds a line break")
        atomic_write(path, "".join(t + "\n" for t in tokens).encode("utf-8"))

    # ----- vocabulary -----

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_to_id(self, token: str) -> int:
        """The id of `token` (the unknown token's id when it is not in the vocabulary)."""
        return self.vocab.get(token, self.vocab[self.unk_token])

    def id_to_token(self, token_id: int) -> str:
        try:
            return self.ids_to_tokens[int(token_id)]
        except KeyError:
            raise TokenizerError(f"token id {token_id} is out of the vocabulary range [0, {self.vocab_size})") from None

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.token_to_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.id_to_token(i) for i in ids]

    @property
    def cls_token_id(self) -> int:
        return self.vocab[self.cls_token]

    @property
    def sep_token_id(self) -> int:
        return self.vocab[self.sep_token]

    @property
    def pad_token_id(self) -> int:
        return self.vocab[self.pad_token]

    @property
    def mask_token_id(self) -> int:
        return self.vocab[self.mask_token]

    @property
    def unk_token_id(self) -> int:
        return self.vocab[self.unk_token]

    # ----- tokenization -----

    def normalize(self, text: str) -> str:
        """The text after cleaning, CJK spacing, accent stripping and lower-casing (as configured)."""
        return self.basic.normalize(text)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of `text`, without special tokens."""
        return self._encode_sequence(text, 0).tokens

    def _encode_sequence(self, text: str, sequence_id: int) -> Encoding:
        """Tokens of one text with offsets into it; no special tokens added."""
        enc = Encoding()
        for w, word in enumerate(self.basic.split_words(text)):
            if word.special:
                pieces = [(word.text, 0, len(word.text))]
            else:
                pieces = self.wordpiece.split(word.text)
            for token, a, b in pieces:
                offsets = (word.start, word.end) if token == self.unk_token and not word.special else word.span(a, b)
                enc.tokens.append(token)
                enc.ids.append(self.vocab[token])
                enc.offsets.append(offsets)
                enc.word_ids.append(w)
        n = len(enc.tokens)
        enc.type_ids = [sequence_id] * n
        enc.attention_mask = [1] * n
        enc.special_tokens_mask = [0] * n
        enc.sequence_ids = [sequence_id] * n
        return enc

    def _special(self, token: str, type_id: int) -> Encoding:
        return Encoding([token], [self.vocab[token]], [type_id], [(0, 0)], [1], [1], [None], [None])

    def _assemble(self, first: Encoding, second: Encoding | None, add_special_tokens: bool) -> Encoding:
        """[CLS] A [SEP] (B [SEP]) with type ids 0 for the first part and 1 for the second."""
        if add_special_tokens:
            enc = self._special(self.cls_token, 0).concat(first).concat(self._special(self.sep_token, 0))
        else:
            enc = first
        if second is not None:
            enc = enc.concat(second)
            if add_special_tokens:
                enc = enc.concat(self._special(self.sep_token, 1))
        return enc

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool | str = False,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        padding: bool | str = False,
        pad_to_multiple_of: int | None = None,
    ) -> Encoding:
        """Encode a text or a pair of texts.

        truncation: False (keep everything), True or "longest_first" (cut the longer text first), "only_first",
        "only_second"; `max_length` defaults to the model's maximum length and counts the special tokens.
        With `return_overflowing_tokens`, the cut-off tokens come back in `encoding.overflowing` as further
        windows that overlap the previous one by `stride` tokens (the other text is repeated in each window).
        padding: False, "longest" (no-op for one text) or "max_length" (pad to `max_length`).
        """
        strategy = self._truncation_strategy(truncation, stride, return_overflowing_tokens, padding, max_length)
        first = self._encode_sequence(text, 0)
        second = self._encode_sequence(text_pair, 1) if text_pair is not None else None
        if strategy is None:
            enc = self._assemble(first, second, add_special_tokens)
        else:
            limit = self._max_length(max_length, "truncation")
            n_special = self.num_special_tokens_to_add(second is not None) if add_special_tokens else 0
            if limit < n_special:
                raise TokenizerError(f"max_length={limit} cannot hold the {n_special} special tokens of the input")
            first_w, second_w = _truncation_windows(first, second, limit - n_special, strategy, stride)
            enc = self._assemble(first_w[0], second_w[0], add_special_tokens)
            if return_overflowing_tokens:
                # Every combination of windows but (0, 0), in the order Hugging Face tokenizers returns them.
                pairs = [(i, j) for i in range(1, len(first_w)) for j in range(len(second_w))]
                pairs += [(0, j) for j in range(1, len(second_w))]
                enc.overflowing = [self._assemble(first_w[i], second_w[j], add_special_tokens) for i, j in pairs]
        pad_length = self._pad_length(padding, max_length, [len(enc)], pad_to_multiple_of)
        if pad_length is not None:
            enc.pad(pad_length, self.pad_token_id, self.pad_token)
        return enc

    def encode_batch(
        self,
        inputs: Sequence[str | tuple[str, str] | list[str]],
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool | str = False,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        padding: bool | str = False,
        pad_to_multiple_of: int | None = None,
    ) -> list[Encoding]:
        """Encode texts or (text, text_pair) pairs; padding="longest" pads all to the longest of the batch."""
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise TokenizerError(f"encode_batch expects a list of texts or of (text, pair) tuples, got {inputs!r:.80}")
        self._truncation_strategy(truncation, stride, return_overflowing_tokens, padding, max_length)
        encodings = []
        for item in inputs:
            if isinstance(item, str):
                text, pair = item, None
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                text, pair = item
            else:
                raise TokenizerError(f"batch items must be a str or a (text, text_pair) pair, got {item!r:.80}")
            fixed = padding == "max_length"  # the same length for every item: padded one by one
            encodings.append(self.encode(text, pair, add_special_tokens, max_length, truncation, stride,
                                         return_overflowing_tokens, padding if fixed else False,
                                         pad_to_multiple_of if fixed else None))
        pad_length = None if padding == "max_length" else self._pad_length(
            padding, max_length, [len(e) for e in encodings], pad_to_multiple_of)
        if pad_length is not None:
            for enc in encodings:
                enc.pad(pad_length, self.pad_token_id, self.pad_token)
        return encodings

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = "longest",
        truncation: bool | str = False,
        max_length: int | None = None,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        pad_to_multiple_of: int | None = None,
        return_offsets_mapping: bool = False,
        return_tensors: str | None = "np",
    ) -> dict[str, np.ndarray]:
        """Model inputs as int64 arrays [batch, length]: input_ids, token_type_ids, attention_mask.

        With overflow, every window is a row and `overflow_to_sample_mapping` gives each row's input index;
        `return_offsets_mapping` adds `offset_mapping` [batch, length, 2]. ``return_tensors`` is "np" (NumPy
        arrays, the default) or None (nested Python lists, as Hugging Face gives without it); spago has no
        "pt"/"tf"/"jax" tensors.
        """
        if return_tensors not in ("np", None):
            raise TokenizerError(f"return_tensors must be 'np' (NumPy arrays) or None (lists), got "
                                 f"{return_tensors!r}: spago tokenizers give NumPy arrays")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if text_pair is None:
            items: list = texts
        else:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(texts):
                raise TokenizerError(f"got {len(texts)} texts but {len(pairs)} text pairs; they must match")
            items = list(zip(texts, pairs))
        encodings = self.encode_batch(items, add_special_tokens, max_length, truncation, stride,
                                      return_overflowing_tokens, padding, pad_to_multiple_of)
        rows, sample = [], []
        for i, enc in enumerate(encodings):
            for e in [enc, *enc.overflowing]:
                rows.append(e)
                sample.append(i)
        lengths = {len(e) for e in rows}
        if len(lengths) > 1:
            raise TokenizerError(
                f"the encodings have different lengths {sorted(lengths)}; pass padding='longest' or "
                f"padding='max_length' to stack them into arrays"
            )
        out = {
            "input_ids": np.array([e.ids for e in rows], dtype=np.int64).reshape(len(rows), -1),
            "token_type_ids": np.array([e.type_ids for e in rows], dtype=np.int64).reshape(len(rows), -1),
            "attention_mask": np.array([e.attention_mask for e in rows], dtype=np.int64).reshape(len(rows), -1),
        }
        if return_overflowing_tokens:
            out["overflow_to_sample_mapping"] = np.array(sample, dtype=np.int64)
        if return_offsets_mapping:
            out["offset_mapping"] = np.array([e.offsets for e in rows], dtype=np.int64).reshape(len(rows), -1, 2)
        return out if return_tensors == "np" else {k: v.tolist() for k, v in out.items()}

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True,
               clean_up_tokenization_spaces: bool = True) -> str:
        """Text from ids: `##` pieces join the previous token, other tokens are separated by a space."""
        ids = np.asarray(ids).reshape(-1).tolist()
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in self.all_special_tokens]
        parts = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token[2:] if token.startswith("##") else " " + token
            if clean_up_tokenization_spaces:
                # Per token, as Hugging Face does: only " ." " ?" " !" " ," can actually match.
                for dirty, clean in _CLEANUP:
                    token = token.replace(dirty, clean)
            parts.append(token)
        return "".join(parts)

    # ----- option checking -----

    def _max_length(self, max_length: int | None, purpose: str) -> int:
        if max_length is None:
            if self.model_max_length is None:
                raise TokenizerError(f"{purpose} needs max_length: the tokenizer has no model_max_length")
            return self.model_max_length
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 0:
            raise TokenizerError(f"max_length must be a non-negative int, got {max_length!r}")
        return int(max_length)

    def _truncation_strategy(self, truncation: bool | str, stride: int, overflow: bool, padding: bool | str,
                             max_length: int | None) -> str | None:
        if truncation is True:
            strategy = "longest_first"
        elif truncation is False or truncation is None or truncation == "do_not_truncate":
            strategy = None
        elif truncation in _TRUNCATION:
            strategy = truncation
        else:
            raise TokenizerError(f"truncation must be True, False or one of {_TRUNCATION}, got {truncation!r}")
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 0:
            raise TokenizerError(f"stride must be a non-negative int, got {stride!r}")
        if strategy is None and (stride or overflow):
            raise TokenizerError("stride and return_overflowing_tokens need truncation (e.g. truncation='only_second')")
        if strategy is None and max_length is not None and padding != "max_length":
            # Hugging Face ignores such a max_length with a warning; here the caller must say what it is for.
            raise TokenizerError(f"max_length={max_length} is used only with truncation=True (or a strategy) or "
                                 f"padding='max_length'; without them nothing would be cut to it")
        return strategy

    def _pad_length(self, padding: bool | str, max_length: int | None, lengths: list[int],
                    multiple: int | None) -> int | None:
        if padding is True:
            padding = "longest"
        if padding is False or padding is None or padding == "do_not_pad":
            return None
        if padding not in _PADDING:
            raise TokenizerError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        length = max(lengths, default=0) if padding == "longest" else self._max_length(max_length, "padding")
        if multiple is not None:
            if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple <= 0:
                raise TokenizerError(f"pad_to_multiple_of must be a positive int, got {multiple!r}")
            length = -(-length // multiple) * multiple
        return length


def _truncation_windows(
    first: Encoding, second: Encoding | None, max_len: int, strategy: str, stride: int
) -> tuple[list[Encoding], list[Encoding | None]]:
    """Windows of each text so that the kept (first) windows fit `max_len` tokens together ([None] for no pair).

    longest_first: a text shorter than half the budget is kept whole and the other gets the rest; otherwise both
    get half (the longer text the odd token). only_first / only_second: cut that text alone.
    """
    n1, n2 = len(first), len(second) if second is not None else 0
    total = n1 + n2
    keep1, keep2 = n1, n2
    if max_len == 0:  # no room at all: every token overflows
        keep1 = keep2 = 0
    elif total > max_len:
        if strategy == "longest_first":
            if second is None:
                keep1 = max_len
            else:
                short, long_ = min(n1, n2), max(n1, n2)
                long_keep = short if short > max_len else max(short, max_len - short)
                if short + long_keep > max_len:
                    short = max_len // 2
                    long_keep = short + max_len % 2
                keep1, keep2 = (short, long_keep) if n1 <= n2 else (long_keep, short)
        else:
            if strategy == "only_second" and second is None:
                raise TokenizerError("truncation='only_second' needs a text pair, but only one text was given")
            target = n1 if strategy == "only_first" else n2
            remove = total - max_len
            if target <= remove:
                raise TokenizerError(
                    f"cannot truncate with {strategy!r}: the input is {total} tokens for a budget of {max_len} "
                    f"(after special tokens), and the text to cut has only {target}; use 'longest_first'"
                )
            if strategy == "only_first":
                keep1 = n1 - remove
            else:
                keep2 = n2 - remove
    first_w = [first.slice(a, b) for a, b in window_ranges(n1, keep1, stride)]
    second_w = [second.slice(a, b) for a, b in window_ranges(n2, keep2, stride)] if second is not None else [None]
    return first_w, second_w


def _read_json(path: str) -> Any:
    """A tokenizer JSON file read by `spago.schema.read_json` (bounded, any defect a TokenizerError)."""
    try:
        return read_json(path, "tokenizer file")
    except SpagoError as e:
        raise TokenizerError(str(e)) from None


def _read_config(path: str) -> dict[str, Any]:
    """Tokenizer options from a Hugging Face tokenizer_config.json or special_tokens_map.json."""
    config = _read_json(path)
    if not isinstance(config, dict):
        raise TokenizerError(f"{path} must hold a JSON object, got {type(config).__name__}")
    kwargs: dict[str, Any] = {}
    for key in ("do_lower_case", "tokenize_chinese_chars", "clean_text"):
        if key in config:
            if not isinstance(config[key], bool):
                raise TokenizerError(f"{path}: {key} must be true or false, got {config[key]!r}")
            kwargs[key] = config[key]
    if "strip_accents" in config:
        if config["strip_accents"] is not None and not isinstance(config["strip_accents"], bool):
            raise TokenizerError(f"{path}: strip_accents must be true, false or null, got {config['strip_accents']!r}")
        kwargs["strip_accents"] = config["strip_accents"]
    if "model_max_length" in config:
        value = config["model_max_length"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise TokenizerError(f"{path}: model_max_length must be a positive number, got {value!r}")
        # Hugging Face writes a huge number (1e30) when the model sets no limit.
        kwargs["model_max_length"] = int(value) if value < 1e9 else None
    for key in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        if key in config and config[key] is not None:
            value = config[key]
            if isinstance(value, dict):  # AddedToken written as {"content": ..., "lstrip": ...}
                value = value.get("content")
            if not isinstance(value, str) or not value:
                raise TokenizerError(f"{path}: {key} must be a token string, got {config[key]!r}")
            kwargs[key] = value
    return kwargs


def _read_tokenizer_json(path: str, strict: bool) -> tuple[dict[str, int], dict[str, Any]]:
    """The WordPiece vocabulary and BertNormalizer options of a Hugging Face `tokenizer.json`.

    With `strict` (no vocab.txt beside it) anything but a BERT WordPiece tokenizer is refused; otherwise only the
    normaliser options are taken, when it has a BertNormalizer.
    """
    data = _read_json(path)
    model = data.get("model") if isinstance(data, dict) else None
    normalizer = data.get("normalizer") if isinstance(data, dict) else None
    kwargs: dict[str, Any] = {}
    if isinstance(normalizer, dict) and normalizer.get("type") == "BertNormalizer":
        for ours, theirs in (("do_lower_case", "lowercase"), ("strip_accents", "strip_accents"),
                             ("tokenize_chinese_chars", "handle_chinese_chars"), ("clean_text", "clean_text")):
            value = normalizer.get(theirs)
            if value is not None or ours == "strip_accents":
                if value is not None and not isinstance(value, bool):
                    raise TokenizerError(f"{path}: normalizer.{theirs} must be true, false or null, got {value!r}")
                kwargs[ours] = value
    elif strict:
        raise TokenizerError(f"{path}: expected a BertNormalizer, got {normalizer!r:.80} (only BERT WordPiece "
                             "tokenizers are supported)")
    if not strict:
        return {}, kwargs
    pre = data.get("pre_tokenizer")
    if not (isinstance(pre, dict) and pre.get("type") == "BertPreTokenizer"):
        raise TokenizerError(f"{path}: expected a BertPreTokenizer, got {pre!r:.80} (only BERT WordPiece "
                             "tokenizers are supported)")
    if not (isinstance(model, dict) and model.get("type") == "WordPiece"):
        kind = model.get("type") if isinstance(model, dict) else model
        raise TokenizerError(f"{path}: model type {kind!r} is not WordPiece (only BERT WordPiece tokenizers are "
                             "supported)")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise TokenizerError(f"{path}: continuing_subword_prefix {model['continuing_subword_prefix']!r} is not "
                             "'##'")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab or not all(
            isinstance(t, str) and t and isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2 ** 31
            for t, i in vocab.items()):
        raise TokenizerError(f"{path}: model.vocab must map non-empty tokens to integer ids in [0, 2**31)")
    if len(set(vocab.values())) != len(vocab):
        raise TokenizerError(f"{path}: model.vocab gives the same id to several tokens")
    try:
        fields = check_fields(model, TOKENIZER_MODEL, path)
    except SpagoError as e:
        raise TokenizerError(str(e).replace("field '", "field 'model.")) from None
    kwargs.update(fields)
    return dict(vocab), kwargs
