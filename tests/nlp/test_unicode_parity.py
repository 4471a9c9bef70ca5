"""spago's BERT normaliser and pre-tokeniser agree with Hugging Face `tokenizers` on every code point."""
import os
import random

import pytest

from spago.nlp.tokenizers import BasicTokenizer, BertTokenizer, TokenizerError
from spago.nlp.tokenizers.unicode_data import tables

tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers (the reference) is not installed")

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@pytest.mark.parametrize("strip_accents, lowercase", [(True, True), (False, True)])
def test_every_code_point_normalises_as_the_reference(strip_accents, lowercase):
    """Every code point with accent stripping and lower-casing (uncased models); without stripping (cased
    lower-casing) only the code points that decompose or are dropped as marks can differ, so only they are
    checked again."""
    from tokenizers.normalizers import BertNormalizer

    reference = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                               lowercase=lowercase)
    ours = BasicTokenizer(do_lower_case=lowercase, strip_accents=strip_accents, never_split=())
    points = CODE_POINTS if strip_accents else [cp for cp in CODE_POINTS if tables().decompose(chr(cp)) != chr(cp)
                                                or tables().is_nonspacing(chr(cp))]
    # one call on every code point with "b" (combining class 0: no reordering across it) between them;
    # the origins tell which output characters each code point gave
    text = "".join("b" + chr(cp) for cp in points)
    chars, origins = ours.normalize_with_origins(text)
    pieces = [[] for _ in points]
    for c, o in zip(chars, origins):
        if o % 2:
            pieces[o // 2].append(c)
    differ = [f"U+{cp:04X}" for cp, piece in zip(points, pieces)
              if "".join(piece) != reference.normalize_str(chr(cp))]
    assert not differ, f"{len(differ)} code points differ: {differ[:20]}"


def test_every_code_point_splits_as_the_reference():
    from tokenizers.pre_tokenizers import BertPreTokenizer

    text = "".join("a" + chr(cp) for cp in CODE_POINTS) + "a"
    reference = [(w, s) for w, s in BertPreTokenizer().pre_tokenize_str(text)]
    ours = BasicTokenizer(do_lower_case=False, strip_accents=False, tokenize_chinese_chars=False,
                          clean_text=False, never_split=())._split_plain(text, 0)
    assert [(w.text, (w.start, w.end)) for w in ours] == reference


def test_tables_name_their_source_and_differ_from_python_where_the_reference_does():
    data = tables()
    assert data.source.startswith("tokenizers ")
    assert data.is_punctuation("!") and data.is_punctuation("\u00bf") and not data.is_punctuation("a")
    assert data.is_control("\u200b") and not data.is_control("\t") and "\u3000" in data.whitespace


def _random_text(rng: random.Random) -> str:
    pools = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x300, 0x370), range(0x370, 0x530), range(0x590, 0x700),
             range(0x900, 0xE00), range(0x1100, 0x1200), range(0x1D00, 0x2000), range(0x2000, 0x2070),
             range(0x3000, 0x3100), range(0x4E00, 0x4F00), range(0xAC00, 0xAD00), range(0xFE00, 0xFF00),
             range(0x1D100, 0x1D200), range(0x1F300, 0x1F700), range(0xE0000, 0xE0080), range(0x10000, 0x10FFFF)]
    out = []
    for _ in range(rng.randint(1, 30)):
        pool = rng.choice(pools)
        out.append(chr(rng.choice(pool)) if len(pool) < 0x10000 else chr(rng.randrange(0x10000, 0x10FFFF)))
        if rng.random() < 0.2:
            out.append(" ")
    text = "".join(out)
    return "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)


def test_random_strings_encode_as_the_reference():
    folder = os.path.join(FIXTURES, "tiny-bert", "base")
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    reference = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    ours = BertTokenizer.from_pretrained(folder)
    rng = random.Random(14)
    texts = [_random_text(rng) for _ in range(3000)] + ["\u0309\U0001D16D", "a\u0309\u0300\U0001D16D\u0301b",
                                                         "\u0130stanbul \u03a3\u0391\u03a3", "\u1e9e\ufb03x"]
    differ = []
    for text in texts:
        want = reference.encode(text, add_special_tokens=False)
        got = ours.encode(text, add_special_tokens=False)
        if (want.tokens, want.offsets) != (got.tokens, got.offsets):
            differ.append(text)
    assert not differ, f"{len(differ)} of {len(texts)} differ, e.g. {[t.encode('unicode_escape') for t in differ[:5]]}"


def test_offset_after_a_deleted_combining_mark():
    folder = os.path.join(FIXTURES, "tiny-bert", "base")
    if not os.path.isdir(folder):
        pytest.skip(f"reference fixture {folder} not found")
    reference = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    ours = BertTokenizer.from_pretrained(folder)
    text = "\u0309\U0001D16D"  # NFD puts U+1D16D (class 226) before U+0309 (230), which accent stripping drops
    assert ours.encode(text, add_special_tokens=False).offsets == [(0, 1)]
    assert reference.encode(text, add_special_tokens=False).offsets == [(0, 1)]


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "ok \udc80"])
def test_lone_surrogates_are_refused_like_the_reference(text):
    folder = os.path.join(FIXTURES, "tiny-bert", "base")
    with pytest.raises(TokenizerError, match=r"lone surrogate .* at index"):
        BasicTokenizer().tokenize(text)
    if os.path.isdir(folder):
        with pytest.raises(TokenizerError, match=r"lone surrogate"):
            BertTokenizer.from_pretrained(folder).encode(text)
        with pytest.raises(Exception):
            tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json")).encode(text)
