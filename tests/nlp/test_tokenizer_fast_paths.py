"""The tokenizer's fast paths give exactly what the general code gives: ASCII text split by a regex (compared
with the same text taken through the per-character path, which a non-ASCII word at the end forces), and the
WordPiece cache (compared with a fresh split)."""
from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from spago.nlp.tokenizers.basic import BasicTokenizer
from spago.nlp.tokenizers.wordpiece import WordPiece

ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=ASCII, lower=st.booleans(), clean=st.booleans())
def test_ascii_words_match_the_general_path(text, lower, clean):
    basic = BasicTokenizer(do_lower_case=lower, clean_text=clean)
    general = basic._split_plain(text + " é", 7)
    assert general[-1].text == ("e" if lower else "é")
    assert basic._split_plain(text, 7) == general[:-1]


def test_ascii_examples():
    basic = BasicTokenizer()
    words = basic.split_words("Hello, World!\tdon't [MASK] x\ny")
    assert [(w.text, w.start, w.end) for w in words] == [
        ("hello", 0, 5), (",", 5, 6), ("world", 7, 12), ("!", 12, 13), ("don", 14, 17), ("'", 17, 18),
        ("t", 18, 19), ("[MASK]", 20, 26), ("x", 27, 28), ("y", 29, 30)]
    assert basic.split_words("a\x00b")[0].text == "ab"  # a deleted control: the general path


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(alphabet=string.ascii_lowercase[:6], min_size=1, max_size=12), max_size=10))
def test_wordpiece_cache_returns_fresh_splits(words):
    vocab = {t: i for i, t in enumerate(["[UNK]", "a", "b", "ab", "abc", "##a", "##b", "##c", "##d", "##cd", "e"])}
    cached, fresh = WordPiece(vocab, max_input_chars_per_word=10), WordPiece(vocab, max_input_chars_per_word=10)
    for word in words + words:
        pieces = cached.split(word)
        assert pieces == fresh._split(word)
        pieces.append(("mutated", 0, 0))  # the caller's list is its own
        assert cached.split(word) == fresh._split(word)
