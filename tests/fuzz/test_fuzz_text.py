"""Fuzzing the tokenizer with any text: a result or a TokenizerError (lone surrogates), and, where Hugging Face
`tokenizers` is installed, the same tokens and offsets as it gives."""
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spago.nlp.tokenizers import BertTokenizer, TokenizerError

from .conftest import FUZZ, outcome

FOLDER = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                                       "tiny-bert", "base"))
texts = st.text(st.characters(codec=None, categories=None), max_size=40) | st.text(
    st.sampled_from("a\u0301\u0309\U0001D16D\u0130\u03a3 \t\n\u200d\u3000!?,.\u4e00\uac00\ud800\udfff"), max_size=20)


@pytest.fixture(scope="module")
def pair():
    if not os.path.isdir(FOLDER):
        pytest.skip(f"reference fixture {FOLDER} not found")
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers (the reference) is not installed")
    return BertTokenizer.from_pretrained(FOLDER), tokenizers.Tokenizer.from_file(os.path.join(FOLDER, "tokenizer.json"))


@FUZZ
@given(text=texts)
def test_fuzz_tokenizer_text(pair, text):
    ours, reference = pair
    result = outcome("tokenizer text", ours.encode, text, add_special_tokens=False)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert isinstance(result, TokenizerError)
        return
    want = reference.encode(text, add_special_tokens=False)
    assert (result.tokens, result.offsets) == (want.tokens, want.offsets)
