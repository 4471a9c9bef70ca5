"""Flair-compatible NER: parity with flair 0.15.1 on the fixtures, import, bad input, training."""
from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from spago.errors import SpagoError
from spago.metrics import entity_f1, get_entities
from spago.nlp.charlm import LanguageModel, train_language_model
from spago.nlp.flair_format import read_flair_file, read_flair_pickle
from spago.nlp.ner_training import TrainConfig, read_conll, to_bioes, train_tagger, write_conll
from spago.nlp.sequence_labeler import SequenceTagger, get_spans_from_bio, network_from_flair, tokenize

FLAIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "flair"))
pytestmark = pytest.mark.skipif(not os.path.isdir(FLAIR), reason=f"Flair fixtures not found at {FLAIR}")

KEYS = ("text", "start", "end", "label")


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(FLAIR, "reference.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def eager():
    return SequenceTagger.from_flair(os.path.join(FLAIR, "tagger.pt"), compiled=False)


def _check_predictions(tagger, sentences, predictions):
    worst = 0.0
    for s, tokens in zip(sentences, predictions):
        assert [(t.text, t.start, t.end) for t in tokens] == [(t["text"], t["start"], t["end"]) for t in s["tokens"]]
        for got, want in zip(tokens, s["tokens"]):
            assert got.tag == want["tag"], (s["text"], got.text)
            if want["score"] is not None:
                assert abs(got.score - want["score"]) < 1e-5
            assert set(got.distribution) == set(want["distribution"])
            worst = max(worst, max(abs(got.distribution[k] - v) for k, v in want["distribution"].items()))
        spans = tagger.spans(tokens)
        assert [{k: x[k] for k in KEYS} for x in spans] == [{k: x[k] for k in KEYS} for x in s["spans"]]
        assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(spans, s["spans"]))
    assert worst < 1e-5
    return worst


# -- the restricted reader ---------------------------------------------------------------------------

def _torch_zip(tmp_path, obj_pickle: bytes):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", obj_pickle)
    return path


def test_reader_admits_flair_data_only(tmp_path):
    state = read_flair_file(os.path.join(FLAIR, "tagger.pt"))
    assert state["__cls__"] == "SequenceTagger" and state["tag_dictionary"].get_item_for_index(0) == "O"
    assert len(state["embeddings"]["embeddings"][0]["model_params"]["dictionary"]) == 89
    chars = read_flair_pickle(os.path.join(FLAIR, "_corpus", "chars.pkl"))
    assert len(chars["idx2item"]) == 89
    import collections

    with pytest.raises(SpagoError, match="collections.Counter"):
        read_flair_file(_torch_zip(tmp_path, pickle.dumps(collections.Counter(a=1), protocol=4)))
    with pytest.raises(SpagoError, match="posix.system|os.system"):
        read_flair_file(_torch_zip(tmp_path, b"\x80\x04\x95\x11\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94"
                                             b"\x8c\x06system\x94\x93\x94."))
    with pytest.raises(SpagoError, match="not a Flair model file"):
        read_flair_file(_write(tmp_path / "x.pt", b"not a zip"))


def test_reader_applies_the_restricted_readers_limits(tmp_path):
    from spago.nlp.torch_pickle import Limits

    path = os.path.join(FLAIR, "tagger.pt")
    with pytest.raises(SpagoError, match="nested more than 3 deep"):
        read_flair_file(path, Limits(max_depth=3))
    with pytest.raises(SpagoError, match="more than 100 pickle opcodes"):
        read_flair_file(path, Limits(max_opcodes=100))
    with pytest.raises(SpagoError, match="more than 100 pickle opcodes"):
        read_flair_pickle(os.path.join(FLAIR, "_corpus", "chars.pkl"), Limits(max_opcodes=100))
    with pytest.raises(SpagoError, match="persistent id outside an archive"):
        read_flair_pickle(_write(tmp_path / "p.pkl", b"\x80\x02X\x01\x00\x00\x00kQ."))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


# -- the character LM --------------------------------------------------------------------------------

def test_language_model_parity():
    lm = LanguageModel.from_flair(os.path.join(FLAIR, "lm-forward.pt"))
    with open(os.path.join(FLAIR, "lm-forward-reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    ids = np.array([lm.encode(ref["text"])])
    assert ids[0].tolist() == ref["ids"]
    assert np.abs(lm.log_softmax(ids).numpy()[0] - np.array(ref["log_softmax"])).max() < 1e-5
    assert np.abs(lm.run(ids)[0] - np.array(ref["rnn_output"])).max() < 1e-5
    assert np.abs(lm.run(ids, compiled=True)[0] - np.array(ref["rnn_output"])).max() < 1e-5
    backward = LanguageModel.from_flair(os.path.join(FLAIR, "lm-backward.pt"))
    assert not backward.is_forward_lm and backward.dictionary == lm.dictionary


def test_language_models_run_together_as_each_alone():
    """One native call for both LMs (`run_together`) gives each model's own compiled run, and bad ids are named."""
    from spago.nlp.charlm import run_together

    models = [LanguageModel.from_flair(os.path.join(FLAIR, f"lm-{d}.pt")) for d in ("forward", "backward")]
    texts = ["Paris is in France .", "I live in New York"]
    ids = [m.char_ids(texts, "\n", " ", compiled=True)[0] for m in models]
    assert all(x.shape == (2, 64) for x in ids)
    together = run_together(models, ids)
    for m, x, out in zip(models, ids, together):
        np.testing.assert_allclose(out, m.run(x, compiled=True), rtol=0, atol=1e-6)
        np.testing.assert_allclose(out, m.run(x), rtol=0, atol=1e-5)
    with pytest.raises(SpagoError, match="width of CHAR_BUCKETS"):
        run_together(models, [x[:, :50] for x in ids])
    with pytest.raises(SpagoError, match="one char id array per model"):
        run_together(models, ids[:1])


def test_stacked_flair_embeddings_share_one_call_with_the_same_vectors(reference):
    """Compiled inputs with the Flair embeddings grouped equal each embedding's own `token_vectors`; text
    longer than the largest character bucket falls back to chunked runs per model."""
    from spago.nlp.token_embeddings import FlairEmbeddings

    tagger = SequenceTagger.from_flair(os.path.join(FLAIR, "tagger.pt"))
    stacked = tagger.network.embeddings
    flair = [k for k, e in enumerate(stacked.embeddings) if type(e) is FlairEmbeddings]
    assert len(flair) == 2
    for text in (reference["sentences"][2]["text"], "word " * 150):
        sentences = [tagger.tokenize(text)]
        inputs = stacked.inputs(sentences, 512, compiled=True)
        for k in flair:
            alone = stacked.embeddings[k].token_vectors(sentences, compiled=True)[0]
            np.testing.assert_array_equal(inputs[f"{k}.vectors"][0, :len(alone)], alone)
            assert not inputs[f"{k}.vectors"][0, len(alone):].any()


def test_tagger_parity_compiled_one_sentence_at_a_time(reference):
    """Batch 1, as a server tags: the grouped LM call, per-bucket tagger calls, spans and distributions."""
    compiled = SequenceTagger.from_flair(os.path.join(FLAIR, "tagger.pt"))
    sentences = [s for s in reference["sentences"] if s["tokens"]][:4]
    _check_predictions(compiled, sentences, [compiled.predict(s["text"]) for s in sentences])


def test_language_model_generation_and_training(tmp_path):
    lm = LanguageModel.from_flair(os.path.join(FLAIR, "lm-forward.pt"))
    text, nll = lm.generate_text("The ", 30, temperature=0.5, seed=3)
    assert text.startswith("The ") and len(text) >= 34 and nll > 0  # (<unk> is one item of 5 characters)
    assert lm.generate_text("The ", 30, temperature=0.5, seed=3) == (text, nll)
    with pytest.raises(SpagoError, match="temperature"):
        lm.generate_text("a", 3, temperature=0)
    corpus = "the cat sat on the mat. the dog sat on the log. " * 12
    small = LanguageModel(lm.dictionary, True, hidden_size=16, embedding_size=8, dropout=0.0)
    before = small.perplexity(corpus[:60])
    result = train_language_model(small, corpus, corpus[:60], epochs=3, batch_size=4, bptt=16, lr=2.0,
                                  compiled=False, checkpoint=str(tmp_path / "lm.safetensors"))
    assert result["best_perplexity"] < before / 2 and os.path.exists(tmp_path / "lm.safetensors")
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]


def test_language_model_compiled_training_step_matches_eager():
    d = LanguageModel.from_flair(os.path.join(FLAIR, "lm-forward.pt")).dictionary
    corpus = "abc abd abe " * 20
    runs = []
    for compiled in (False, True):
        import spago

        spago.manual_seed(0)
        lm = LanguageModel(d, True, hidden_size=8, embedding_size=4, dropout=0.0)
        runs.append(train_language_model(lm, corpus, corpus[:30], epochs=1, batch_size=2, bptt=8, lr=1.0,
                                         compiled=compiled)["history"][0]["train_loss"])
    assert abs(runs[0] - runs[1]) < 1e-4


# -- the tagger --------------------------------------------------------------------------------------

def test_tagger_parity_eager(reference, eager):
    sentences = reference["sentences"]
    assert reference["flair_version"] == "0.15.1"
    worst_embedding = 0.0
    for s in sentences:
        tokens, vectors = eager.embed(s["text"])
        assert vectors.shape == (len(s["tokens"]), 144) and vectors.dtype == np.float32
        if tokens:
            worst_embedding = max(worst_embedding, float(np.abs(vectors - np.array(s["embeddings"])).max()))
    assert worst_embedding < 1e-5
    _check_predictions(eager, sentences, eager.predict([s["text"] for s in sentences]))


def test_tagger_parity_compiled(reference):
    compiled = SequenceTagger.from_flair(os.path.join(FLAIR, "tagger.pt"))
    assert compiled.compiled
    sentences = reference["sentences"]  # the 32 non-empty ones make one batch: few specialisations compile
    _check_predictions(compiled, sentences, compiled.predict([s["text"] for s in sentences]))
    short = reference["sentences"][2]
    _, vectors = compiled.embed(short["text"])
    assert np.abs(vectors - np.array(short["embeddings"])).max() < 1e-5


def test_analyze_shapes(eager, reference):
    text = reference["sentences"][0]["text"]
    merged = eager.analyze(text)
    spans = reference["sentences"][0]["spans"]
    assert [{k: t[k] for k in KEYS} for t in merged["tokens"]] == [{k: s[k] for k in KEYS} for s in spans]
    assert all(set(t) == {"text", "start", "end", "label", "score"} for t in merged["tokens"])
    every = eager.analyze(text, merge_entities=False, filter_not_entities=False)["tokens"]
    assert len(every) == len(reference["sentences"][0]["tokens"])
    assert {t["label"] for t in every} >= {"O", "B-person", "E-person"}
    entities_only = eager.analyze(text, merge_entities=False)["tokens"]
    assert all(t["label"] != "O" for t in entities_only)
    mixed = eager.analyze(text, filter_not_entities=False)["tokens"]
    assert [t["start"] for t in mixed] == sorted(t["start"] for t in mixed)
    assert all(text[t["start"]:t["end"]] == t["text"] for t in mixed)
    assert eager.analyze("") == {"tokens": []} and eager.analyze(" \n\t ") == {"tokens": []}


def test_save_load_and_import_flair_command(tmp_path, eager, reference):
    from spago.cli import main

    dst = tmp_path / "tagger.safetensors"
    assert main(["import-flair", os.path.join(FLAIR, "tagger.pt"), str(dst)]) == 0
    loaded = SequenceTagger.load(dst, compiled=False)
    text = reference["sentences"][1]["text"]
    assert [(t.tag, t.score) for t in loaded.predict(text)] == [(t.tag, t.score) for t in eager.predict(text)]
    assert main(["import-flair", os.path.join(FLAIR, "lm-forward.pt"), str(tmp_path / "lm.safetensors")]) == 0
    import spago

    lm = spago.load(LanguageModel, tmp_path / "lm.safetensors")
    assert lm.is_forward_lm and len(lm.dictionary) == 89
    assert main(["import-flair", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2


def test_unsupported_flair_files_are_named():
    def state():
        return read_flair_file(os.path.join(FLAIR, "tagger.pt"))

    s = state()
    s["__cls__"] = "TextClassifier"
    with pytest.raises(SpagoError, match="TextClassifier"):
        network_from_flair(s)
    s = state()
    s["model_card"]["flair_version"] = "0.11.3"
    with pytest.raises(SpagoError, match="0.11.3"):
        network_from_flair(s)
    s = state()
    s["embeddings"]["embeddings"][3]["__cls__"] = "TransformerWordEmbeddings"
    with pytest.raises(SpagoError, match="TransformerWordEmbeddings"):
        network_from_flair(s)
    s = state()
    s["rnn_type"] = "Mamba"
    with pytest.raises(SpagoError, match="Mamba"):
        network_from_flair(s)
    s = state()
    del s["state_dict"]["linear.weight"]
    with pytest.raises(SpagoError, match="linear.weight"):
        network_from_flair(s)
    with pytest.raises(SpagoError, match="not a LanguageModel"):
        LanguageModel.from_flair(os.path.join(FLAIR, "tagger.pt"))


# -- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   \n\t", "a\x00b\x07 c\x1bd", "Ciao 🙂👍🏽 ok", "東京 は 大きい。北京！",
                                  "tab\tand\r\nnewline", "x" * 50 + " " + "y" * 30])
def test_tokens_have_offsets_into_the_text(text, eager):
    tokens = tokenize(text)
    assert all(text[t.start:t.end] == t.text for t in tokens)
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)
    if text.strip():
        assert tokens
    else:
        assert tokens == [] and eager.predict(text) == []


def test_long_and_zero_width_text():
    text = ("Mark lives in Glasgow, Scotland. " * 3100)[:100_000]
    tokens = tokenize(text)
    assert len(text) == 100_000 and len(tokens) > 15_000
    assert all(text[t.start:t.end] == t.text for t in tokens[:50] + tokens[-50:])
    zw = "Glas\u200bgow is big"
    first = tokenize(zw)[0]
    assert (first.text, first.start, first.end) == ("Glasgow", 0, 8)
    with pytest.raises(SpagoError, match="expected text"):
        tokenize(None)


# -- metrics and spans -------------------------------------------------------------------------------

def test_entity_f1_conlleval_rules():
    assert get_entities(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "B-ORG"]) == \
        [("PER", 0, 2), ("LOC", 3, 5), ("ORG", 5, 6), ("ORG", 6, 7)]
    assert get_entities(["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 4), ("LOC", 4, 5)]
    assert to_bioes(["B-PER", "I-PER", "I-PER", "O", "B-LOC"]) == ["B-PER", "I-PER", "E-PER", "O", "S-LOC"]
    scores = entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    assert (scores["correct"], scores["gold"], scores["predicted"]) == (1, 2, 2) and scores["f1"] == 0.5
    with pytest.raises(SpagoError, match="X-PER"):
        entity_f1([["X-PER"]], [["O"]])
    assert get_spans_from_bio(["B-a", "E-a", "S-b", "I-c", "O"], [0.5, 0.7, 0.2, 0.4, 0.9]) == \
        [([0, 1], 0.6, "a"), ([2], 0.2, "b"), ([3], 0.4, "c")]


# -- training ----------------------------------------------------------------------------------------

def _small_config(**kw):
    base = dict(epochs=2, batch_size=8, hidden_size=8, char_embedding_dim=4, hidden_size_char=4,
                word_embedding_dim=8, dropout=0.0, word_dropout=0.0, locked_dropout=0.0, lr=0.05, patience=5)
    base.update(kw)
    return TrainConfig(**base)


def test_train_ner_eager_with_language_models(tmp_path):
    train = read_conll(os.path.join(FLAIR, "_corpus", "train.txt"))[:16]
    dev = read_conll(os.path.join(FLAIR, "_corpus", "dev.txt"))[:8]
    config = _small_config(compiled=False, language_models=(os.path.join(FLAIR, "lm-forward.pt"),
                                                            os.path.join(FLAIR, "lm-backward.pt")))
    out = tmp_path / "ner.safetensors"
    result = train_tagger(train, dev, dev, config, output=str(out))
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0.0 <= result["test"]["f1"] <= 1.0 and out.exists()
    tagger = SequenceTagger.load(out, compiled=False)
    assert len(tagger.predict("Texas wide receiver John Chiles")) == 5


def test_train_ner_compiled_step_matches_eager(tmp_path):
    words = [["Ann", "met", "Bob"], ["Bob", "is", "in", "Rome"], ["Rome", "is", "big"], ["Ann", "ran"]] * 4
    tags = [["B-PER", "O", "B-PER"], ["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O", "O"], ["B-PER", "O"]] * 4
    train = list(zip(words, tags))
    write_conll(train, tmp_path / "train.txt")
    assert read_conll(tmp_path / "train.txt") == train
    losses = []
    for compiled in (False, True):
        config = _small_config(epochs=1, batch_size=16, compiled=compiled, min_freq=1)
        losses.append(train_tagger(train, train[:4], None, config)["history"][0]["loss"])
    assert abs(losses[0] - losses[1]) < 1e-3


def test_random_batches_as_flair_draws_them():
    """``length_batches=False`` draws batches at random (as Flair does) instead of grouping sentences of
    similar length: a different batch order, the same in the compiled step as eagerly."""
    words = [["Ann", "met", "Bob"], ["Bob", "is", "in", "Rome", "now"], ["Rome"], ["Ann", "ran", "to", "Bob"],
             ["Bob", "ran"], ["Ann", "is", "in", "Rome", "with", "Bob", "today"]] * 4
    tags = [["B-PER", "O", "B-PER"], ["B-PER", "O", "O", "B-LOC", "O"], ["B-LOC"], ["B-PER", "O", "O", "B-PER"],
            ["B-PER", "O"], ["B-PER", "O", "O", "B-LOC", "O", "B-PER", "O"]] * 4
    train = list(zip(words, tags))
    history = {}
    for length_batches, compiled in ((True, True), (False, True), (False, False)):
        config = _small_config(batch_size=4, compiled=compiled, min_freq=1, length_batches=length_batches)
        history[length_batches, compiled] = [h["loss"] for h in train_tagger(train, train[:4], None, config)["history"]]
    assert all(h[1] < h[0] for h in history.values())
    assert abs(history[True, True][0] - history[False, True][0]) > 1e-3     # other batches
    np.testing.assert_allclose(history[False, True], history[False, False], rtol=1e-3)


def test_flair_dropouts_in_the_tagger(eager):
    """Word dropout 0.05 and locked dropout 0.5 as Flair's tagger: read from the Flair file, the defaults of
    TrainConfig, active only in training (whole token vectors; the same features over a sentence), and in
    the compiled training step (fresh masks each call, loss still falls)."""
    from spago.nlp.ner_training import build_network

    net = eager.network
    assert (net.word_dropout.p, net.locked_dropout.p, net.dropout) == (0.05, 0.5, None)   # the fixture's own
    words = [["Ann", "met", "Bob", "in", "Rome"], ["Bob", "is", "in", "Rome"], ["Ann", "ran"]] * 4
    tags = [["B-PER", "O", "B-PER", "O", "B-LOC"], ["B-PER", "O", "O", "B-LOC"], ["B-PER", "O"]] * 4
    train = list(zip(words, tags))
    config = TrainConfig(epochs=3, batch_size=12, hidden_size=8, char_embedding_dim=4, hidden_size_char=4,
                         word_embedding_dim=8, min_freq=1, lr=0.05, patience=5)
    assert (config.dropout, config.word_dropout, config.locked_dropout) == (0.0, 0.05, 0.5)
    network = build_network(train, config)
    assert (network.word_dropout.p, network.locked_dropout.p) == (0.05, 0.5)
    tagger = SequenceTagger(network, compiled=False)
    tokens = [tagger.tokenize(" ".join(w)) for w in words[:3]]
    inputs, mask, _ = tagger._inputs(tokens, compiled=False)
    network.eval()
    a, b = (network.emissions(inputs, mask).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)                                   # inference: no dropout
    network.train()
    c, d = (network.emissions(inputs, mask).numpy() for _ in range(2))
    assert not np.allclose(c, d) and not np.allclose(c, a)                 # training: a new draw each call
    network.eval()
    result = train_tagger(train, train[:3], None, config, network=network)   # compiled steps with dropouts
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_train_ner_command(tmp_path):
    from spago.cli import main

    train = list(zip([["Ann", "met", "Bob"], ["Ann", "ran"]] * 4, [["B-PER", "O", "B-PER"], ["B-PER", "O"]] * 4))
    write_conll(train, tmp_path / "train.txt")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 4, "char_embedding_dim": 2,
                                                      "hidden_size_char": 2, "word_embedding_dim": 4, "epochs": 1}))
    argv = ["train-ner", "--train", str(tmp_path / "train.txt"), "--dev", str(tmp_path / "train.txt"), "--test",
            str(tmp_path / "train.txt"), "--config", str(tmp_path / "config.json"), "--eager", "-o",
            str(tmp_path / "m.safetensors"), "--report", str(tmp_path / "report.json")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["history"]) == 1 and "test" in report
    from spago.nlp.embeddings import import_text

    (tmp_path / "glove.txt").write_text("ann 0.1 0.2 0.3\nbob -0.1 0.0 0.5\nmet 0.3 0.3 0.3\n")
    import_text(str(tmp_path / "glove.txt"), str(tmp_path / "glove.lmdb"), progress=False)
    assert main(argv + ["--embeddings", str(tmp_path / "glove.lmdb")]) == 0
    tagger = SequenceTagger.load(tmp_path / "m.safetensors", compiled=False)
    assert tagger.network.embeddings.embedding_length == 2 * 2 + 4 + 3
    (tmp_path / "bad.json").write_text(json.dumps({"hidden": 4}))
    assert main(argv[:7] + ["--config", str(tmp_path / "bad.json")]) == 2


def test_pooled_flair_embeddings_keep_a_memory_per_word():
    from spago.nlp.token_embeddings import FlairEmbeddings, PooledFlairEmbeddings, StackedEmbeddings

    flair = FlairEmbeddings(LanguageModel.from_flair(os.path.join(FLAIR, "lm-forward.pt")), name="fw")
    first, second = tokenize("Glasgow is big"), tokenize("I like Glasgow")
    local1, local2 = flair.token_vectors([first])[0], flair.token_vectors([second])[0]
    for pooling, expect in (("min", np.minimum(local1[0], local2[2])), ("max", np.maximum(local1[0], local2[2])),
                            ("mean", (local1[0] + local2[2]) / 2), ("fade", (local1[0] + local2[2]) / 2)):
        pooled = PooledFlairEmbeddings(flair, pooling=pooling)
        pooled.inputs([first], 3)
        out = pooled.inputs([second], 4)
        assert np.allclose(out["pooled"][0, 2], expect, atol=1e-6)
        assert np.allclose(out["context"][0, 2], local2[2]) and not out["pooled"][0, 3].any()
        assert pooled.word_count["Glasgow"] == 2
    pooled.train()
    assert pooled.word_embeddings == {} and pooled.names() == ["fw-context", "fw"]
    stack = StackedEmbeddings([pooled])
    assert stack.embedding_length == 2 * 48
    assert stack.concat(stack.inputs([first], 3)).shape == (1, 3, 96)
    with pytest.raises(SpagoError, match="pooling"):
        PooledFlairEmbeddings(flair, pooling="median")


def test_one_hot_embeddings_start_as_flairs():
    """Flair draws its one-hot embeddings Glorot-uniform (bound sqrt(6 / (vocabulary + length))), far
    smaller than an `Embedding`'s N(0, 1): with N(0, 1) spago's WNUT-16 taggers scored 2.0 points of test
    F1 below Flair's on the mean of three seeds, with Flair's draw 1.7 above."""
    from spago.nlp.token_embeddings import OneHotEmbeddings

    words = ["<unk>"] + [f"w{i}" for i in range(999)]
    weight = OneHotEmbeddings(words, embedding_length=50).embedding_layer.weight.numpy()
    bound = np.sqrt(6.0 / (1000 + 50))
    assert weight.shape == (1000, 50) and np.abs(weight).max() <= bound
    assert weight.std() == pytest.approx(bound / np.sqrt(3.0), rel=0.05)   # uniform on (-bound, bound)


def test_softmax_tagger_without_crf_or_rnn():
    import spago
    from spago.nlp.sequence_labeler import SequenceTaggerNetwork
    from spago.nlp.token_embeddings import OneHotEmbeddings, StackedEmbeddings

    spago.manual_seed(1)
    stack = StackedEmbeddings([OneHotEmbeddings(["<unk>", "Ann", "met"], embedding_length=6)])
    network = SequenceTaggerNetwork(stack, {"items": ["O", "S-PER"], "add_unk": False}, hidden_size=4,
                                    use_crf=False, use_rnn=False)
    tagger = SequenceTagger(network, compiled=False)
    tokens = tagger.predict("Ann met Bob")
    for t in tokens:
        assert abs(sum(t.distribution.values()) - 1.0) < 1e-6 and t.score == max(t.distribution.values())
        assert t.tag == max(t.distribution, key=t.distribution.get)
    inputs, mask, _ = tagger._inputs([tokens], compiled=False)
    loss = network.loss(inputs, np.array([[1, 0, 0]]), mask)
    loss.backward()
    assert loss.item() > 0 and network.linear.weight.grad is not None
