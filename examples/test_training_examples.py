"""The training examples, run briefly: each must learn clearly more than chance."""
from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "data"))

import char_lm  # noqa: E402
import make_ner_corpus  # noqa: E402
import ner_tagger  # noqa: E402


def test_char_lm_beats_the_uniform_baseline():
    out = char_lm.main(steps=60, batch_size=16, seq_len=24, hidden_size=48, lr=0.01, dropout=0.0, sample_length=40,
                       progress=False)
    v = out["vocab_size"]
    assert out["perplexity_before"] > 0.8 * v  # an untrained model is about as good as uniform guessing
    assert out["perplexity"] < 0.35 * v, out["perplexity"]
    assert out["sample"].startswith("The river") and len(out["sample"]) == len("The river") + 40


def test_char_lm_compiled_training_matches_eager():
    options = dict(steps=3, batch_size=4, seq_len=5, hidden_size=8, dropout=0.0, sample_length=5, progress=False)
    eager = char_lm.main(**options)
    compiled = char_lm.main(compiled=True, **options)
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-4)
    assert compiled["sample"] == eager["sample"]


def test_training_shows_a_tqdm_progress_bar_in_either_mode(capsys):
    options = dict(steps=2, batch_size=4, seq_len=5, hidden_size=8, dropout=0.0, sample_length=5)
    for compiled in (False, True):
        char_lm.main(compiled=compiled, **options)
        bar = capsys.readouterr().err
        assert f"training ({'compiled' if compiled else 'eager'})" in bar and "2/2" in bar, bar


def test_ner_tagger_finds_entities_in_held_out_sentences():
    out = ner_tagger.main(epochs=1, progress=False)
    assert out["f1"] > 0.7, out["scores"]
    assert out["scores"]["gold"] > 200


def test_ner_corpus_files_are_what_the_generator_writes():
    train, test = make_ner_corpus.corpus()
    for name, part in (("ner_train.txt", train), ("ner_test.txt", test)):
        with open(os.path.join(HERE, "data", name), encoding="utf-8") as f:
            assert f.read() == make_ner_corpus.render(part)
    parsed = ner_tagger.read_conll(os.path.join(HERE, "data", "ner_test.txt"))
    assert [list(zip(*s)) for s in parsed] == [list(s) for s in test]
